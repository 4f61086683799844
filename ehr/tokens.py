"""Bearer tokens for the transport: one stored EHR connection as a ``TokenSource`` (TK-02, TK-03).

``ConnectionTokens.access_token()`` decrypts the stored access token and refreshes it first when
it is within the safety margin of its expiry. The expiry was computed from our own clock when the
token arrived (``storage.tokens.expires_at_from``), never from the server's ``Date``.

A refresh is single-flight twice over: an in-process lock per connection id (module level, so
every instance in the process shares it) keeps the threads of one process from queueing on the
database, and ``lock_connection_for_refresh`` (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``FOR
UPDATE``) serialises processes and replicas. After each lock the tokens are read again, and a
token someone else just refreshed is used instead of refreshing again: with rotation, a second
refresh would present a refresh token the server has already retired. The new pair is written
in the locked transaction with ``expected_version``, so the old pair is retired atomically.

``invalid_grant`` marks the connection ``needs_reauth`` (one audit row, no retry: every later call
fails fast with ``ReauthorizationRequiredError`` and makes no token request). Other failures of the
token endpoint (5xx, timeouts) leave the connection as it is.

Audit rows written here name the app user in ``actor`` when the caller passes one (the user whose
request needed the refresh); otherwise they carry no user id and the username ``system``: a
refresh is done by the app on the connection's behalf, not by a person.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NoReturn

import requests
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from ehr.errors import (
    AuthError,
    ConfigurationError,
    EHRError,
    GrantRefusedError,
    NotConnectedError,
    ReauthorizationRequiredError,
    UpstreamUnavailableError,
)
from ehr.oauth import (
    RESOURCE_TYPE,
    OAuthClientConfig,
    append_audit,
    same_ehr,
)
from ehr.oauth_endpoints import request_refresh
from ehr.policy import Principal
from storage.audit import AuditAction, AuditOutcome, AuditRecord
from storage.crypto import Cipher
from storage.tokens import (
    EXPIRY_SAFETY_MARGIN,
    REASON_DECRYPT_FAILED,
    REASON_DISCONNECTED,
    REASON_NOT_CONNECTED,
    NeedsReconnect,
    TokenSet,
    connection_status,
    load_tokens,
    lock_connection_for_refresh,
    mark_needs_reauth,
    save_refreshed_tokens,
    utc_now,
)

__all__ = ["SYSTEM_USERNAME", "ConnectionTokens"]

logger = logging.getLogger(__name__)

# The audit username of rows written without an app user: the app acting on its own.
SYSTEM_USERNAME = "system"
# The reauth reason stored when the token endpoint answers invalid_grant.
REASON_INVALID_GRANT = "invalid_grant"
# The reauth reason stored when a connection has no refresh token left to use.
REASON_NO_REFRESH_TOKEN = "no_refresh_token"  # noqa: S105  a reason code, not a credential
# RFC 6749 codes that blame the client's credentials rather than the grant.
_CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})

_process_locks: dict[int, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(connection_id: int) -> threading.Lock:
    """The in-process refresh lock of a connection, shared by every instance in this process."""
    with _process_locks_guard:
        return _process_locks.setdefault(connection_id, threading.Lock())


NeedsRefresh = Callable[[TokenSet], bool]


class ConnectionTokens:
    """The ``TokenSource`` of one stored EHR connection (see the module docstring).

    :param engine: the database holding the connection and the audit log.
    :param cipher: opens the token ciphertexts.
    :param config: the OAuth client; tokens are refreshed at its token endpoint, and only for a
        connection stored for its base URL.
    :param connection_id: the connection row.
    :param audit_key: the audit chain key.
    :param http: a session to borrow adapters from for token calls (default: a fresh one).
    :param clock: aware UTC now; the receipt time of new tokens and the time expiry is checked at.
    :param margin: refresh this long before the server-stated expiry. Stored expiries already
        carry ``EXPIRY_SAFETY_MARGIN``; the default margin therefore means "at the stored expiry".
    :param actor: the app user whose requests this instance serves, named in its audit rows.
    """

    def __init__(
        self,
        engine: Engine,
        cipher: Cipher,
        config: OAuthClientConfig,
        connection_id: int,
        *,
        audit_key: bytes,
        http: requests.Session | None = None,
        clock: Callable[[], datetime] = utc_now,
        margin: timedelta = EXPIRY_SAFETY_MARGIN,
        actor: Principal | None = None,
    ) -> None:
        if margin < timedelta(0):
            raise ValueError("margin must not be negative")
        self._engine = engine
        self._cipher = cipher
        self._config = config
        self._connection_id = connection_id
        self._audit_key = audit_key
        self._http = http
        self._clock = clock
        self._margin = margin
        self._actor = actor

    @property
    def connection_id(self) -> int:
        """The connection these tokens belong to."""
        return self._connection_id

    # -- TokenSource -------------------------------------------------------------------------

    def access_token(self) -> str:
        """A usable access token, refreshed first when it is within the margin of expiry.

        Raises ``NotConnectedError`` (never connected, or disconnected),
        ``ReauthorizationRequiredError`` (refresh token dead, tokens unreadable),
        ``UpstreamUnavailableError``/``UpstreamTimeoutError``/``RateLimitedError`` (the token
        endpoint failed; try later) or ``AuditWriteError``.
        """
        current = self._load()
        if not self._due(current):
            return current.access_token.reveal()
        return self._refresh(self._due)

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        """After upstream answered 401 to ``rejected_token``: the stored token if someone else
        has already replaced it, else the token from one refresh. Raises as ``access_token``."""

        def needs_refresh(tokens: TokenSet) -> bool:
            stored = tokens.access_token.reveal().encode()
            return hmac.compare_digest(stored, rejected_token.encode()) or self._due(tokens)

        return self._refresh(needs_refresh)

    # -- internals ---------------------------------------------------------------------------

    def _due(self, tokens: TokenSet) -> bool:
        if tokens.expires_at is None:
            return False
        server_expiry = tokens.expires_at + EXPIRY_SAFETY_MARGIN
        return self._clock() >= server_expiry - self._margin

    def _load(self) -> TokenSet:
        loaded = load_tokens(self._engine, self._cipher, self._connection_id)
        if isinstance(loaded, NeedsReconnect):
            raise self._unusable(loaded)
        return loaded

    def _record(self, action: AuditAction, outcome: AuditOutcome, **details: object) -> AuditRecord:
        actor = self._actor
        return AuditRecord(
            action=action,
            outcome=outcome,
            user_id=None if actor is None else actor.user_id,
            username=SYSTEM_USERNAME if actor is None else actor.username,
            role=None if actor is None else actor.role,
            resource_type=RESOURCE_TYPE,
            resource_id=self._connection_id,
            details={"connection_id": self._connection_id, **details},
        )

    def _unusable(self, problem: NeedsReconnect) -> AuthError:
        """The error for a connection that cannot be used; audits a newly found decrypt failure.

        Call it only outside a refresh transaction (the audit append takes its own write lock).
        """
        if problem.reason in (REASON_NOT_CONNECTED, REASON_DISCONNECTED):
            return NotConnectedError(details={"reason": problem.reason})
        if problem.newly_marked and problem.reason == REASON_DECRYPT_FAILED:
            append_audit(
                self._engine,
                self._audit_key,
                self._record(AuditAction.TOKEN_DECRYPT_FAILED, AuditOutcome.ERROR),
            )
        return ReauthorizationRequiredError(details={"reason": problem.reason})

    def _refresh(self, needs_refresh: NeedsRefresh) -> str:
        with _process_lock(self._connection_id):
            latest = self._load()  # another thread may have refreshed while this one waited
            if not needs_refresh(latest):
                return latest.access_token.reveal()
            status = connection_status(self._engine, self._connection_id)
            if status is None:
                raise NotConnectedError(details={"reason": REASON_NOT_CONNECTED})
            if not same_ehr(status.base_url, self._config):
                # Never send a refresh token to an EHR other than the one that issued it.
                raise ConfigurationError(
                    details={"setting": "base_url", "problem": "connection of another EHR"}
                )
            return self._refresh_across_processes(needs_refresh)

    def _refresh_across_processes(self, needs_refresh: NeedsRefresh) -> str:
        """Refresh under the database lock; audit rows are written after it is released."""
        pending: list[AuditRecord] = []
        try:
            with Session(self._engine) as session:
                try:
                    found = lock_connection_for_refresh(session, self._connection_id)
                except OperationalError:  # another process held the lock past the busy timeout
                    session.rollback()
                    return self._after_lock_timeout(needs_refresh)
                if not found:
                    session.rollback()
                    raise NotConnectedError(details={"reason": REASON_NOT_CONNECTED})
                token = self._refresh_in(session, needs_refresh, pending)
                session.commit()
                return token
        finally:
            for record in pending:
                append_audit(self._engine, self._audit_key, record)

    def _after_lock_timeout(self, needs_refresh: NeedsRefresh) -> str:
        latest = self._load()
        if not needs_refresh(latest):
            return latest.access_token.reveal()
        raise UpstreamUnavailableError(details={"reason": "refresh_lock_busy"})

    def _refresh_in(
        self, session: Session, needs_refresh: NeedsRefresh, pending: list[AuditRecord]
    ) -> str:
        """Inside the locked transaction: re-read, refresh if still needed, save the new pair."""
        latest = load_tokens(session, self._cipher, self._connection_id)
        if isinstance(latest, NeedsReconnect):
            session.commit()  # keeps a decrypt-failure mark; releases the lock before the audit
            if latest.newly_marked and latest.reason == REASON_DECRYPT_FAILED:
                pending.append(self._record(AuditAction.TOKEN_DECRYPT_FAILED, AuditOutcome.ERROR))
            raise self._unusable(NeedsReconnect(latest.connection_id, latest.reason))
        if not needs_refresh(latest):
            session.rollback()
            return latest.access_token.reveal()  # another process refreshed while we waited
        if latest.refresh_token is None:
            self._give_up(session, REASON_NO_REFRESH_TOKEN, pending)
        try:
            grant = request_refresh(
                self._config,
                latest.refresh_token,
                scopes=latest.scopes,
                http=self._http,
                clock=self._clock,
            )
        except GrantRefusedError as exc:
            if exc.error_code == REASON_INVALID_GRANT:
                self._give_up(session, REASON_INVALID_GRANT, pending)
            session.rollback()
            self._note_failure(exc, pending)
            if exc.error_code in _CLIENT_ERRORS:
                # Our client id or secret is wrong: reconnecting would not help, configuring will.
                raise ConfigurationError(
                    details={"setting": "oauth_client", "error_code": exc.error_code}
                ) from None
            raise
        except EHRError as exc:
            session.rollback()
            self._note_failure(exc, pending)
            raise
        save_refreshed_tokens(
            session, self._cipher, self._connection_id, grant, expected_version=latest.version
        )
        logger.info("EHR access token refreshed (connection_id=%s)", self._connection_id)
        pending.append(self._record(AuditAction.TOKEN_REFRESHED, AuditOutcome.SUCCESS))
        return grant.access_token.reveal()

    def _give_up(self, session: Session, reason: str, pending: list[AuditRecord]) -> NoReturn:
        """Mark the connection ``needs_reauth`` in the locked transaction; never retried."""
        mark_needs_reauth(session, self._connection_id, reason)
        session.commit()
        logger.warning(
            "EHR connection needs re-authorisation (connection_id=%s reason=%s)",
            self._connection_id,
            reason,
        )
        pending.append(
            self._record(AuditAction.TOKEN_REFRESH_FAILED, AuditOutcome.ERROR, error_code=reason)
        )
        raise ReauthorizationRequiredError(details={"reason": reason})

    def _note_failure(self, exc: EHRError, pending: list[AuditRecord]) -> None:
        code = exc.details.get("error_code", exc.code)
        logger.warning(
            "EHR token refresh failed (connection_id=%s error=%s)", self._connection_id, code
        )
        pending.append(
            self._record(AuditAction.TOKEN_REFRESH_FAILED, AuditOutcome.ERROR, error_code=code)
        )
