"""The EHR OAuth client: the authorization-code flow from the authorize URL to a stored connection.

- ``begin_authorization`` builds the authorize URL: explicit scope, a one-time state and an S256
  PKCE challenge, all taken from the stored state row (storage/oauth_state.py).
- ``complete_authorization`` handles the callback. The ``state`` is checked (and burnt) before
  anything else, so a forged, replayed, expired or foreign callback makes no token request
  (OA-01). An upstream ``error=`` ends the flow naming only its code (OA-04). Otherwise the code
  is exchanged at once with the stored verifier and the byte-identical redirect URI (OA-02,
  OA-03), the EHR user is read from ``/api/users/current`` (a 302 that the transport follows on
  the same origin only), and the tokens are stored encrypted (TK-01). Every outcome is audited.
- ``revoke_and_disconnect`` revokes the tokens upstream (even those of a connection flagged
  ``needs_reauth``), then deletes the connection (TK-04).

The calls to DrChrono's token and revocation endpoints, and the refresh that ``ehr.tokens`` runs
inside its locks, live in ``ehr.oauth_endpoints``; this module owns the flows and their audit
rows. Nothing here logs or puts into exception text a code, state, verifier, token or the client
secret, and the only upstream text kept is an error code that looks like an RFC 6749 code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import requests
from sqlalchemy import Engine

from ehr.errors import (
    AuditWriteError,
    ConfigurationError,
    EHRError,
    GrantRefusedError,
    NotConnectedError,
    OAuthAuthorizationFailed,
    OAuthCallbackRejected,
    ReauthorizationRequiredError,
    UpstreamDataError,
)
from ehr.oauth_endpoints import (
    AUTHORIZE_PATH,
    error_code,
    exchange_code,
    grant_from,
    revoke_tokens,
)
from ehr.policy import Principal
from ehr.transport import EHRTransport
from storage import audit
from storage.audit import AuditAction, AuditOutcome, AuditRecord
from storage.crypto import Cipher, Secret
from storage.oauth_state import (
    StateRejected,
    consume_oauth_state,
    create_oauth_state,
)
from storage.tokens import (
    ConnectionProfile,
    connection_status,
    delete_connection,
    load_tokens_for_revocation,
    save_connection_tokens,
    utc_now,
)

__all__ = [
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
    "revoke_and_disconnect",
    "same_ehr",
]

logger = logging.getLogger(__name__)

# DrChrono's identity endpoint, relative to the configured base URL.
USER_PATH = "/api/users/current"
# The vendor recorded on connections made here (storage keys a connection by vendor + base URL).
VENDOR = "drchrono"
# The audit resource type of every row written here.
RESOURCE_TYPE = "ehr_connection"

# The ``revoke_skipped`` reason audited when no stored token could be read to revoke.
REVOKE_SKIPPED_NO_TOKENS = "no_readable_tokens"
# Longest id accepted from /api/users/current (the connection columns hold 64 characters).
MAX_EHR_ID_CHARS = 64
MAX_EHR_USERNAME_CHARS = 255


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
        upstream_code = error_code(params["error"])
        logger.info("OAuth authorization ended upstream (error_code=%s)", upstream_code)
        append_audit(
            engine,
            audit_key,
            _actor_record(
                actor, AuditAction.EHR_CONNECT, AuditOutcome.DENIED, error_code=upstream_code
            ),
        )
        raise OAuthAuthorizationFailed(error_code=upstream_code)
    code = params.get("code")
    if not code:
        raise _rejected(engine, audit_key, actor, "missing_code")

    try:
        token = exchange_code(
            config,
            code,
            code_verifier=consumed.code_verifier,
            redirect_uri=consumed.redirect_uri,
            http=http,
        )
        grant = grant_from(token, now or utc_now(), consumed.scopes)
        try:
            facts = _read_profile(config, grant.access_token, http)
        except EHRError:
            # The code is spent and the user must start again: do not leave live tokens behind.
            revoke_tokens(config, grant.refresh_token, grant.access_token, http)
            raise
    except EHRError as exc:
        failure = (exc.error_code if isinstance(exc, GrantRefusedError) else None) or exc.code
        logger.warning("OAuth code exchange failed (error_code=%s)", failure)
        append_audit(
            engine,
            audit_key,
            _actor_record(actor, AuditAction.EHR_CONNECT, AuditOutcome.ERROR, error_code=failure),
        )
        if isinstance(exc, GrantRefusedError):
            raise OAuthAuthorizationFailed(error_code=failure) from None
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


# ----------------------------------------------------------------------------- disconnect


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

    The tokens are revoked even when the connection is flagged ``needs_reauth``: after
    ``invalid_grant`` its access token may still be live upstream. The local delete happens even
    when the upstream revocation fails or cannot be attempted (no readable tokens, or the row
    belongs to another base URL, whose tokens are never sent to this one); the return value says
    whether upstream confirmed the revocation, and the ``EHR_DISCONNECT`` row records it as
    ``revoke_ok`` (and why it was not attempted as ``revoke_skipped``). Raises ``NotConnectedError`` for an
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
        # Not load_tokens: a connection flagged needs_reauth (say after invalid_grant) may still
        # hold an access token that is live upstream, and it must die with the connection.
        tokens = load_tokens_for_revocation(engine, cipher, connection_id)
        if tokens is not None:
            revoke_ok = revoke_tokens(config, tokens.refresh_token, tokens.access_token, http)
        else:
            skipped = REVOKE_SKIPPED_NO_TOKENS
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
