"""The stated purpose of an export (a disclosure): how it is checked and how it is recorded.

Every export (the audit log, billing detail) asks for a purpose category and a sentence. The
sentence is never stored — an admin may name a patient in it — only its length and a keyed
digest, so a sentence shown to an investigator later can be matched against the audit row.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import Final

__all__ = [
    "MAX_PURPOSE_CHARS",
    "MIN_PURPOSE_CHARS",
    "has_control",
    "statement_digest",
    "statement_problem",
]

MIN_PURPOSE_CHARS: Final = 10
MAX_PURPOSE_CHARS: Final = 500
# 128 bits of HMAC-SHA256: enough to match a statement, short enough for an audit row.
DIGEST_HEX_CHARS: Final = 32


def has_control(text: str, allowed: str = "") -> bool:
    """Control, format (bidi overrides) or surrogate characters, other than ``allowed``."""
    return any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in text if ch not in allowed)


def statement_problem(statement: str) -> str | None:
    """What is wrong with a purpose sentence, as a message for the form; None when it is fine."""
    text = statement.strip()
    if len(text) < MIN_PURPOSE_CHARS:
        return f"Describe the purpose in at least {MIN_PURPOSE_CHARS} characters."
    if len(text) > MAX_PURPOSE_CHARS:
        return f"Keep the purpose under {MAX_PURPOSE_CHARS} characters."
    if has_control(text, allowed="\n"):
        return "Remove control characters from the purpose."
    return None


def statement_digest(statement: str, key: bytes) -> str:
    """A keyed digest of the sentence (whitespace and Unicode forms normalised)."""
    normalised = unicodedata.normalize("NFKC", " ".join(statement.split()))
    return hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()[:DIGEST_HEX_CHARS]
