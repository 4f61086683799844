"""Encryption of stored secrets (SECURITY.md TK-01) and a wrapper that keeps them out of logs.

``Cipher`` wraps ``cryptography``'s ``MultiFernet`` (AES-128-CBC + HMAC-SHA256, authenticated):
the first key in ``Settings.token_keys`` encrypts, every key decrypts, and ``rotate`` re-encrypts
a ciphertext under the first key while keeping its original timestamp. Keys come from the
environment or the demo key file, never from the database.

A failed decryption (corrupted or truncated ciphertext, a wrong or retired key) raises
``DecryptionError`` whose message names neither the key nor the ciphertext, so callers can log it
and turn it into "reconnect needed" without a crash.

``Secret`` holds a plaintext secret (an access token, a PKCE verifier). Its ``repr``, ``str`` and
``format`` show a mask, so a token that ends up in a log line, an f-string, an exception message
or a dataclass ``repr`` is not disclosed; ``reveal()`` is the one explicit way to read it.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from storage.settings import Settings

_MASK = "••••••"


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key.

    The message is fixed: it never includes key material, ciphertext or plaintext.
    """

    def __init__(self) -> None:
        super().__init__("stored secret could not be decrypted with the configured keys")


class Secret:
    """A plaintext secret that masks itself everywhere except ``reveal()``.

    Equality is constant-time; hashing is deliberately unsupported so a secret cannot become a
    dictionary key that later shows up in a dump. Pickling is refused so it cannot be written to a
    cache or a session store by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The plaintext; call it only where the value leaves for its one legitimate use."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return format(_MASK, format_spec)

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # a secret must not be a dict key or set member

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


class Cipher:
    """Authenticated symmetric encryption of stored secrets with key rotation.

    ``keys`` are url-safe base64 Fernet keys, newest first: the first encrypts, all decrypt.
    """

    __slots__ = ("_fernet",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("Cipher needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError):
            # Fernet's own message is harmless, but keep the rule: nothing key-derived in errors.
            raise ValueError("Cipher was given a value that is not a Fernet key") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Cipher:
        """The cipher for ``Settings.token_keys`` (first key encrypts)."""
        return cls(settings.token_keys)

    def __repr__(self) -> str:
        return "Cipher(keys=<hidden>)"

    def encrypt(self, plaintext: str | Secret) -> str:
        """Encrypt a text secret; returns the Fernet token as ASCII text, fit for a text column."""
        value = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt text produced by ``encrypt``; raises ``DecryptionError`` on any failure."""
        plaintext = self.decrypt_bytes(ciphertext.encode("ascii", errors="replace"))
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:  # a binary payload read as text: treat as unreadable
            raise DecryptionError from None

    def decrypt_secret(self, ciphertext: str) -> Secret:
        """Like ``decrypt`` but returns the plaintext wrapped in ``Secret``."""
        return Secret(self.decrypt(ciphertext))

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt ``ciphertext`` under the first key; raises ``DecryptionError`` if unreadable."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii", errors="replace")).decode("ascii")
        except (InvalidToken, ValueError, TypeError):
            raise DecryptionError from None

    def encrypt_bytes(self, data: bytes) -> bytes:
        """Encrypt a binary payload (a batch of mirrored records); returns the Fernet token."""
        return self._fernet.encrypt(data)

    def decrypt_bytes(self, token: bytes) -> bytes:
        """Decrypt a token from ``encrypt_bytes``; raises ``DecryptionError`` on any failure."""
        try:
            return self._fernet.decrypt(token)
        except (InvalidToken, ValueError, TypeError):
            # ``from None``: the chained Fernet error adds nothing and keeps tracebacks short.
            raise DecryptionError from None

    def rotate_bytes(self, token: bytes) -> bytes:
        """Re-encrypt a binary token under the first key; raises ``DecryptionError`` if unreadable."""
        try:
            return self._fernet.rotate(token)
        except (InvalidToken, ValueError, TypeError):
            raise DecryptionError from None
