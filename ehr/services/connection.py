"""The EHR connection as Settings and the header see it: status, connect, disconnect, budget.

Connecting is an OAuth authorization-code flow run by ``ehr.oauth`` (state and PKCE verifier
stored server-side, the code exchanged in the callback route); this module adds the role check
and the audit rows around it and summarises the stored connection without ever exposing a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine

from ehr import oauth
from ehr.errors import NotConnectedError
from ehr.oauth import ConnectResult, OAuthClientConfig
from ehr.policy import Action, PermissionDenied, Principal, authorize
from ehr.services.gateway import Caller, self_audited
from ehr.transport import new_correlation_id
from storage import audit, tokens
from storage.crypto import Cipher

__all__ = [
    "ConnectionSummary",
    "Connector",
    "begin_connect",
    "complete_connect",
    "connection_summary",
    "disconnect",
]

ConnectionState = Literal["connected", "needs_reconnect", "not_connected"]

# The principal used for a callback that arrives without a live app session: it matches no
# stored state, so the state is burned and the attempt audited as another user's.
_ANONYMOUS = Principal(user_id=0, username="anonymous", role="none", is_active=False)


@dataclass(frozen=True)
class Connector:
    """Everything needed to connect to, and talk about, the configured EHR."""

    engine: Engine
    cipher: Cipher = field(repr=False)
    audit_key: bytes = field(repr=False)
    oauth: OAuthClientConfig
    vendor: str = "drchrono"
    calls_per_hour: int = tokens.DEFAULT_CALLS_PER_HOUR
    demo: bool = False


@dataclass(frozen=True)
class ConnectionSummary:
    """The connection for Settings and the header: never a token."""

    state: ConnectionState
    connection_id: int | None = None
    ehr_username: str | None = None
    practice_group: str | None = None
    scopes: tuple[str, ...] = ()
    missing_scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None
    connected_at: datetime | None = None
    last_refreshed_at: datetime | None = None
    reauth_reason: str | None = None
    calls_this_hour: int = 0
    calls_per_hour: int = tokens.DEFAULT_CALLS_PER_HOUR
    budget_resets_at: datetime | None = None


def current_connection(connector: Connector) -> tokens.ConnectionStatus | None:
    """The stored connection to the configured EHR (same vendor and base URL), if any."""
    matching = [
        c
        for c in tokens.list_connections(connector.engine)
        if c.vendor == connector.vendor and c.base_url == connector.oauth.base_url
    ]
    return matching[-1] if matching else None


def connection_summary(connector: Connector, now: datetime | None = None) -> ConnectionSummary:
    """Connection state and hourly budget (not PHI and read on every rerun: not audited)."""
    status = current_connection(connector)
    if status is None:
        return ConnectionSummary(state="not_connected", calls_per_hour=connector.calls_per_hour)
    budget = tokens.budget_state(
        connector.engine, status.connection_id, connector.calls_per_hour, now or datetime.now(UTC)
    )
    state: ConnectionState
    if status.needs_reauth:
        state = "needs_reconnect"
    elif status.connected:
        state = "connected"
    else:
        state = "not_connected"
    return ConnectionSummary(
        state=state,
        connection_id=status.connection_id,
        ehr_username=status.ehr_username,
        practice_group=status.practice_group,
        scopes=status.scopes,
        missing_scopes=status.missing_scopes,
        expires_at=status.expires_at,
        connected_at=status.connected_at,
        last_refreshed_at=status.last_refreshed_at,
        reauth_reason=status.reauth_reason,
        calls_this_hour=budget.calls,
        calls_per_hour=budget.limit,
        budget_resets_at=budget.resets_at,
    )


def _authorize_admin(connector: Connector, caller: Caller, action: audit.AuditAction) -> None:
    try:
        authorize(caller.principal, Action.ADMIN, "ehr_connection")
    except PermissionDenied as denied:
        denied.correlation_id = new_correlation_id()
        audit.append(
            connector.engine,
            connector.audit_key,
            audit.AuditRecord(
                action=action,
                outcome=audit.AuditOutcome.DENIED,
                user_id=caller.principal.user_id,
                username=caller.principal.username,
                role=caller.principal.role,
                resource_type="ehr_connection",
                client_ip=caller.client_ip,
                correlation_id=denied.correlation_id,
                details={"permission": Action.ADMIN.value},
            ),
        )
        raise


@self_audited
def begin_connect(connector: Connector, caller: Caller) -> str:
    """The EHR authorize URL for an admin (state bound to their user and session)."""
    _authorize_admin(connector, caller, audit.AuditAction.EHR_CONNECT)
    return oauth.begin_authorization(
        connector.engine,
        connector.cipher,
        connector.oauth,
        user_id=caller.principal.user_id,
        session_ref=caller.session_ref or "",
    )


@self_audited
def complete_connect(
    connector: Connector, caller: Caller | None, params: Mapping[str, str]
) -> ConnectResult:
    """Finish the OAuth callback: state checked first, code exchanged, tokens stored, audited.

    ``caller`` is None when the callback arrived without a live app session; the state is then
    rejected (and burned) like any state presented by someone other than who started it.
    """
    principal = caller.principal if caller is not None else _ANONYMOUS
    session_ref = caller.session_ref if caller is not None and caller.session_ref else "-"
    return oauth.complete_authorization(
        connector.engine,
        connector.cipher,
        connector.oauth,
        audit_key=connector.audit_key,
        actor=principal,
        session_ref=session_ref,
        params=params,
    )


@self_audited
def disconnect(connector: Connector, caller: Caller) -> bool:
    """Revoke the tokens upstream, delete them here, audit (``ehr.oauth`` writes the row).

    Returns whether upstream confirmed the revocation: the local tokens are deleted either
    way, and Settings says so when the EHR could not be told. Raises ``NotConnectedError``
    when nothing is connected.
    """
    _authorize_admin(connector, caller, audit.AuditAction.EHR_DISCONNECT)
    status = current_connection(connector)
    if status is None:
        raise NotConnectedError()
    return oauth.revoke_and_disconnect(
        connector.engine,
        connector.cipher,
        connector.oauth,
        status.connection_id,
        audit_key=connector.audit_key,
        actor=caller.principal,
    )
