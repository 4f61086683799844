"""Accounts: first-run admin, sign-in, session resume and sign-out, for the UI edge.

Pages and routes may not import ``storage`` (DESIGN.md section 3), so the account operations
they need are offered here. These are not EHR calls and are not wrapped in ``@service``:
``storage.identity`` and ``storage.sessions`` emit an event for every sign-in, failure,
sign-out, timeout and privilege change, and ``_record_event`` turns each into an audit row
*before* the change is written (if the row cannot be written, nothing changes). They are
marked ``@self_audited`` so the audit meta-test knows how they are covered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine

from ehr.errors import AuditWriteError
from ehr.policy import Action, PermissionDenied, Principal, authorize
from ehr.services.gateway import Caller, self_audited
from storage import audit, identity, sessions
from storage.identity import IdentityError, UserInfo
from storage.passwords import PasswordPolicyError

__all__ = [
    "AccountError",
    "AccountStore",
    "SessionEnded",
    "SignInRefused",
    "SignedInSession",
    "change_role",
    "create_first_admin",
    "create_user",
    "list_users",
    "needs_first_admin",
    "reset_password",
    "resume_session",
    "set_active",
    "sign_in",
    "sign_out",
]

log = logging.getLogger(__name__)

R = TypeVar("R")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AccountStore:
    """What account operations need: the database, the audit key and the session limits."""

    engine: Engine
    audit_key: bytes = field(repr=False)
    idle: timedelta = sessions.DEFAULT_IDLE_TIMEOUT
    absolute: timedelta = sessions.DEFAULT_ABSOLUTE_TIMEOUT
    clock: Callable[[], datetime] = _utc_now


class AccountError(Exception):
    """An account operation was refused; ``message`` is safe to show next to the form."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class SignedInSession:
    """A new session: ``token`` goes into the HttpOnly cookie and nowhere else."""

    token: str = field(repr=False)
    user: UserInfo
    idle_timeout: timedelta
    absolute_timeout: timedelta


@dataclass(frozen=True)
class SignInRefused:
    """Sign-in failed; ``message`` is the same whatever the reason (no account enumeration)."""

    message: str


@dataclass(frozen=True)
class SessionEnded:
    """The presented session does not authenticate; ``timed_out`` picks the wording."""

    timed_out: bool


def _record_event(store: AccountStore, client_ip: str | None) -> identity.EventHook:
    """Write one audit row per identity event, naming the user it concerns."""

    def hook(event: identity.IdentityEvent) -> None:
        details: dict[str, Any] = {}
        user_id: int | None = None
        username: str | None = None
        role: str | None = None
        resource_id: int | None = None
        ip = client_ip
        if isinstance(event, identity.PrivilegeChanged):
            user_id, username = event.actor_id, event.actor_username
            resource_id = event.target_id
            details = {"field": str(event.field)}
            if event.field != identity.ChangedField.PASSWORD:
                details.update(old=event.old, new=event.new)
        elif isinstance(event, identity.LoginSucceeded):
            user_id, username, role = event.user_id, event.username, event.role
            ip = event.client_ip or client_ip
        elif isinstance(event, identity.LoginFailed):
            user_id, username = event.user_id, event.username
            details = {"reason": str(event.reason), "locked_now": event.locked_now}
            if event.attempt_fingerprint:
                details["attempt_fingerprint"] = event.attempt_fingerprint
            ip = event.client_ip or client_ip
        elif isinstance(event, identity.SignedOut):
            user_id, username = event.user_id, event.username
            details = {"session_ref": event.session_ref}
        elif isinstance(event, identity.SessionTimedOut):
            user_id, username = event.user_id, event.username
            details = {"session_ref": event.session_ref, "reason": str(event.reason)}
        record = audit.AuditRecord(
            action=audit.AuditAction(event.audit_action),
            outcome=(
                audit.AuditOutcome.DENIED
                if isinstance(event, identity.LoginFailed)
                else audit.AuditOutcome.SUCCESS
            ),
            user_id=user_id,
            username=username,
            role=role,
            resource_type="app_user",
            resource_id=resource_id if resource_id is not None else user_id,
            client_ip=ip,
            details=details,
        )
        try:
            audit.append(store.engine, store.audit_key, record)
        except audit.AuditWriteError:
            raise AuditWriteError() from None

    return hook


@self_audited
def needs_first_admin(store: AccountStore) -> bool:
    """True while no account exists: the app offers to create the first administrator."""
    return identity.count_users(store.engine) == 0


@self_audited
def create_first_admin(
    store: AccountStore, username: str, password: str, *, client_ip: str | None = None
) -> UserInfo:
    """Create the first administrator; refused once any account exists.

    Raises ``AccountError`` with a message for the form (bad username, weak password, an
    account already exists).
    """
    try:
        return identity.create_user(
            store.engine,
            username,
            password,
            identity.Role.ADMIN,
            None,
            now=store.clock(),
            on_event=_record_event(store, client_ip),
        )
    except PasswordPolicyError as exc:
        raise AccountError(exc.message) from None
    except IdentityError as exc:
        raise AccountError(str(exc)) from None


@self_audited
def sign_in(
    store: AccountStore,
    username: str,
    password: str,
    *,
    client_ip: str | None = None,
    user_agent: str | None = None,
    replaces: str | None = None,
) -> SignedInSession | SignInRefused:
    """Check the password and open a fresh session (ending ``replaces``, SS-02)."""
    hook = _record_event(store, client_ip)
    result = identity.authenticate(
        store.engine, username, password, store.clock(), client_ip, on_event=hook
    )
    if isinstance(result, identity.SignInRejected):
        return SignInRefused(result.message)
    try:
        token = sessions.start_session(
            store.engine,
            result.user.id,
            store.clock(),
            idle=store.idle,
            absolute=store.absolute,
            replaces=replaces,
            client_ip=client_ip,
            user_agent=user_agent,
        )
    except identity.NotAllowed:  # disabled between the password check and now
        return SignInRefused(identity.SIGN_IN_REJECTED_MESSAGE)
    return SignedInSession(token, result.user, store.idle, store.absolute)


@self_audited
def resume_session(
    store: AccountStore, token: str | None, *, client_ip: str | None = None
) -> Caller | SessionEnded:
    """The caller behind a session cookie, sliding its idle window; or why it no longer works."""
    result = sessions.validate_session(
        store.engine, token, store.clock(), on_event=_record_event(store, client_ip)
    )
    if isinstance(result, sessions.SessionInvalid):
        return SessionEnded(timed_out=result.reason in {"idle_timeout", "absolute_timeout"})
    return Caller(
        Principal.from_user(result.user), session_ref=result.session.ref, client_ip=client_ip
    )


@self_audited
def sign_out(store: AccountStore, token: str | None, *, client_ip: str | None = None) -> bool:
    """End the session behind ``token``; False when there was none to end."""
    return sessions.end_session(
        store.engine, token, store.clock(), on_event=_record_event(store, client_ip)
    )


# ----------------------------------------------------------------------------- administration


def _admin_only(store: AccountStore, caller: Caller, what: str) -> None:
    """Refuse non-admins with a DENIED audit row before touching any account."""
    try:
        authorize(caller.principal, Action.ADMIN, f"app_user/{what}")
    except PermissionDenied:
        record = audit.AuditRecord(
            action=audit.AuditAction.PRIVILEGE_CHANGE,
            outcome=audit.AuditOutcome.DENIED,
            user_id=caller.principal.user_id,
            username=caller.principal.username,
            role=caller.principal.role,
            resource_type="app_user",
            client_ip=caller.client_ip,
            details={"operation": what},
        )
        try:
            audit.append(store.engine, store.audit_key, record)
        except audit.AuditWriteError:
            raise AuditWriteError() from None
        raise


def _admin_call(store: AccountStore, caller: Caller, what: str, call: Callable[[], R]) -> R:
    _admin_only(store, caller, what)
    try:
        return call()
    except PasswordPolicyError as exc:
        raise AccountError(exc.message) from None
    except IdentityError as exc:
        raise AccountError(str(exc)) from None


@self_audited
def list_users(store: AccountStore, caller: Caller) -> list[UserInfo]:
    """Every account, for the Settings page (admins only; no password data)."""
    return _admin_call(store, caller, "list", lambda: identity.list_users(store.engine))


@self_audited
def create_user(
    store: AccountStore, caller: Caller, username: str, password: str, role: str
) -> UserInfo:
    """An admin creates an account; ``AccountError`` carries a message for the form."""
    hook = _record_event(store, caller.client_ip)
    return _admin_call(
        store,
        caller,
        "create",
        lambda: identity.create_user(
            store.engine,
            username,
            password,
            role,
            caller.principal.user_id,
            now=store.clock(),
            on_event=hook,
        ),
    )


@self_audited
def change_role(store: AccountStore, caller: Caller, user_id: int, role: str) -> UserInfo:
    """Change an account's role (its sessions end; the last admin cannot be demoted)."""
    hook = _record_event(store, caller.client_ip)
    return _admin_call(
        store,
        caller,
        "change_role",
        lambda: identity.change_role(
            store.engine, caller.principal.user_id, user_id, role, now=store.clock(), on_event=hook
        ),
    )


@self_audited
def set_active(store: AccountStore, caller: Caller, user_id: int, active: bool) -> UserInfo:
    """Disable (ending its sessions) or re-enable an account."""
    hook = _record_event(store, caller.client_ip)
    return _admin_call(
        store,
        caller,
        "set_active",
        lambda: identity.set_active(
            store.engine,
            caller.principal.user_id,
            user_id,
            active,
            now=store.clock(),
            on_event=hook,
        ),
    )


@self_audited
def reset_password(
    store: AccountStore, caller: Caller, user_id: int, new_password: str
) -> UserInfo:
    """Set a new password for an account (its sessions end)."""
    hook = _record_event(store, caller.client_ip)
    return _admin_call(
        store,
        caller,
        "reset_password",
        lambda: identity.reset_password(
            store.engine,
            caller.principal.user_id,
            user_id,
            new_password,
            now=store.clock(),
            on_event=hook,
        ),
    )
