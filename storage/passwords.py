"""Passwords: the policy a new password must meet, and argon2id hashing (SECURITY.md AC-01).

The policy follows NIST SP 800-63B rather than composition rules: a length window, no control
characters, not a well-known password (``common_passwords.txt``, also after stripping the digits
and symbols people bolt onto a common word) and not the username. Passwords are NFKC-normalised
before hashing and before verifying, so the same password typed on another keyboard or input method
still matches.

Hashing uses argon2-cffi's ``PasswordHasher``. ``HASHER`` is read at call time, so tests can swap
in cheaper parameters and so a change of parameters is picked up by ``needs_rehash`` at the next
successful sign-in.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# NIST SP 800-63B asks for at least 8; 12 is ASVS L2's number and still fits a passphrase.
MIN_PASSWORD_LENGTH = 12
# Long enough for any passphrase or manager-generated password; bounds the hashing work per try.
MAX_PASSWORD_LENGTH = 128
# Below this many distinct characters a password is a repetition ("aaaaaaaaaaaa", "abababab...").
MIN_DISTINCT_CHARACTERS = 5
# A username shorter than this is too likely to occur by chance inside a good password.
MIN_USERNAME_LENGTH_FOR_CONTAINS_CHECK = 4

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

# argon2-cffi's defaults are RFC 9106's second recommended profile (argon2id, t=3, m=64 MiB,
# p=4): about 0.1 s per hash on a small server, which is the point.
HASHER = PasswordHasher()

# Characters people add around a common word to satisfy old composition rules.
_DECORATION = "0123456789!@#$%^&*()_-+=.,?~`'\"[]{}<>/\\|:; "


class PasswordPolicyError(ValueError):
    """The password does not meet the policy; ``message`` is safe to show to the user."""

    code = "password_policy"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of well-known passwords, case-folded (read once per process)."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip())


def normalise_password(password: str) -> str:
    """NFKC form of ``password``, as hashed and verified (NIST SP 800-63B 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def _is_control(char: str) -> bool:
    # Cc: C0/C1 controls incl. NUL, CR, LF, tab; Cs: lone surrogates (cannot be encoded);
    # Cf: invisible format characters such as the RTL override U+202E.
    return unicodedata.category(char) in ("Cc", "Cs", "Cf")


def _is_common(folded: str) -> bool:
    common = common_passwords()
    if folded in common:
        return True
    core = folded.strip(_DECORATION)
    return bool(core) and core in common


def check_password(password: str, username_key: str) -> str:
    """Check ``password`` against the policy and return its normalised form.

    ``username_key`` is the case-folded username (``identity.username_key``). Raises
    ``PasswordPolicyError`` with a message that states the rule that failed; never includes the
    password itself.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"Use at most {MAX_PASSWORD_LENGTH} characters.")
    if any(_is_control(c) for c in password):
        raise PasswordPolicyError(
            "The password contains invisible or control characters; use visible characters only."
        )
    normalised = normalise_password(password)
    if len(normalised) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    if len(normalised) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"Use at most {MAX_PASSWORD_LENGTH} characters.")
    folded = normalised.casefold()
    if len(set(folded)) < MIN_DISTINCT_CHARACTERS:
        raise PasswordPolicyError(
            f"Use at least {MIN_DISTINCT_CHARACTERS} different characters; "
            "repeated patterns are easy to guess."
        )
    if _is_common(folded):
        raise PasswordPolicyError(
            "This password is on a list of well-known passwords; choose another."
        )
    if folded == username_key or (
        len(username_key) >= MIN_USERNAME_LENGTH_FOR_CONTAINS_CHECK and username_key in folded
    ):
        raise PasswordPolicyError("The password must not contain the username.")
    return normalised


def hash_password(normalised: str) -> str:
    """An argon2id hash (``$argon2id$...``) of an already normalised password."""
    return HASHER.hash(normalised)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` (normalised here) matches ``password_hash``; never raises."""
    try:
        candidate = normalise_password(password).encode("utf-8", "surrogatepass")
        return HASHER.verify(password_hash, candidate)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the current ``HASHER``."""
    try:
        return HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@cache
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    # One hash per parameter set, so the decoy costs exactly what a real verify costs.
    return HASHER.hash("decoy password for unknown users")


def spend_dummy_verify(password: str) -> None:
    """Verify ``password`` against a decoy hash: an unknown username costs as much as a known one."""
    decoy = _dummy_hash(HASHER.time_cost, HASHER.memory_cost, HASHER.parallelism)
    verify_password(decoy, password)
