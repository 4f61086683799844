"""App users: the ``app_user`` and ``app_session`` tables, user administration and sign-in.

Requirements: SECURITY.md AC-01 (unique, case-folded usernames; argon2id hashes), AC-02 (a second
factor can be added later), AC-07 (privilege changes admin-only, with old and new values) and
section 3.1 (form-field input). Session functions live in ``storage/sessions.py``; passwords in
``storage/passwords.py``.

**Layering.** ``storage`` never imports ``ehr``, so it cannot raise ``ehr.policy.PermissionDenied``.
The service layer calls ``ehr.policy.authorize(principal, Action.ADMIN)`` first (that is the choke
point and writes the DENIED audit row); these functions then re-check, inside their own unit of
work, that the actor's *current* row is an active admin and raise ``NotAllowed`` otherwise. The
second check closes the gap between a stale ``Principal`` and the database (an admin demoted in
another tab); the service layer treats ``NotAllowed`` exactly like ``PermissionDenied``.

**Audit events.** Every state change produces a typed event (``PrivilegeChanged``,
``LoginSucceeded``, ``LoginFailed``, ``SignedOut``, ``SessionTimedOut``), each naming the
``AuditAction`` it maps to. Functions take a required ``on_event`` hook; the service layer wires it
to ``storage.audit.append``. Ordering, so that an audit failure fails closed:

1. validate and read (no write lock held),
2. call ``on_event(event)``; if it raises, the exception propagates and nothing is written,
3. write and commit.

The hook runs before our first write because the audit append uses its own transaction and
SQLite allows one writer: calling it while we hold the write lock would wait out the busy timeout
and fail every time. If step 3 then fails (a lost race, a database error), the caller gets the
exception after an audit row that says the change was requested; it records an ERROR row.
The one exception is a failed sign-in: its counter is committed *before* the hook so that an
audit outage cannot be used to dodge the lockout (no privilege is granted either way).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from storage import passwords
from storage.types import UTCDateTime

# Display length of a username; ASVS only asks for uniqueness, 64 fits an e-mail local part.
MAX_USERNAME_LENGTH = 64
# Raw input longer than this is refused before Unicode normalisation (bounds work on 10 kB pastes).
MAX_RAW_USERNAME_INPUT = 4 * MAX_USERNAME_LENGTH
# Case folding can expand a character (German sharp s -> "ss"), so the key column is wider.
USERNAME_KEY_COLUMN_LENGTH = 4 * MAX_USERNAME_LENGTH
# Punctuation allowed in usernames besides letters, marks, digits and single spaces.
USERNAME_PUNCTUATION = frozenset("._-@+'")
# Consecutive failed sign-ins that lock an account (ASVS 2.2.1 asks for anti-automation).
MAX_FAILED_LOGINS = 5
# How long a lock lasts: long enough to stop online guessing, short enough not to need an admin.
LOCKOUT_DURATION = timedelta(minutes=15)
# Hex characters of sha256(username attempt) kept for unknown names: enough to correlate a spray
# in the audit log, far too few to recover a password typed into the username field.
ATTEMPT_FINGERPRINT_HEX = 8
# The one message a failed sign-in shows, whatever the reason (no user enumeration).
SIGN_IN_REJECTED_MESSAGE = "Wrong username or password."


class Role(StrEnum):
    """The four roles of DESIGN.md section 5; ``ehr.policy`` re-exports this enum."""

    ADMIN = "admin"
    CLINICIAN = "clinician"
    FRONT_DESK = "front_desk"
    BILLING = "billing"


class AppUser(SQLModel, table=True):
    """A person who signs in to the dashboard. Never handed out: see ``UserInfo``."""

    __tablename__ = "app_user"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'clinician', 'front_desk', 'billing')", name="ck_app_user_role"
        ),
        CheckConstraint("failed_logins >= 0", name="ck_app_user_failed_logins"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=MAX_USERNAME_LENGTH)
    username_key: str = Field(max_length=USERNAME_KEY_COLUMN_LENGTH, unique=True)
    password_hash: str = Field(max_length=255, repr=False)
    role: str = Field(max_length=16)
    is_active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())
    password_changed_at: datetime = Field(sa_type=UTCDateTime())
    # Fernet ciphertext of a TOTP seed once MFA is built (AC-02); NULL means not enrolled.
    totp_secret_ciphertext: str | None = Field(default=None, repr=False)
    mfa_required: bool = False


class AppSession(SQLModel, table=True):
    """A signed-in browser. The raw session id lives only in the cookie; we keep its sha256."""

    __tablename__ = "app_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime())
    last_seen_at: datetime = Field(sa_type=UTCDateTime())
    idle_timeout_seconds: int
    expires_at_absolute: datetime = Field(sa_type=UTCDateTime())
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    end_reason: str | None = Field(default=None, max_length=32)
    client_ip: str | None = Field(default=None, max_length=45)  # an IPv6 address at most
    user_agent_hash: str | None = Field(default=None, max_length=64)


class EndReason(StrEnum):
    """Why a session row was ended (stored in ``app_session.end_reason``)."""

    SIGNED_OUT = "signed_out"
    IDLE_TIMEOUT = "idle_timeout"
    ABSOLUTE_TIMEOUT = "absolute_timeout"
    USER_DISABLED = "user_disabled"
    ROLE_CHANGED = "role_changed"
    PASSWORD_RESET = "password_reset"  # noqa: S105  (an enum label, not a secret)
    REPLACED = "replaced"
    ENDED_BY_ADMIN = "ended_by_admin"


# ---------------------------------------------------------------------------------------------
# Errors. Each has a stable ``code`` and a ``message`` safe to show; none carries a password.


class IdentityError(Exception):
    """Base of the errors raised here."""

    code = "identity_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidUsername(IdentityError, ValueError):
    """The username is empty, too long or has characters outside the allowed set."""

    code = "invalid_username"


class UsernameTaken(IdentityError):
    """Another account has the same username after NFKC normalisation and case folding."""

    code = "username_taken"


class InvalidRole(IdentityError, ValueError):
    """The role is not one of ``Role``."""

    code = "invalid_role"


class UserNotFound(IdentityError):
    """No account has that id."""

    code = "user_not_found"


class NotAllowed(IdentityError):
    """The actor is not (or no longer) an active admin; treat like ``PermissionDenied``."""

    code = "permission_denied"


class LastAdminError(IdentityError):
    """The change would leave no active admin, and nobody could administer the app."""

    code = "last_admin"


PasswordPolicyError = passwords.PasswordPolicyError


# ---------------------------------------------------------------------------------------------
# Read model and events.


@dataclass(frozen=True)
class UserInfo:
    """The public view of an account: everything but the password hash and TOTP secret."""

    id: int
    username: str
    role: str
    is_active: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime
    mfa_enrolled: bool
    mfa_required: bool

    def is_locked(self, now: datetime) -> bool:
        """True while a sign-in lockout is running."""
        return self.locked_until is not None and now < self.locked_until

    @classmethod
    def of(cls, row: AppUser) -> UserInfo:
        """Build the view from a table row."""
        assert row.id is not None  # rows read back from the database always have an id
        return cls(
            id=row.id,
            username=row.username,
            role=row.role,
            is_active=row.is_active,
            failed_logins=row.failed_logins,
            locked_until=row.locked_until,
            created_at=row.created_at,
            updated_at=row.updated_at,
            password_changed_at=row.password_changed_at,
            mfa_enrolled=row.totp_secret_ciphertext is not None,
            mfa_required=row.mfa_required,
        )


class ChangedField(StrEnum):
    """What a ``PrivilegeChanged`` event changed."""

    ACCOUNT = "account"  # created: old None, new = role
    ROLE = "role"
    ACTIVE = "is_active"  # old/new "true"/"false"
    PASSWORD = "password"  # noqa: S105  (a label; old/new always None, never recorded)


@dataclass(frozen=True)
class PrivilegeChanged:
    """An admin created an account, changed its role, (de)activated it or reset its password.

    ``target_id`` is None only for ``ACCOUNT``: the event is emitted before the row (and its id)
    exists; the username identifies the new account.
    """

    audit_action: ClassVar[str] = "PRIVILEGE_CHANGE"
    actor_id: int | None
    actor_username: str | None
    target_id: int | None
    target_username: str
    field: ChangedField
    old: str | None
    new: str | None


class LoginFailureReason(StrEnum):
    """Why a sign-in failed: for the audit log only, never shown to the user."""

    UNKNOWN_USER = "unknown_user"
    BAD_PASSWORD = "bad_password"  # noqa: S105  (an enum label, not a secret)
    LOCKED = "locked"
    DISABLED = "disabled"
    INVALID_INPUT = "invalid_input"
    MFA_UNAVAILABLE = "mfa_unavailable"


@dataclass(frozen=True)
class LoginSucceeded:
    """The password was right and the account may sign in."""

    audit_action: ClassVar[str] = "LOGIN"
    user_id: int
    username: str
    role: str
    client_ip: str | None


@dataclass(frozen=True)
class LoginFailed:
    """A sign-in was refused. ``user_id``/``username`` are set only for existing accounts.

    For unknown names only ``attempt_fingerprint`` (a few hex digits of the sha256 of the typed
    name) is kept, because people type passwords into the username field.
    """

    audit_action: ClassVar[str] = "LOGIN_FAILED"
    user_id: int | None
    username: str | None
    attempt_fingerprint: str | None
    reason: LoginFailureReason
    locked_now: bool
    client_ip: str | None


@dataclass(frozen=True)
class SignedOut:
    """The user signed out; ``session_ref`` is a prefix of the session's id hash."""

    audit_action: ClassVar[str] = "LOGOUT"
    user_id: int
    username: str
    session_ref: str


@dataclass(frozen=True)
class SessionTimedOut:
    """A session hit its idle or absolute limit and was ended (SS-01)."""

    audit_action: ClassVar[str] = "SESSION_TIMEOUT"
    user_id: int
    username: str
    session_ref: str
    reason: EndReason


IdentityEvent = PrivilegeChanged | LoginSucceeded | LoginFailed | SignedOut | SessionTimedOut
EventHook = Callable[[IdentityEvent], None]


@dataclass(frozen=True)
class SignedIn:
    """Sign-in succeeded; the caller starts a session with ``sessions.start_session``."""

    user: UserInfo


@dataclass(frozen=True)
class SignInRejected:
    """Sign-in failed. Deliberately carries no reason: the UI shows ``message`` and nothing else."""

    message: str = SIGN_IN_REJECTED_MESSAGE


# A second factor (AC-02) slots in as a third variant, ``NeedsSecondFactor(pending_token)``,
# returned instead of ``SignedIn`` when the account has ``mfa_required`` or a TOTP enrolment; the
# pending token would be a short-lived, single-use row like a session. Until then an account
# with ``mfa_required`` set is refused (fail closed) rather than signed in on a password alone.
SignInResult = SignedIn | SignInRejected


# ---------------------------------------------------------------------------------------------
# Usernames.


def _username_char_ok(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in ("L", "M", "N") or char in USERNAME_PUNCTUATION or char == " "


def normalise_username(raw: str) -> str:
    """The display form of a username: NFKC, trimmed. Raises ``InvalidUsername``.

    Allowed: letters, combining marks, digits, single spaces and ``. _ - @ + '``; 1 to 64
    characters. Control, format (RTL override), surrogate, symbol and emoji characters are refused.
    """
    limit_message = (
        f"Usernames are 1 to {MAX_USERNAME_LENGTH} characters: letters, digits, spaces "
        "and . _ - @ + '"
    )
    if len(raw) > MAX_RAW_USERNAME_INPUT:
        raise InvalidUsername(limit_message)
    display = unicodedata.normalize("NFKC", raw).strip()
    if not display or len(display) > MAX_USERNAME_LENGTH:
        raise InvalidUsername(limit_message)
    if not all(_username_char_ok(c) for c in display) or "  " in display:
        raise InvalidUsername(limit_message)
    if unicodedata.category(display[0]).startswith("M"):
        raise InvalidUsername(limit_message)  # a lone combining mark renders on nothing
    return display


def username_key(display: str) -> str:
    """The uniqueness key: NFKC case folding (Unicode's identifier caseless match)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", display).casefold())


def _parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidRole("Role must be one of: " + ", ".join(r.value for r in Role)) from None


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")


# ---------------------------------------------------------------------------------------------
# Reading.


def count_users(engine: Engine, *, active_only: bool = False) -> int:
    """How many accounts exist (0 means the app is waiting for its first admin)."""
    with Session(engine) as db:
        query = select(func.count()).select_from(AppUser)
        if active_only:
            query = query.where(col(AppUser.is_active))
        return int(db.exec(query).one())


def get_user(engine: Engine, user_id: int) -> UserInfo | None:
    """The account with ``user_id``, or None."""
    with Session(engine) as db:
        row = db.get(AppUser, user_id)
        return UserInfo.of(row) if row else None


def find_user(engine: Engine, username: str) -> UserInfo | None:
    """The account whose username matches ``username`` after folding, or None."""
    try:
        key = username_key(normalise_username(username))
    except InvalidUsername:
        return None
    with Session(engine) as db:
        row = db.exec(select(AppUser).where(AppUser.username_key == key)).first()
        return UserInfo.of(row) if row else None


def list_users(engine: Engine) -> list[UserInfo]:
    """Every account, ordered by username key, without hashes or secrets."""
    with Session(engine) as db:
        rows = db.exec(select(AppUser).order_by(col(AppUser.username_key))).all()
        return [UserInfo.of(r) for r in rows]


# ---------------------------------------------------------------------------------------------
# Administration (AC-07).


def _require_admin(db: Session, actor_id: int | None) -> AppUser:
    actor = db.get(AppUser, actor_id) if actor_id is not None else None
    if actor is None or not actor.is_active or actor.role != Role.ADMIN:
        raise NotAllowed("Only an active administrator can change accounts.")
    return actor


def _active_admin_ids(db: Session) -> list[int | None]:
    # FOR UPDATE, always in id order and always before the target row, so that concurrent
    # privilege changes on PostgreSQL queue up instead of deadlocking or both passing the
    # last-admin check. SQLite ignores it: there its single writer lock serialises the writes
    # and _assert_an_admin_remains re-checks inside the write transaction.
    query = (
        select(AppUser.id)
        .where(AppUser.role == Role.ADMIN, col(AppUser.is_active))
        .order_by(col(AppUser.id))
        .with_for_update(key_share=True)
    )
    return list(db.exec(query).all())


def _load_target(db: Session, user_id: int) -> AppUser:
    row = db.exec(
        select(AppUser).where(AppUser.id == user_id).with_for_update(key_share=True)
    ).first()
    if row is None:
        raise UserNotFound("No such user.")
    return row


def _would_remove_last_admin(
    admin_ids: list[int | None], target: AppUser, *, role: str, active: bool
) -> bool:
    if target.role != Role.ADMIN or not target.is_active:
        return False  # the target is not an active admin today: nothing is lost
    if role == Role.ADMIN and active:
        return False
    return [i for i in admin_ids if i != target.id] == []


def _assert_an_admin_remains(db: Session) -> None:
    # Re-checked after our write, inside the write transaction: on SQLite the earlier check ran
    # without a lock, and two admins demoting each other at once would both have passed it.
    if not _active_admin_ids(db):
        db.rollback()
        raise LastAdminError("At least one active administrator must remain.")


def end_user_sessions(db: Session, user_id: int, reason: EndReason, now: datetime) -> int:
    """End every live session of ``user_id`` inside the caller's unit of work; returns the count."""
    result = db.exec(
        update(AppSession)
        .where(col(AppSession.user_id) == user_id, col(AppSession.ended_at).is_(None))
        .values(ended_at=now, end_reason=reason.value)
    )
    return int(result.rowcount)


def create_user(
    engine: Engine,
    username: str,
    password: str,
    role: str | Role,
    actor: int | None = None,
    *,
    now: datetime,
    on_event: EventHook,
) -> UserInfo:
    """Create an account and return its public view.

    ``actor`` is the id of the active admin creating it. ``actor=None`` is the first-run
    bootstrap: allowed only while no account exists, and only for an admin (no shared or default
    accounts, AC-01). Raises ``InvalidUsername``, ``UsernameTaken``, ``InvalidRole``,
    ``PasswordPolicyError`` (each with a message to show) or ``NotAllowed``. Emits
    ``PrivilegeChanged(field=ACCOUNT, old=None, new=role)`` before writing.
    """
    _check_aware(now)
    display = normalise_username(username)
    key = username_key(display)
    parsed_role = _parse_role(role)
    normalised_password = passwords.check_password(password, key)
    with Session(engine) as db:
        actor_row: AppUser | None = None
        if actor is None:
            if db.exec(select(func.count()).select_from(AppUser)).one():
                raise NotAllowed("Only an active administrator can create accounts.")
            if parsed_role != Role.ADMIN:
                raise NotAllowed("The first account must be an administrator.")
        else:
            actor_row = _require_admin(db, actor)
        if db.exec(select(AppUser.id).where(AppUser.username_key == key)).first() is not None:
            raise UsernameTaken("That username is already in use.")
        password_hash = passwords.hash_password(normalised_password)
        on_event(
            PrivilegeChanged(
                actor_id=actor,
                actor_username=actor_row.username if actor_row else None,
                target_id=None,
                target_username=display,
                field=ChangedField.ACCOUNT,
                old=None,
                new=parsed_role.value,
            )
        )
        row = AppUser(
            username=display,
            username_key=key,
            password_hash=password_hash,
            role=parsed_role.value,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        db.add(row)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()  # a concurrent create of the same name won the race
            raise UsernameTaken("That username is already in use.") from None
        db.refresh(row)
        return UserInfo.of(row)


def _privilege_event(
    actor: AppUser, target: AppUser, field: ChangedField, old: str | None, new: str | None
) -> PrivilegeChanged:
    return PrivilegeChanged(
        actor_id=actor.id,
        actor_username=actor.username,
        target_id=target.id,
        target_username=target.username,
        field=field,
        old=old,
        new=new,
    )


def change_role(
    engine: Engine,
    actor_id: int,
    user_id: int,
    new_role: str | Role,
    *,
    now: datetime,
    on_event: EventHook,
) -> UserInfo:
    """Give ``user_id`` another role; the user's sessions end, so the new role needs a new sign-in.

    Admin only (``NotAllowed``); refuses to demote the last active admin (``LastAdminError``).
    Changing to the current role is a no-op without an event. Emits ``PrivilegeChanged(ROLE)``.
    """
    _check_aware(now)
    parsed = _parse_role(new_role)
    with Session(engine) as db:
        actor = _require_admin(db, actor_id)
        admin_ids = _active_admin_ids(db)
        target = _load_target(db, user_id)
        if target.role == parsed:
            return UserInfo.of(target)
        if _would_remove_last_admin(admin_ids, target, role=parsed, active=target.is_active):
            raise LastAdminError("At least one active administrator must remain.")
        on_event(_privilege_event(actor, target, ChangedField.ROLE, target.role, parsed.value))
        target.role = parsed.value
        target.updated_at = now
        db.add(target)
        db.flush()
        end_user_sessions(db, user_id, EndReason.ROLE_CHANGED, now)
        _assert_an_admin_remains(db)
        db.commit()
        db.refresh(target)
        return UserInfo.of(target)


def set_active(
    engine: Engine,
    actor_id: int,
    user_id: int,
    active: bool,
    *,
    now: datetime,
    on_event: EventHook,
) -> UserInfo:
    """Disable (ending every session) or re-enable an account; re-enabling clears a lockout.

    Admin only (``NotAllowed``); refuses to disable the last active admin (``LastAdminError``).
    Setting the current value is a no-op without an event. Emits ``PrivilegeChanged(ACTIVE)``.
    """
    _check_aware(now)
    with Session(engine) as db:
        actor = _require_admin(db, actor_id)
        admin_ids = _active_admin_ids(db)
        target = _load_target(db, user_id)
        if target.is_active == active:
            return UserInfo.of(target)
        if _would_remove_last_admin(admin_ids, target, role=target.role, active=active):
            raise LastAdminError("At least one active administrator must remain.")
        on_event(
            _privilege_event(
                actor,
                target,
                ChangedField.ACTIVE,
                str(target.is_active).lower(),
                str(active).lower(),
            )
        )
        target.is_active = active
        target.updated_at = now
        if active:
            target.failed_logins, target.locked_until = 0, None
        db.add(target)
        db.flush()
        if not active:
            end_user_sessions(db, user_id, EndReason.USER_DISABLED, now)
        _assert_an_admin_remains(db)
        db.commit()
        db.refresh(target)
        return UserInfo.of(target)


def reset_password(
    engine: Engine,
    actor_id: int,
    user_id: int,
    new_password: str,
    *,
    now: datetime,
    on_event: EventHook,
) -> UserInfo:
    """Set a new password chosen by an admin, clear any lockout and end the user's sessions.

    Admin only (``NotAllowed``); the password must meet the policy (``PasswordPolicyError``).
    Emits ``PrivilegeChanged(PASSWORD)`` with old and new left empty: values are never recorded.
    """
    _check_aware(now)
    with Session(engine) as db:
        actor = _require_admin(db, actor_id)
        target = _load_target(db, user_id)
        normalised = passwords.check_password(new_password, target.username_key)
        new_hash = passwords.hash_password(normalised)
        on_event(_privilege_event(actor, target, ChangedField.PASSWORD, None, None))
        target.password_hash = new_hash
        target.password_changed_at = now
        target.updated_at = now
        target.failed_logins, target.locked_until = 0, None
        db.add(target)
        db.flush()
        end_user_sessions(db, user_id, EndReason.PASSWORD_RESET, now)
        db.commit()
        db.refresh(target)
        return UserInfo.of(target)


# ---------------------------------------------------------------------------------------------
# Sign-in.


def _fingerprint(username: str) -> str:
    digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:ATTEMPT_FINGERPRINT_HEX]


def _record_failure(engine: Engine, user_id: int, now: datetime) -> bool:
    """Count a failed password; lock when the limit is reached. True when this failure locked."""
    with Session(engine) as db:
        # One atomic increment, so concurrent guesses from several processes all count.
        count: int = db.exec(
            update(AppUser)
            .where(col(AppUser.id) == user_id)
            .values(failed_logins=col(AppUser.failed_logins) + 1)
            .returning(col(AppUser.failed_logins))
        ).scalar_one()
        locked = count >= MAX_FAILED_LOGINS
        if locked:
            # The counter restarts, so after the lock the user again has the full allowance.
            db.exec(
                update(AppUser)
                .where(col(AppUser.id) == user_id)
                .values(failed_logins=0, locked_until=now + LOCKOUT_DURATION)
            )
        db.commit()
        return locked


def authenticate(
    engine: Engine,
    username: str,
    password: str,
    now: datetime,
    client_ip: str | None = None,
    *,
    on_event: EventHook,
) -> SignInResult:
    """Check a username and password; ``SignedIn`` or ``SignInRejected`` (always the same message).

    Every path spends one argon2 verify, so timing does not reveal whether the name exists. After
    ``MAX_FAILED_LOGINS`` consecutive wrong passwords the account is locked for
    ``LOCKOUT_DURATION``; while locked even the right password is rejected, identically. A
    successful sign-in resets the counter and re-hashes the password if the hasher's parameters
    changed. Emits ``LoginSucceeded`` (before any write) or ``LoginFailed`` (after counting).
    """
    _check_aware(now)

    def reject(
        reason: LoginFailureReason,
        row: AppUser | None = None,
        *,
        locked_now: bool = False,
    ) -> SignInRejected:
        on_event(
            LoginFailed(
                user_id=row.id if row else None,
                username=row.username if row else None,
                attempt_fingerprint=None if row else _fingerprint(username),
                reason=reason,
                locked_now=locked_now,
                client_ip=client_ip,
            )
        )
        return SignInRejected()

    try:
        key = username_key(normalise_username(username))
    except InvalidUsername:
        key = None
    if key is None or len(password) > passwords.MAX_PASSWORD_LENGTH:
        passwords.spend_dummy_verify(password[: passwords.MAX_PASSWORD_LENGTH])
        return reject(LoginFailureReason.INVALID_INPUT)

    with Session(engine) as db:
        row = db.exec(select(AppUser).where(AppUser.username_key == key)).first()
    if row is None or row.id is None:
        passwords.spend_dummy_verify(password)
        return reject(LoginFailureReason.UNKNOWN_USER)
    password_ok = passwords.verify_password(row.password_hash, password)
    if not row.is_active:
        return reject(LoginFailureReason.DISABLED, row)
    if row.locked_until is not None and now < row.locked_until:
        return reject(LoginFailureReason.LOCKED, row)
    if not password_ok:
        locked_now = _record_failure(engine, row.id, now)
        return reject(LoginFailureReason.BAD_PASSWORD, row, locked_now=locked_now)
    if row.mfa_required or row.totp_secret_ciphertext is not None:
        return reject(LoginFailureReason.MFA_UNAVAILABLE, row)
    on_event(LoginSucceeded(row.id, row.username, row.role, client_ip))
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
    if passwords.needs_rehash(row.password_hash):
        values["password_hash"] = passwords.hash_password(passwords.normalise_password(password))
    with Session(engine) as db:
        # The state may have moved since the read (an admin disabled the account meanwhile):
        # the update only applies to a row that is still active.
        applied = db.exec(
            update(AppUser)
            .where(col(AppUser.id) == row.id, col(AppUser.is_active))
            .values(**values)
        ).rowcount
        db.commit()
        fresh = db.get(AppUser, row.id)
    if applied != 1 or fresh is None:
        return reject(LoginFailureReason.DISABLED, row)
    return SignedIn(UserInfo.of(fresh))
