"""Log redaction: secrets and PHI never reach a log line, and one record is one line.

``RedactingFilter`` rewrites each record before any handler formats it: it renders the message
with its arguments, masks the values of secret and PHI keys in the shapes they take in logs
(``key=value``, query strings ``?code=..&state=..``, JSON ``"key": "value"``, Python reprs
``'key': 'value'``, headers ``Authorization: Bearer ...``), masks any bearer token, and escapes
CR, LF and other control characters so user-supplied text cannot forge extra lines (log
injection). Exception tracebacks are masked too but keep their line breaks.

This is the safety net (SECURITY.md LG-01); code should still log only event names, ids and
statuses. ``install_logging`` puts the filter on the root handlers and keeps the chatty HTTP
and OAuth libraries (which log headers and bodies at DEBUG) at WARNING.
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = [
    "PHI_KEYS",
    "QUIET_LOGGERS",
    "REDACTED",
    "SECRET_KEYS",
    "RedactingFilter",
    "install_logging",
    "redact",
]

REDACTED: Final = "[REDACTED]"

SECRET_KEYS: Final = (
    "authorization",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code",
    "state",
    "code_verifier",
    "password",
)
PHI_KEYS: Final = (
    "first_name",
    "middle_name",
    "last_name",
    "nick_name",
    "name",
    "date_of_birth",
    "dob",
    "ssn",
    "social_security_number",
    "address",
    "phone",
    "cell_phone",
    "home_phone",
    "office_phone",
    "email",
)
# Libraries that log request headers, bodies or token responses at DEBUG.
QUIET_LOGGERS: Final = ("urllib3", "requests_oauthlib", "oauthlib")

_KEYS = "|".join(sorted((re.escape(k) for k in SECRET_KEYS + PHI_KEYS), key=len, reverse=True))
# A quoted key (JSON, a Python repr, or JSON escaped inside a string) then ':' and its value.
_QUOTED_PAIR = re.compile(
    rf"""(?P<key>\\?["'](?:{_KEYS})\\?["']\s*:\s*)"""
    rf"""(?P<value>\\?"(?:[^"\\]|\\(?!")|\\"(?!\s*[,}}\]]))*\\?"|'[^']*'|[^\s,}}\]]+)""",
    re.IGNORECASE,
)
# A bare key then '=' or ':' and its value: kwargs, query strings, form bodies, headers. An
# unquoted value runs to a separator or to the next "word=" so "name=Zebulon Quixote" is
# masked whole; masking a little too much is the safe side.
_BARE_PAIR = re.compile(
    rf"""(?P<key>(?<![\w-])(?:{_KEYS})\s*[=:]\s*)"""
    rf"""(?!\[REDACTED\])(?P<value>"[^"]*"|'[^']*'|[^\s&,;'"}})\]][^&,;'"}})\]\r\n]*?(?=\s+[\w.-]+\s*[=:]|[&,;'"}})\]\r\n]|$))""",
    re.IGNORECASE,
)
# Bearer/Basic credentials anywhere, e.g. inside a headers dict repr.
_CREDENTIAL = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ESCAPES: Final = {"\n": "\\n", "\r": "\\r"}
# Set on a record once it has been redacted.
_MARK: Final = "_ehr_redacted"


def _mask_quoted(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[:2] if value.startswith('\\"') else value[:1]
    if quote in ('"', "'", '\\"'):
        return f"{match.group('key')}{quote}{REDACTED}{quote}"
    return f"{match.group('key')}{REDACTED}"


def _mask_bare(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.lower().startswith(("bearer ", "basic ")):
        # "Authorization: Bearer x": the credential pattern masks the token itself.
        return match.group(0)
    return f"{match.group('key')}{REDACTED}"


def _escape_control(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ESCAPES.get(char, f"\\x{ord(char):02x}")


def redact(text: str, *, single_line: bool = True) -> str:
    """``text`` with secret and PHI values masked and, if ``single_line``, control chars escaped."""
    text = _CREDENTIAL.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)
    text = _QUOTED_PAIR.sub(_mask_quoted, text)
    text = _BARE_PAIR.sub(_mask_bare, text)
    return _CONTROL.sub(_escape_control, text) if single_line else text


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets and PHI and keeps each record on one line.

    It replaces ``record.msg`` with the rendered, redacted message (``record.args`` becomes
    empty) and pre-renders a redacted traceback into ``record.exc_text``. It never drops a
    record and never raises.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always keep it."""
        if getattr(record, _MARK, False):
            # Each root handler runs its filters on the same record: redact it once.
            return True
        setattr(record, _MARK, True)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the event, nor leak its args
            message = f"{record.msg!s} [arguments withheld: message did not format]"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, single_line=False)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, single_line=False)
        return True


def install_logging(level: int | str = logging.INFO) -> RedactingFilter:
    """Set the root level, put one ``RedactingFilter`` on every root handler, quiet HTTP libs.

    A stderr handler is added when the root logger has none. Calling it again adds no second
    filter. Returns the filter in use.
    """
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(stderr)
    active: RedactingFilter | None = None
    for handler in root.handlers:
        existing = [f for f in handler.filters if isinstance(f, RedactingFilter)]
        if existing:
            active = active or existing[0]
            continue
        active = active or RedactingFilter()
        handler.addFilter(active)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    assert active is not None  # root has at least one handler by now
    return active
