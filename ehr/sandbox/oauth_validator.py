"""oauthlib ``RequestValidator`` for the DrChrono sandbox: clients, codes and tokens in memory.

oauthlib runs the protocol (parameter checks, error bodies, PKCE comparison, token shapes); this
module only answers its questions from three in-memory tables: authorization codes, access
tokens and refresh tokens. Every table is keyed by the SHA-256 of the secret value, so a memory
dump or a stray ``repr`` never shows a usable token or code.

Thread-safety: every method takes ``self.lock`` (an ``RLock``). The provider also holds it around a
whole oauthlib call so that multi-step flows (validate code -> save token -> invalidate code) are
atomic: two concurrent exchanges of one code cannot both succeed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from oauthlib.oauth2 import RequestValidator
from oauthlib.oauth2.rfc6749 import errors

# The 22 scopes of DrChrono's OpenAPI securityScheme, in the order DrChrono lists them.
ALL_SCOPES: tuple[str, ...] = (
    "user:read",
    "user:write",
    "calendar:read",
    "calendar:write",
    "patients:read",
    "patients:write",
    "patients:summary:read",
    "patients:summary:write",
    "clinical:read",
    "clinical:write",
    "labs:read",
    "labs:write",
    "billing:read",
    "billing:write",
    "billing:patient-payment:read",
    "billing:patient-payment:write",
    "messages:read",
    "messages:write",
    "tasks:read",
    "tasks:write",
    "settings:read",
    "settings:write",
)

# The only PKCE method accepted: RFC 9700 §2.1.1 and SECURITY.md OA-02 rule out the weaker default.
PKCE_METHOD = "S256"
# RFC 7636 §4.2: a challenge is 43-128 characters from the unreserved set.
_PKCE_CHALLENGE_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# Bytes of randomness in an access or refresh token (256 bits; far above RFC 6749 §10.10's 128).
TOKEN_BYTES = 32
# Used codes are remembered this long past their expiry so a replay can revoke what they issued.
USED_CODE_RETENTION_S = 3600.0
# Expired access tokens are kept this long so ``authenticate`` can say "expired" rather than
# "invalid"; after that they are purged to bound memory in long benchmark runs.
EXPIRED_TOKEN_RETENTION_S = 86400.0
# Purge stale rows once per this many saved tokens: cheap amortised cleanup, no timer thread.
PURGE_EVERY_SAVES = 256


@dataclass(frozen=True)
class OAuthClient:
    """A registered API application: id, secret and the exact redirect URIs it may use."""

    client_id: str
    client_secret: str = field(repr=False)  # oauthlib logs repr(request.client)
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class TokenInfo:
    """What a valid bearer token grants: the application, the user and the scopes."""

    client_id: str
    user_id: int
    scopes: frozenset[str]


@dataclass(slots=True)
class _CodeRecord:
    client_id: str
    user_id: int
    redirect_uri: str
    scopes: tuple[str, ...]
    challenge: str | None
    challenge_method: str | None
    expires_at: float
    grant_id: str
    used: bool = False


@dataclass(slots=True)
class _AccessRecord:
    client_id: str
    user_id: int
    scopes: frozenset[str]
    expires_at: float
    grant_id: str


@dataclass(slots=True)
class _RefreshRecord:
    client_id: str
    user_id: int
    scopes: tuple[str, ...]
    access_digest: str
    grant_id: str


def digest(secret_value: str) -> str:
    """SHA-256 hex of a token or code: the only form in which one is stored."""
    return hashlib.sha256(secret_value.encode("utf-8")).hexdigest()


def new_token(_request: Any = None) -> str:
    """A fresh random access or refresh token (oauthlib token-generator signature)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """Client id and secret from an HTTP Basic header (RFC 6749 §2.3.1), or None.

    Both parts are form-url-decoded after base64, as RFC 6749 and django-oauth-toolkit do.
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require_s256_pkce(request: Any) -> dict[str, Any]:
    """oauthlib ``pre_auth`` hook: a PKCE challenge must use S256 and be well formed.

    oauthlib itself would also accept the RFC 7636 fallback method (verifier == challenge), which
    DrChrono's SMART server and this project's security rules refuse. Raising a non-fatal error
    here makes oauthlib redirect back with ``error=invalid_request`` and the client's state.
    """
    if request.code_challenge is None:
        return {}
    if request.code_challenge_method != PKCE_METHOD:
        raise errors.UnsupportedCodeChallengeMethodError(request=request)
    if not _PKCE_CHALLENGE_RE.fullmatch(request.code_challenge):
        raise errors.InvalidRequestError(
            description="code_challenge must be 43-128 unreserved characters.", request=request
        )
    return {}


class SandboxRequestValidator(RequestValidator):  # type: ignore[misc]  # oauthlib is untyped
    """Answers oauthlib's questions about clients, codes and tokens from in-memory tables.

    Confidential clients only (DrChrono always requires the client secret), exact redirect-URI
    matching, all 22 DrChrono scopes, single-use short-lived codes bound to client + redirect URI
    + PKCE challenge, refresh-token rotation that also retires the previous access token.
    """

    def __init__(
        self,
        clients: Sequence[OAuthClient],
        *,
        clock: Callable[[], float],
        code_ttl: int,
    ) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self._clients = {c.client_id: c for c in clients}
        if len(self._clients) != len(clients):
            raise ValueError("duplicate client_id in sandbox OAuth clients")
        self._clock = clock
        self.code_ttl = code_ttl
        self._codes: dict[str, _CodeRecord] = {}
        self._access: dict[str, _AccessRecord] = {}
        self._refresh: dict[str, _RefreshRecord] = {}
        self._saves = 0

    # --- clients -------------------------------------------------------------------------------

    def client(self, client_id: str | None) -> OAuthClient | None:
        """The registered client with this id, or None."""
        return self._clients.get(client_id) if client_id else None

    def client_authentication_required(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        return True

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        basic = basic_credentials(request.headers.get("Authorization"))
        if basic is not None:
            client_id, secret = basic
            # A body client_id that names a different client than Basic is a confused request.
            if request.client_id not in (None, client_id):
                return False
        else:
            client_id, secret = request.client_id, request.client_secret
        client = self.client(client_id)
        if client is None or secret is None or not _same_secret(secret, client.client_secret):
            return False
        request.client = client
        return True

    def authenticate_client_id(
        self, client_id: str, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        return False  # public clients do not exist on DrChrono

    def validate_client_id(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        return self.client(client_id) is not None

    def validate_redirect_uri(
        self, client_id: str, redirect_uri: str, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        client = self.client(client_id)
        return client is not None and redirect_uri in client.redirect_uris

    def get_default_redirect_uri(
        self, client_id: str, request: Any, *args: Any, **kwargs: Any
    ) -> str | None:
        return None  # redirect_uri is always required, so it is always compared exactly

    def validate_response_type(
        self,
        client_id: str,
        response_type: str,
        client: Any,
        request: Any,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        return response_type == "code"

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        return grant_type in ("authorization_code", "refresh_token")

    def validate_scopes(
        self,
        client_id: str,
        scopes: list[str],
        client: Any,
        request: Any,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        return bool(scopes) and all(s in ALL_SCOPES for s in scopes)

    def get_default_scopes(
        self, client_id: str, request: Any, *args: Any, **kwargs: Any
    ) -> list[str]:
        return list(ALL_SCOPES)  # DrChrono: omitting scope requests every scope

    def is_pkce_required(self, client_id: str, request: Any) -> bool:
        return False  # DrChrono REST does not require PKCE; a challenge, once sent, is enforced

    # --- authorization codes -------------------------------------------------------------------

    def save_authorization_code(
        self, client_id: str, code: dict[str, Any], request: Any, *args: Any, **kwargs: Any
    ) -> None:
        with self.lock:
            self._codes[digest(code["code"])] = _CodeRecord(
                client_id=client_id,
                user_id=int(request.user),
                redirect_uri=request.redirect_uri,
                scopes=tuple(request.scopes),
                challenge=request.code_challenge,
                challenge_method=request.code_challenge_method,
                expires_at=self._clock() + self.code_ttl,
                grant_id=secrets.token_hex(8),
            )

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        with self.lock:
            record = self._codes.get(digest(code))
            if record is None or record.client_id != client.client_id:
                return False
            if record.used:
                # RFC 6749 §4.1.2: a replayed code SHOULD revoke what it issued (stolen-code defence).
                self._revoke_grant(record.grant_id)
                return False
            if self._clock() >= record.expires_at:
                return False
            request.user = record.user_id
            request.scopes = list(record.scopes)
            request.sandbox_grant_id = record.grant_id
            return True

    def get_code_challenge(self, code: str, request: Any) -> str | None:
        with self.lock:
            record = self._codes.get(digest(code))
            return record.challenge if record else None

    def get_code_challenge_method(self, code: str, request: Any) -> str | None:
        with self.lock:
            record = self._codes.get(digest(code))
            return record.challenge_method if record else None

    def confirm_redirect_uri(
        self,
        client_id: str,
        code: str,
        redirect_uri: str,
        client: Any,
        request: Any,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        with self.lock:
            record = self._codes.get(digest(code))
            return record is not None and record.redirect_uri == redirect_uri

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Any, *args: Any, **kwargs: Any
    ) -> None:
        with self.lock:
            record = self._codes.get(digest(code))
            if record is not None:
                record.used = True

    # --- tokens --------------------------------------------------------------------------------

    def save_bearer_token(
        self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any
    ) -> None:
        with self.lock:
            grant_id = getattr(request, "sandbox_grant_id", None) or secrets.token_hex(8)
            if request.grant_type == "refresh_token" and request.refresh_token:
                # Rotation: the presented refresh token and the access token it last issued retire.
                old = self._refresh.pop(digest(request.refresh_token), None)
                if old is not None:
                    self._access.pop(old.access_digest, None)
            scopes = tuple(request.scopes)
            access_digest = digest(token["access_token"])
            self._access[access_digest] = _AccessRecord(
                client_id=request.client.client_id,
                user_id=int(request.user),
                scopes=frozenset(scopes),
                expires_at=self._clock() + int(token["expires_in"]),
                grant_id=grant_id,
            )
            if token.get("refresh_token"):
                self._refresh[digest(token["refresh_token"])] = _RefreshRecord(
                    client_id=request.client.client_id,
                    user_id=int(request.user),
                    scopes=scopes,
                    access_digest=access_digest,
                    grant_id=grant_id,
                )
            self._saves += 1
            if self._saves % PURGE_EVERY_SAVES == 0:
                self._purge()

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        with self.lock:
            record = self._refresh.get(digest(refresh_token))
            if record is None or record.client_id != client.client_id:
                return False
            request.user = record.user_id
            request.sandbox_grant_id = record.grant_id
            return True

    def get_original_scopes(
        self, refresh_token: str, request: Any, *args: Any, **kwargs: Any
    ) -> list[str]:
        with self.lock:
            record = self._refresh.get(digest(refresh_token))
            return list(record.scopes) if record else []

    def rotate_refresh_token(self, request: Any) -> bool:
        return True  # django-oauth-toolkit's default: every refresh issues a new refresh token

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: Any, *args: Any, **kwargs: Any
    ) -> None:
        with self.lock:
            key = digest(token)
            client_id = request.client.client_id
            refresh = self._refresh.get(key)
            if refresh is not None and refresh.client_id == client_id:
                del self._refresh[key]
                self._access.pop(refresh.access_digest, None)
                return
            access = self._access.get(key)
            if access is not None and access.client_id == client_id:
                del self._access[key]
            # RFC 7009 §2.2: an unknown token (or another client's) still answers 200.

    def validate_bearer_token(
        self, token: str | None, scopes: list[str] | None, request: Any
    ) -> bool:
        """Look the token up; on failure record why on ``request.sandbox_failure``.

        DrChrono endpoints list a read/write scope pair and either one grants access, so holding
        ANY of ``scopes`` passes (the caller passes only the ``:write`` scope for writes).
        """
        with self.lock:
            record = self._access.get(digest(token)) if token else None
            if record is None:
                request.sandbox_failure = "invalid"
                return False
            if self._clock() >= record.expires_at:
                request.sandbox_failure = "expired"
                return False
            info = TokenInfo(record.client_id, record.user_id, record.scopes)
            request.sandbox_token_info = info
            if scopes and record.scopes.isdisjoint(scopes):
                request.sandbox_failure = "scope"
                return False
            return True

    # --- fault knobs ---------------------------------------------------------------------------

    def expire_all_access_tokens(self) -> None:
        """Make every current access token expired now; refresh tokens keep working."""
        with self.lock:
            now = self._clock()
            for record in self._access.values():
                record.expires_at = min(record.expires_at, now)

    def revoke_everything(self) -> None:
        """Forget every access and refresh token (outstanding codes stay exchangeable)."""
        with self.lock:
            self._access.clear()
            self._refresh.clear()

    # --- internals -----------------------------------------------------------------------------

    def _revoke_grant(self, grant_id: str) -> None:
        """Revoke every token descended from one authorization (code replay defence)."""
        self._access = {k: v for k, v in self._access.items() if v.grant_id != grant_id}
        self._refresh = {k: v for k, v in self._refresh.items() if v.grant_id != grant_id}

    def _purge(self) -> None:
        now = self._clock()
        self._codes = {
            k: v for k, v in self._codes.items() if v.expires_at + USED_CODE_RETENTION_S > now
        }
        self._access = {
            k: v for k, v in self._access.items() if v.expires_at + EXPIRED_TOKEN_RETENTION_S > now
        }
