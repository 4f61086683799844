"""The EHR OAuth client: the authorization-code flow from the authorize URL to a stored connection.

- ``begin_authorization`` builds the authorize URL: explicit scope, a one-time state and an S256
  PKCE challenge, all taken from the stored state row (storage/oauth_state.py).
- ``complete_authorization`` handles the callback. The ``state`` is checked (and burnt) before
  anything else, so a forged, replayed, expired or foreign callback makes no token request
  (OA-01). An upstream ``error=`` ends the flow naming only its code (OA-04). Otherwise the code
  is exchanged at once with the stored verifier and the byte-identical redirect URI (OA-02,
  OA-03), the EHR user is read from ``/api/users/current`` (a 302 that the transport follows on
  the same origin only), and the tokens are stored encrypted (TK-01). Every outcome is audited.
- ``request_refresh`` is the one refresh-token call; ``ehr.tokens`` runs it inside its locks.
- ``revoke_and_disconnect`` revokes the tokens upstream, then deletes the connection (TK-04).

Token-endpoint calls use requests-oauthlib's ``OAuth2Session`` with the client credentials in the
form body, as DrChrono documents. That library logs tokens at DEBUG, so its loggers (and
oauthlib's and urllib3's) are held at WARNING before every call (LG-01). Nothing here logs or
puts into exception text a code, state, verifier, token or the client secret, and the only
upstream text kept is an error code that looks like an RFC 6749 code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import requests
from oauthlib.oauth2.rfc6749 import errors as oauth_errors
from oauthlib.oauth2.rfc6749.utils import is_secure_transport
from requests_oauthlib import OAuth2Session
from sqlalchemy import Engine

from ehr.errors import (
    AuditWriteError,
    ConfigurationError,
    EHRError,
    GrantRefusedError,
    NotConnectedError,
    OAuthAuthorizationFailed,
    OAuthCallbackRejected,
    RateLimitedError,
    ReauthorizationRequiredError,
    UpstreamDataError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    parse_retry_after,
)
from ehr.policy import Principal
from ehr.redaction import QUIET_LOGGERS
from ehr.transport import EHRTransport
from storage import audit
from storage.audit import AuditAction, AuditOutcome, AuditRecord
from storage.crypto import Cipher, Secret
from storage.oauth_state import (
    ConsumedState,
    StateRejected,
    consume_oauth_state,
    create_oauth_state,
)
from storage.tokens import (
    ConnectionProfile,
    TokenGrant,
    TokenSet,
    connection_status,
    delete_connection,
    expires_at_from,
    load_tokens,
    save_connection_tokens,
    utc_now,
)

__all__ = [
    "AUTHORIZE_PATH",
    "REVOKE_PATH",
    "TOKEN_PATH",
    "USER_PATH",
    "VENDOR",
    "ConnectResult",
    "GrantRefusedError",
    "OAuthAuthorizationFailed",
    "OAuthCallbackRejected",
    "OAuthClientConfig",
    "append_audit",
    "begin_authorization",
    "complete_authorization",
    "request_refresh",
    "revoke_and_disconnect",
    "same_ehr",
]

logger = logging.getLogger(__name__)

# DrChrono's OAuth and identity endpoints, relative to the configured base URL.
AUTHORIZE_PATH = "/o/authorize/"
TOKEN_PATH = "/o/token/"  # noqa: S105  a URL path, not a credential
REVOKE_PATH = "/o/revoke_token/"
USER_PATH = "/api/users/current"
# The vendor recorded on connections made here (storage keys a connection by vendor + base URL).
VENDOR = "drchrono"
# The only token type DrChrono issues and the transport sends.
BEARER = "Bearer"
# The audit resource type of every row written here.
RESOURCE_TYPE = "ehr_connection"

# (connect, read) seconds. The code exchange: DrChrono's codes "expire extremely quickly", and
# the user is waiting on the callback, so a slow token endpoint fails fast instead of hanging.
EXCHANGE_TIMEOUT_S = (5.0, 10.0)
# A refresh runs inside the refresh lock; on SQLite that is the database write lock, whose
# waiters give up after storage's 5 s busy timeout, so the whole call must fit well inside it.
REFRESH_TIMEOUT_S = (2.0, 2.5)
# Revocation at disconnect is best effort: the local delete happens whatever it answers.
REVOKE_TIMEOUT_S = (5.0, 10.0)

# RFC 6749 error codes are lower-case ASCII words; anything else from upstream is not echoed.
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
UNRECOGNISED_ERROR = "unrecognised_error"
# Longest id accepted from /api/users/current (the connection columns hold 64 characters).
MAX_EHR_ID_CHARS = 64
MAX_EHR_USERNAME_CHARS = 255
# RFC 6749 errors meaning "the server failed", not "your grant is bad".
_SERVER_SIDE_ERRORS = frozenset({"server_error", "temporarily_unavailable"})


@dataclass(frozen=True)
class OAuthClientConfig:
    """The registered OAuth application: where to send users and which scopes to ask for."""

    base_url: str
    client_id: str
    client_secret: Secret = field(repr=False)
    redirect_uri: str
    scopes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.scopes:
            raise ConfigurationError(details={"setting": "scopes"})
        if not self.base_url or not self.client_id or not self.redirect_uri:
            raise ConfigurationError(details={"setting": "oauth_client"})

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` under the base URL."""
        return f"{self.base_url.rstrip('/')}{path}"


@dataclass(frozen=True)
class ConnectResult:
    """A completed connection: which row, which EHR user, and the scopes DrChrono withheld."""

    connection_id: int
    ehr_username: str | None
    practice_group: str | None
    missing_scopes: tuple[str, ...]


# ----------------------------------------------------------------------------- shared helpers


def append_audit(engine: Engine, key: bytes, record: AuditRecord) -> None:
    """Write one audit row; the EHR tree's ``AuditWriteError`` when it cannot be (fail closed)."""
    try:
        audit.append(engine, key, record)
    except audit.AuditWriteError:
        raise AuditWriteError() from None


def same_ehr(stored_base_url: str, config: OAuthClientConfig) -> bool:
    """True when a stored connection belongs to the configured EHR, so its tokens may go there."""
    return stored_base_url.rstrip("/") == config.base_url.rstrip("/")


def _error_code(value: object) -> str:
    text = value if isinstance(value, str) else ""
    return text if _ERROR_CODE.fullmatch(text) else UNRECOGNISED_ERROR


def _quiet_oauth_loggers() -> None:
    """Hold the HTTP and OAuth libraries at WARNING: at DEBUG they log codes and tokens (LG-01).

    Their own level, not the effective one: a NOTSET logger follows root down to DEBUG.
    """
    for name in QUIET_LOGGERS:
        library_logger = logging.getLogger(name)
        if library_logger.level < logging.WARNING:
            library_logger.setLevel(logging.WARNING)


class _BodyCredentials(requests.auth.AuthBase):
    """The client credentials travel in the form body (DrChrono's documented form). Passing an
    explicit auth also stops requests from adding ``~/.netrc`` credentials as a header."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_BODY_CREDENTIALS = _BodyCredentials()


def _refuse_server_failures(response: requests.Response) -> requests.Response:
    """Token-response hook: 429 and 5xx become EHR errors before oauthlib parses the body."""
    status = response.status_code
    if status == 429:
        retry_at = parse_retry_after(response.headers.get("Retry-After"), utc_now())
        raise RateLimitedError(retry_at=retry_at, details={"status": 429})
    if status in (408, 504):
        raise UpstreamTimeoutError(details={"status": status})
    if status >= 500:
        raise UpstreamUnavailableError(details={"status": status})
    return response


@contextmanager
def _token_session(
    client_id: str, http: requests.Session | None, redirect_uri: str | None = None
) -> Iterator[OAuth2Session]:
    """An ``OAuth2Session`` for one token call; it borrows ``http``'s adapters when given."""
    session = OAuth2Session(client_id, redirect_uri=redirect_uri)
    session.register_compliance_hook("access_token_response", _refuse_server_failures)
    session.register_compliance_hook("refresh_token_response", _refuse_server_failures)
    if http is not None:
        for prefix, adapter in http.adapters.items():
            session.mount(prefix, adapter)
        session.verify = http.verify
        session.cert = http.cert
        session.proxies = dict(http.proxies)
        session.trust_env = http.trust_env
    try:
        yield session
    finally:
        if http is None:  # borrowed adapters belong to the caller's session
            session.close()


def _token_call(call: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    """Run one token-endpoint call and map every failure onto the EHR error tree.

    Never retried: a code is single-use and, with rotation, a resent refresh could burn the new
    refresh token. Exceptions are re-raised ``from None``: library messages are not ours to show.
    """
    _quiet_oauth_loggers()
    try:
        return call()
    except EHRError:
        raise
    except oauth_errors.InsecureTransportError:
        raise ConfigurationError(
            details={"setting": "base_url", "problem": "https is required"}
        ) from None
    except oauth_errors.MissingTokenError:
        raise UpstreamDataError(details={"field": "access_token"}) from None
    except oauth_errors.OAuth2Error as exc:
        code = _error_code(exc.error)
        if code in _SERVER_SIDE_ERRORS:
            raise UpstreamUnavailableError(details={"error_code": code}) from None
        raise GrantRefusedError(error_code=code) from None
    except requests.exceptions.Timeout as exc:
        raise UpstreamTimeoutError(details={"cause": type(exc).__name__}) from None
    except requests.exceptions.RequestException as exc:
        raise UpstreamUnavailableError(details={"cause": type(exc).__name__}) from None
    except ValueError:  # oauthlib: a token response it cannot read (e.g. expires_in not a number)
        raise UpstreamDataError(details={"problem": "unreadable token response"}) from None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if isinstance(value, str) and value.isdigit():
        return float(value) if int(value) > 0 else None
    return None


def _scopes(value: object, fallback: tuple[str, ...]) -> tuple[str, ...]:
    """Granted scopes: oauthlib gives a list (or the raw string); absent means as requested."""
    if value is None:
        return fallback
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list | tuple) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise UpstreamDataError(details={"field": "scope"})


def _grant_from(
    token: Mapping[str, Any], received_at: datetime, fallback_scopes: tuple[str, ...]
) -> TokenGrant:
    """A ``TokenGrant`` from a token response; expiry from our receipt time, never ``Date``."""
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise UpstreamDataError(details={"field": "access_token"})
    refresh = token.get("refresh_token")
    if refresh is not None and (not isinstance(refresh, str) or not refresh):
        raise UpstreamDataError(details={"field": "refresh_token"})
    token_type = token.get("token_type", BEARER)
    if not isinstance(token_type, str) or token_type.lower() != BEARER.lower():
        raise UpstreamDataError(details={"field": "token_type"})
    expires_at = None
    if token.get("expires_in") is not None:
        seconds = _seconds(token["expires_in"])
        if seconds is None:
            raise UpstreamDataError(details={"field": "expires_in"})
        expires_at = expires_at_from(received_at, seconds)
    return TokenGrant(
        access_token=Secret(access),
        refresh_token=None if refresh is None else Secret(refresh),
        token_type=BEARER,
        scopes=_scopes(token.get("scope"), fallback_scopes),
        expires_at=expires_at,
        obtained_at=received_at,
    )


# ----------------------------------------------------------------------------- authorize


def begin_authorization(
    engine: Engine,
    cipher: Cipher,
    config: OAuthClientConfig,
    *,
    user_id: int,
    session_ref: str,
    now: datetime | None = None,
) -> str:
    """Store a new state row for ``user_id``/``session_ref`` and return the authorize URL.

    The URL asks for the configured scopes explicitly and carries the state and the S256 code
    challenge of the stored PKCE verifier; the raw state leaves this function only inside the URL.
    """
    issued = create_oauth_state(
        engine,
        cipher,
        user_id=user_id,
        session_ref=session_ref,
        redirect_uri=config.redirect_uri,
        scopes=config.scopes,
        now=now,
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": config.redirect_uri,
            "scope": " ".join(config.scopes),
            "state": issued.state.reveal(),
            "code_challenge": issued.code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{config.url(AUTHORIZE_PATH)}?{query}"


# ----------------------------------------------------------------------------- callback


def _actor_record(
    actor: Principal,
    action: AuditAction,
    outcome: AuditOutcome,
    *,
    connection_id: int | None = None,
    **details: Any,
) -> AuditRecord:
    if connection_id is not None:
        details["connection_id"] = connection_id
    return AuditRecord(
        action=action,
        outcome=outcome,
        user_id=actor.user_id,
        username=actor.username,
        role=actor.role,
        resource_type=RESOURCE_TYPE,
        resource_id=connection_id,
        details=details,
    )


def _rejected(engine: Engine, audit_key: bytes, actor: Principal, reason: str) -> EHRError:
    """Audit a callback refused before any token request and return the error to raise."""
    logger.warning(
        "OAuth callback rejected before any token request (reason=%s user_id=%s)",
        reason,
        actor.user_id,
    )
    append_audit(
        engine,
        audit_key,
        _actor_record(
            actor, AuditAction.OAUTH_CALLBACK_REJECTED, AuditOutcome.DENIED, reason=reason
        ),
    )
    return OAuthCallbackRejected(details={"reason": reason})


class _IssuedToken:
    """``TokenSource`` for the profile read right after the exchange: nothing to refresh yet."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def access_token(self) -> str:
        return self._token.reveal()

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise ReauthorizationRequiredError(details={"status": 401})


def _id_text(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_EHR_ID_CHARS:
        return value
    raise UpstreamDataError(details={"field": f"users/current.{name}"})


def _read_profile(
    config: OAuthClientConfig, access: Secret, http: requests.Session | None
) -> dict[str, str | None]:
    """The connecting EHR user from ``/api/users/current`` (DrChrono answers it with a 302).

    The transport follows same-origin redirects only, resending the bearer token; a Location on
    another origin raises ``UnsafeRedirectError`` before anything is sent there.
    """
    transport = EHRTransport(config.base_url, _IssuedToken(access), session=http)
    try:
        body = transport.get_json(USER_PATH)
    finally:
        transport.close()
    if not isinstance(body, dict):
        raise UpstreamDataError(details={"field": "users/current"})
    username = body.get("username")
    if username is not None and (
        not isinstance(username, str) or len(username) > MAX_EHR_USERNAME_CHARS
    ):
        raise UpstreamDataError(details={"field": "users/current.username"})
    return {
        "ehr_user_id": _id_text(body, "id", required=True),
        "ehr_username": username,
        "practice_group": _id_text(body, "practice_group"),
        "doctor_id": _id_text(body, "doctor"),
    }


def _exchange_code(
    config: OAuthClientConfig, consumed: ConsumedState, code: str, http: requests.Session | None
) -> Mapping[str, Any]:
    """POST the code with the stored verifier and the redirect URI the authorize URL carried."""
    with _token_session(config.client_id, http, redirect_uri=consumed.redirect_uri) as oauth:
        return _token_call(
            lambda: oauth.fetch_token(
                config.url(TOKEN_PATH),
                code=code,
                code_verifier=consumed.code_verifier.reveal(),
                client_secret=config.client_secret.reveal(),
                include_client_id=True,
                auth=_BODY_CREDENTIALS,
                timeout=EXCHANGE_TIMEOUT_S,
            )
        )


def complete_authorization(
    engine: Engine,
    cipher: Cipher,
    config: OAuthClientConfig,
    *,
    audit_key: bytes,
    actor: Principal,
    session_ref: str,
    params: Mapping[str, str],
    http: requests.Session | None = None,
    now: datetime | None = None,
) -> ConnectResult:
    """Finish the OAuth callback: check the state, exchange the code, store the connection.

    ``params`` are the callback's query parameters; ``actor``/``session_ref`` must be the app
    user and session that began the authorization. Order matters: the state is consumed first
    (burnt whatever happens next); a missing, unknown, reused, expired or foreign state raises
    ``OAuthCallbackRejected`` without any token request. An upstream ``error=`` raises
    ``OAuthAuthorizationFailed`` naming only its code, as does a refused exchange. Then the EHR
    user is read (if that fails, the new tokens are revoked best-effort) and the tokens saved.
    Also raises ``UpstreamUnavailableError``, ``UpstreamTimeoutError``, ``RateLimitedError``,
    ``UpstreamDataError``, ``UnsafeRedirectError`` or ``ConfigurationError``. Every outcome
    writes one audit row (``OAUTH_CALLBACK_REJECTED`` or ``EHR_CONNECT``); ``AuditWriteError``
    when it cannot be written (on success the connection is already stored by then).
    """
    state = params.get("state")
    if not state:
        raise _rejected(engine, audit_key, actor, "missing_state")
    consumed = consume_oauth_state(engine, cipher, state, actor.user_id, session_ref, now=now)
    if isinstance(consumed, StateRejected):
        raise _rejected(engine, audit_key, actor, consumed.reason)

    if "error" in params:
        error_code = _error_code(params["error"])
        logger.info("OAuth authorization ended upstream (error_code=%s)", error_code)
        append_audit(
            engine,
            audit_key,
            _actor_record(
                actor, AuditAction.EHR_CONNECT, AuditOutcome.DENIED, error_code=error_code
            ),
        )
        raise OAuthAuthorizationFailed(error_code=error_code)
    code = params.get("code")
    if not code:
        raise _rejected(engine, audit_key, actor, "missing_code")

    try:
        grant = _grant_from(
            _exchange_code(config, consumed, code, http), now or utc_now(), consumed.scopes
        )
        try:
            facts = _read_profile(config, grant.access_token, http)
        except EHRError:
            # The code is spent and the user must start again: do not leave live tokens behind.
            _revoke(config, grant.refresh_token, grant.access_token, http)
            raise
    except EHRError as exc:
        error_code = (exc.error_code if isinstance(exc, GrantRefusedError) else None) or exc.code
        logger.warning("OAuth code exchange failed (error_code=%s)", error_code)
        append_audit(
            engine,
            audit_key,
            _actor_record(
                actor, AuditAction.EHR_CONNECT, AuditOutcome.ERROR, error_code=error_code
            ),
        )
        if isinstance(exc, GrantRefusedError):
            raise OAuthAuthorizationFailed(error_code=error_code) from None
        raise

    profile = ConnectionProfile(
        vendor=VENDOR,
        base_url=config.base_url.rstrip("/"),
        requested_scopes=consumed.scopes,
        connected_by_user_id=actor.user_id,
        **facts,
    )
    saved = save_connection_tokens(engine, cipher, grant, profile)
    granted = set(grant.scopes)
    missing = tuple(s for s in consumed.scopes if s not in granted)
    logger.info(
        "EHR connected (connection_id=%s missing_scopes=%d)", saved.connection_id, len(missing)
    )
    append_audit(
        engine,
        audit_key,
        _actor_record(
            actor,
            AuditAction.EHR_CONNECT,
            AuditOutcome.SUCCESS,
            connection_id=saved.connection_id,
            ehr_user_id=facts["ehr_user_id"],
            missing_scopes=list(missing),
        ),
    )
    return ConnectResult(
        connection_id=saved.connection_id,
        ehr_username=facts["ehr_username"],
        practice_group=facts["practice_group"],
        missing_scopes=missing,
    )


# ----------------------------------------------------------------------------- refresh


def request_refresh(
    config: OAuthClientConfig,
    refresh_token: Secret,
    *,
    scopes: tuple[str, ...],
    http: requests.Session | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> TokenGrant:
    """POST one refresh-token grant and return the new pair.

    The expiry counts from ``clock()`` at receipt; ``scopes`` stand in when the response names
    none. A response without a refresh token keeps the stored one. Raises ``GrantRefusedError``
    (``invalid_grant``: the refresh token is dead), ``UpstreamUnavailableError``,
    ``UpstreamTimeoutError``, ``RateLimitedError``, ``UpstreamDataError`` or
    ``ConfigurationError``. Never retried (see ``_token_call``).
    """
    with _token_session(config.client_id, http) as oauth:
        token = _token_call(
            lambda: oauth.refresh_token(
                config.url(TOKEN_PATH),
                refresh_token=refresh_token.reveal(),
                auth=_BODY_CREDENTIALS,
                timeout=REFRESH_TIMEOUT_S,
                client_id=config.client_id,
                client_secret=config.client_secret.reveal(),
            )
        )
    return _grant_from(token, clock(), scopes)


# ----------------------------------------------------------------------------- disconnect


def _revoke(
    config: OAuthClientConfig,
    refresh_token: Secret | None,
    access_token: Secret | None,
    http: requests.Session | None,
) -> bool:
    """Revoke the refresh token, then the access token (RFC 7009); True if both were accepted."""
    url = config.url(REVOKE_PATH)
    if not is_secure_transport(url):
        logger.warning("token revocation skipped: the EHR base URL is not https")
        return False
    _quiet_oauth_loggers()
    pairs = [
        (t, hint)
        for t, hint in ((refresh_token, "refresh_token"), (access_token, "access_token"))
        if t
    ]
    session = http if http is not None else requests.Session()
    accepted = True
    try:
        for token, hint in pairs:
            try:
                response = session.post(
                    url,
                    data={
                        "token": token.reveal(),
                        "token_type_hint": hint,
                        "client_id": config.client_id,
                        "client_secret": config.client_secret.reveal(),
                    },
                    auth=_BODY_CREDENTIALS,
                    timeout=REVOKE_TIMEOUT_S,
                    allow_redirects=False,
                )
                response.close()
            except requests.exceptions.RequestException as exc:
                logger.warning("token revocation failed (%s)", type(exc).__name__)
                accepted = False
                continue
            if response.status_code != 200:
                logger.warning("token revocation refused (status=%s)", response.status_code)
                accepted = False
    finally:
        if http is None:
            session.close()
    return accepted and bool(pairs)


def revoke_and_disconnect(
    engine: Engine,
    cipher: Cipher,
    config: OAuthClientConfig,
    connection_id: int,
    *,
    audit_key: bytes,
    actor: Principal,
    http: requests.Session | None = None,
) -> bool:
    """Disconnect the EHR: revoke its tokens upstream, delete the connection row, audit it.

    The local delete happens even when the upstream revocation fails or cannot be attempted
    (tokens unreadable, or the row belongs to another base URL, whose tokens are never sent to
    this one); the return value says whether upstream confirmed the revocation, and the
    ``EHR_DISCONNECT`` row records it as ``revoke_ok``. Raises ``NotConnectedError`` for an
    unknown connection and ``AuditWriteError`` when the row cannot be written.
    """
    status = connection_status(engine, connection_id)
    if status is None:
        append_audit(
            engine,
            audit_key,
            _actor_record(
                actor,
                AuditAction.EHR_DISCONNECT,
                AuditOutcome.ERROR,
                connection_id=connection_id,
                reason="not_connected",
            ),
        )
        raise NotConnectedError(details={"connection_id": connection_id})
    revoke_ok = False
    skipped: str | None = None
    if not same_ehr(status.base_url, config):
        skipped = "other_base_url"
    else:
        tokens = load_tokens(engine, cipher, connection_id)
        if isinstance(tokens, TokenSet):
            revoke_ok = _revoke(config, tokens.refresh_token, tokens.access_token, http)
        else:
            skipped = tokens.reason  # e.g. needs_reauth: storage does not hand its tokens out
    delete_connection(engine, connection_id)
    details: dict[str, Any] = {"revoke_ok": revoke_ok}
    if skipped is not None:
        details["revoke_skipped"] = skipped
    logger.info("EHR disconnected (connection_id=%s revoke_ok=%s)", connection_id, revoke_ok)
    append_audit(
        engine,
        audit_key,
        _actor_record(
            actor,
            AuditAction.EHR_DISCONNECT,
            AuditOutcome.SUCCESS,
            connection_id=connection_id,
            **details,
        ),
    )
    return revoke_ok
