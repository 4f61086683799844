"""Administration beyond accounts: key rotation, a forced token refresh, the demo sandbox controls.

Settings offers these to admins only (DESIGN.md section 5). None of them reads PHI:

- ``rotate_token_keys`` re-encrypts every stored secret (token ciphertexts, PKCE verifiers)
  under the first key of ``TOKEN_KEYS`` (``storage.tokens.rotate_keys``). New keys come from
  configuration and a restart, never from here; after rotation an old key can be dropped from
  the list. Audited ``KEY_ROTATION``: an intent row before anything changes (an unwritable audit
  log stops the rotation) and the outcome with the number of values re-encrypted.
- ``force_token_refresh`` refreshes the connection's access token now, through the same
  single-flight ``ConnectionTokens`` the transport uses, so it can never race a refresh in
  flight. ``ehr.tokens`` writes ``TOKEN_REFRESHED``/``TOKEN_REFRESH_FAILED`` naming the admin.
- ``sandbox_faults``, ``set_sandbox_faults`` and ``reset_sandbox_data`` drive the embedded
  sandbox's admin HTTP API (demo mode, for training). Services may not import ``ehr.sandbox``
  (DESIGN.md section 3), so they speak its documented HTTP contract, like any other client, with
  the admin key handed in by the composition root. They are ``@service`` calls: authorised,
  audited, and mapped to the EHR error tree.

Every refusal writes a DENIED row before ``PermissionDenied`` is raised.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import requests
from sqlalchemy import Engine

from ehr.errors import (
    AuditWriteError,
    ConfigurationError,
    NotConnectedError,
    UnsupportedOperationError,
    UpstreamDataError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    error_from_response,
)
from ehr.policy import Action, PermissionDenied, authorize
from ehr.services.connection import Connector, current_connection
from ehr.services.gateway import Caller, Gateway, self_audited, service
from ehr.tokens import ConnectionTokens
from ehr.transport import new_correlation_id
from storage import audit, tokens
from storage.audit import AuditAction, AuditOutcome, AuditRecord

__all__ = [
    "ADMIN_KEY_HEADER",
    "ERROR_STATUSES",
    "MAX_LATENCY_MS",
    "MAX_THROTTLE_BURST",
    "FaultChange",
    "FaultState",
    "SandboxAdmin",
    "force_token_refresh",
    "reset_sandbox_data",
    "rotate_token_keys",
    "sandbox_faults",
    "set_sandbox_faults",
]

log = logging.getLogger(__name__)

# The sandbox's admin API contract (ehr/sandbox/api_admin.py documents the server side).
ADMIN_KEY_HEADER: Final = "X-Sandbox-Admin-Key"
_FAULTS_PATH: Final = "/sandbox-admin/faults"
_RESET_PATH: Final = "/sandbox-admin/reset-data"
# Loopback calls answer in milliseconds; a data reset regenerates the clinic (a few seconds).
_HTTP_TIMEOUT_S: Final = 30.0
# Training limits: enough to feel a slow EHR, never enough to hang the page for minutes.
MAX_LATENCY_MS: Final = 10_000
MAX_THROTTLE_BURST: Final = 100
# The server errors a training session can inject, one status at a time.
ERROR_STATUSES: Final = (500, 502, 503)
# Hosts on which the admin key may travel over plain http: the embedded sandbox only.
_LOOPBACK_NAMES: Final = frozenset({"localhost"})
# Longer than any access token lives (DrChrono's last 48 h): with this margin every stored
# token counts as due, which is what "refresh now" means.
_FORCE_MARGIN: Final = timedelta(days=3650)

ErrorStatus = Literal[500, 502, 503]


# ----------------------------------------------------------------------------- audit helpers


def _append(engine: Engine, key: bytes, record: AuditRecord) -> None:
    try:
        audit.append(engine, key, record)
    except audit.AuditWriteError:
        raise AuditWriteError() from None


def _row(
    caller: Caller,
    action: AuditAction,
    outcome: AuditOutcome,
    resource_type: str,
    correlation_id: str,
    **details: Any,
) -> AuditRecord:
    return AuditRecord(
        action=action,
        outcome=outcome,
        user_id=caller.principal.user_id,
        username=caller.principal.username,
        role=caller.principal.role,
        resource_type=resource_type,
        client_ip=caller.client_ip,
        correlation_id=correlation_id,
        details=details,
    )


def _admin_only(
    connector: Connector, caller: Caller, action: AuditAction, resource_type: str
) -> str:
    """Refuse non-admins (DENIED row first); returns the correlation id of this call."""
    correlation_id = new_correlation_id()
    try:
        authorize(caller.principal, Action.ADMIN, resource_type)
    except PermissionDenied as denied:
        denied.correlation_id = correlation_id
        _append(
            connector.engine,
            connector.audit_key,
            _row(
                caller,
                action,
                AuditOutcome.DENIED,
                resource_type,
                correlation_id,
                permission=Action.ADMIN.value,
            ),
        )
        raise
    return correlation_id


# ----------------------------------------------------------------------------- key rotation


@self_audited
def rotate_token_keys(connector: Connector, caller: Caller) -> int:
    """Re-encrypt every stored secret under the first configured key; returns how many.

    One transaction: nothing is half-rotated. Values no configured key can open are left as
    they are (their connection then asks for a reconnect). Raises ``PermissionDenied`` for
    non-admins and ``AuditWriteError`` when the audit log cannot be written (nothing changed).
    """
    resource = "token_store"
    correlation_id = _admin_only(connector, caller, AuditAction.KEY_ROTATION, resource)

    def record(outcome: AuditOutcome, **details: Any) -> None:
        _append(
            connector.engine,
            connector.audit_key,
            _row(caller, AuditAction.KEY_ROTATION, outcome, resource, correlation_id, **details),
        )

    record(AuditOutcome.SUCCESS, stage="requested")
    try:
        count = tokens.rotate_keys(connector.engine, connector.cipher)
    except Exception as exc:
        record(AuditOutcome.ERROR, error=type(exc).__name__)
        raise
    record(AuditOutcome.SUCCESS, reencrypted=count)
    log.info("stored secrets re-encrypted under the first key (count=%d)", count)
    return count


# ----------------------------------------------------------------------------- token refresh


@self_audited
def force_token_refresh(connector: Connector, caller: Caller) -> datetime | None:
    """Refresh the EHR access token now; returns the new expiry (UTC), never a token.

    Raises ``NotConnectedError`` when nothing is connected, ``ReauthorizationRequiredError``
    when the refresh token is dead (the connection is marked for reconnecting), and the
    ``Upstream*`` errors when the token endpoint failed (the connection is left as it was).
    """
    _admin_only(connector, caller, AuditAction.TOKEN_REFRESHED, "ehr_connection")
    status = current_connection(connector)
    if status is None:
        raise NotConnectedError()
    source = ConnectionTokens(
        connector.engine,
        connector.cipher,
        connector.oauth,
        status.connection_id,
        audit_key=connector.audit_key,
        margin=_FORCE_MARGIN,
        actor=caller.principal,
    )
    token = source.access_token()  # refreshes: every stored expiry is within the margin
    if status.expires_at is None:  # no expiry known, so never "due": ask for the refresh
        token = source.refresh_after_unauthorized(token)
    del token  # the token stays in this function; Settings shows only its expiry
    after = tokens.connection_status(connector.engine, status.connection_id)
    return None if after is None else after.expires_at


# ----------------------------------------------------------------------------- demo sandbox


@dataclass(frozen=True)
class SandboxAdmin:
    """How to reach the embedded sandbox's admin API: its base URL and admin key.

    Plain http is accepted on loopback only, so the key never crosses a network in clear.
    """

    base_url: str
    admin_key: str = field(repr=False)

    def __post_init__(self) -> None:
        """Refuse URLs the admin key must not be sent to (raises ``ValueError``)."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        if parts.scheme == "https" and host:
            return
        if parts.scheme != "http" or not _is_loopback(host):
            raise ValueError("the sandbox admin API must be https, or http on loopback")

    def url(self, path: str) -> str:
        """The absolute URL of an admin path."""
        return self.base_url.rstrip("/") + path


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class FaultState:
    """The sandbox's fault knobs now in force (the training subset Settings shows)."""

    latency_ms: int
    error_rates: dict[int, float]
    throttle_next: int

    @property
    def error_status(self) -> int | None:
        """The injected server-error status, or None when no errors are injected."""
        active = [status for status, rate in self.error_rates.items() if rate > 0]
        return active[0] if active else None

    @property
    def error_rate(self) -> float:
        """The probability that an API request fails with a server error."""
        return sum(self.error_rates.values())

    @property
    def any_active(self) -> bool:
        """True when any fault would hit the next request."""
        return bool(self.latency_ms or self.error_rate or self.throttle_next)

    @classmethod
    def from_payload(cls, payload: Any) -> FaultState:
        """Read the ``faults`` object the admin API answers with (``UpstreamDataError`` if odd)."""
        try:
            faults = payload["faults"]
            rates = {status: float(faults[f"error_{status}_rate"]) for status in ERROR_STATUSES}
            return cls(
                latency_ms=int(faults["latency_ms"]),
                error_rates=rates,
                throttle_next=int(faults["throttle_next"]),
            )
        except (KeyError, TypeError, ValueError):
            raise UpstreamDataError(details={"source": "sandbox_admin"}) from None


@dataclass(frozen=True)
class FaultChange:
    """One training change: the knobs to set, or one-shot actions.

    ``clear_first`` puts every knob back to its start value before the rest applies;
    ``expire_tokens`` makes every access token the sandbox issued expire now (the app then
    refreshes on the next call).
    """

    latency_ms: int | None = None
    error_rate: float | None = None
    error_status: ErrorStatus = 503
    throttle_next: int | None = None
    clear_first: bool = False
    expire_tokens: bool = False

    def problems(self) -> dict[str, str]:
        """Field name -> message for values out of range (empty when the change is valid)."""
        found: dict[str, str] = {}
        if self.latency_ms is not None and not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            found["latency_ms"] = f"Latency must be 0 to {MAX_LATENCY_MS} ms."
        if self.error_rate is not None and not 0.0 <= self.error_rate <= 1.0:
            found["error_rate"] = "The error probability must be between 0 and 1."
        if self.error_status not in ERROR_STATUSES:
            found["error_status"] = "Choose 500, 502 or 503."
        if self.throttle_next is not None and not 0 <= self.throttle_next <= MAX_THROTTLE_BURST:
            found["throttle_next"] = f"The 429 burst must be 0 to {MAX_THROTTLE_BURST} requests."
        return found

    def payload(self) -> dict[str, Any]:
        """The JSON body for ``POST /sandbox-admin/faults``."""
        body: dict[str, Any] = {}
        if self.clear_first:
            body["reset"] = True
        if self.latency_ms is not None:
            body["latency_ms"] = self.latency_ms
        if self.error_rate is not None:
            # One status at a time keeps training legible; the others are switched off.
            for status in ERROR_STATUSES:
                rate = self.error_rate if status == self.error_status else 0.0
                body[f"error_{status}_rate"] = rate
        if self.throttle_next is not None:
            body["throttle_next"] = self.throttle_next
        if self.expire_tokens:
            body["expire_tokens"] = True
        return body


def _call_sandbox(
    sandbox: SandboxAdmin, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """One admin API call; answers its JSON, or raises an ``EHRError``."""
    correlation_id = new_correlation_id()
    try:
        reply = requests.request(
            method,
            sandbox.url(path),
            json=body,
            headers={ADMIN_KEY_HEADER: sandbox.admin_key},
            timeout=_HTTP_TIMEOUT_S,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise UpstreamTimeoutError(correlation_id=correlation_id) from None
    except requests.RequestException as exc:
        log.warning("sandbox admin API unreachable (%s)", type(exc).__name__)
        raise UpstreamUnavailableError(correlation_id=correlation_id) from None
    if reply.status_code == 403:  # this endpoint's 403 means a wrong key, not a DrChrono scope
        raise ConfigurationError(
            details={"setting": "sandbox_admin_key"}, correlation_id=correlation_id
        )
    if reply.status_code == 404:  # started without faults_admin_enabled
        raise UnsupportedOperationError(
            "The sandbox's training controls are not enabled.", correlation_id=correlation_id
        )
    if reply.status_code >= 300:
        raise error_from_response(
            reply.status_code,
            reply.content,
            reply.headers,
            method=method,
            correlation_id=correlation_id,
            now=datetime.now(UTC),
            path=path,
        )
    try:
        return reply.json()
    except ValueError:
        raise UpstreamDataError(
            details={"source": "sandbox_admin"}, correlation_id=correlation_id
        ) from None


def _describe_change(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The audit facts of a fault change (the sandbox's own field names would trip the PHI guard)."""
    change = arguments.get("change")
    if not isinstance(change, FaultChange):
        return {}
    facts: dict[str, Any] = {
        "clear_first": change.clear_first,
        "expire_access": change.expire_tokens,
    }
    if change.latency_ms is not None:
        facts["latency_ms"] = change.latency_ms
    if change.error_rate is not None:
        facts.update(error_rate=change.error_rate, error_status=change.error_status)
    if change.throttle_next is not None:
        facts["throttle_next"] = change.throttle_next
    return facts


@service(Action.ADMIN, AuditAction.READ, "sandbox_faults", "demo")
def sandbox_faults(gw: Gateway, sandbox: SandboxAdmin) -> FaultState:
    """The sandbox's fault knobs now in force."""
    return FaultState.from_payload(_call_sandbox(sandbox, "GET", _FAULTS_PATH))


@service(Action.ADMIN, AuditAction.UPDATE, "sandbox_faults", "demo", describe=_describe_change)
def set_sandbox_faults(gw: Gateway, sandbox: SandboxAdmin, change: FaultChange) -> FaultState:
    """Apply ``change`` to the sandbox; returns the knobs now in force.

    Raises ``ValueError`` for a change that fails ``FaultChange.problems`` (check it first),
    ``ValidationFailedError`` if the sandbox refuses it.
    """
    problems = change.problems()
    if problems:
        raise ValueError(f"invalid fault change: {sorted(problems)}")
    reply = _call_sandbox(sandbox, "POST", _FAULTS_PATH, change.payload())
    gw.cache.clear()  # answers cached before the change would hide its effect
    return FaultState.from_payload(reply)


@service(Action.ADMIN, AuditAction.UPDATE, "sandbox_data", "demo")
def reset_sandbox_data(gw: Gateway, sandbox: SandboxAdmin) -> int:
    """Regenerate the synthetic clinic from its seed (undoes every training edit).

    Returns the sandbox's data generation counter. This session's cached answers are dropped;
    other sessions' caches expire within ``CACHE_TTL_S``.
    """
    reply = _call_sandbox(sandbox, "POST", _RESET_PATH)
    gw.cache.clear()
    try:
        return int(reply["generation"])
    except (KeyError, TypeError, ValueError):
        raise UpstreamDataError(details={"source": "sandbox_admin"}) from None
