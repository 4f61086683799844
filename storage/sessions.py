"""Sign-in sessions as database rows (SECURITY.md SS-01, SS-02).

A session id is ``secrets.token_urlsafe(32)`` (256 bits). The raw id goes only into the cookie;
the ``app_session`` row (defined in ``storage/identity.py`` next to ``app_user``) is keyed by its
sha256, so a copy of the database cannot be replayed as cookies. Rows live in the shared
database, so several app processes or replicas see the same sessions.

Every call takes ``now`` (an aware UTC datetime) from the caller, so tests drive a fake clock.
A session is valid while ``now - last_seen_at <= idle`` and ``now < expires_at_absolute``; each
successful validation slides ``last_seen_at`` forward but never backward, so a system clock that
jumps back cannot stretch a session: the idle limit is still measured from the latest time seen.
An expired session is ended in the database with its reason, so it can never come back.

Events follow the ordering described in ``storage/identity.py``: ``on_event`` runs before the
write, and if it raises nothing is written (the session stays unusable either way).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from storage.identity import (
    AppSession,
    AppUser,
    EndReason,
    EventHook,
    NotAllowed,
    SessionTimedOut,
    SignedOut,
    UserInfo,
    end_user_sessions,
)

# SS-01: the default idle limit (Settings.session_idle_minutes overrides it).
DEFAULT_IDLE_TIMEOUT = timedelta(minutes=15)
# SS-01 / ASVS 3.3.2: the default absolute lifetime (Settings.session_absolute_hours).
DEFAULT_ABSOLUTE_TIMEOUT = timedelta(hours=12)
# Bytes of randomness in a session id: 256 bits, well above ASVS 3.2.2's 64 and SS-02's 128.
SESSION_ID_BYTES = 32
# A presented id longer than this is not one of ours; refuse it before hashing or querying.
MAX_PRESENTED_ID_LENGTH = 128
# Hex characters of the id hash used as a reference in audit events; not enough to look it up.
SESSION_REF_HEX = 12

InvalidReason = Literal["unknown", "ended", "idle_timeout", "absolute_timeout", "user_disabled"]


@dataclass(frozen=True)
class SessionInfo:
    """The public view of a live session (never the id or its full hash)."""

    ref: str
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    idle_expires_at: datetime
    expires_at_absolute: datetime


@dataclass(frozen=True)
class ValidSession:
    """The presented id belongs to a live session of an active user."""

    user: UserInfo
    session: SessionInfo


@dataclass(frozen=True)
class SessionInvalid:
    """The presented id does not authenticate; the UI shows the sign-in form."""

    reason: InvalidReason


def hash_session_id(raw_id: str) -> str:
    """The stored form of a session id: hex sha256."""
    return hashlib.sha256(raw_id.encode("utf-8", "surrogatepass")).hexdigest()


def _ref(id_hash: str) -> str:
    return id_hash[:SESSION_REF_HEX]


def _info(row: AppSession, last_seen: datetime) -> SessionInfo:
    return SessionInfo(
        ref=_ref(row.id_hash),
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen_at=last_seen,
        idle_expires_at=last_seen + timedelta(seconds=row.idle_timeout_seconds),
        expires_at_absolute=row.expires_at_absolute,
    )


def _end(db: Session, id_hash: str, reason: EndReason, now: datetime) -> None:
    # Only a live row is ended, so a concurrent end keeps its (first) reason.
    db.exec(
        update(AppSession)
        .where(col(AppSession.id_hash) == id_hash, col(AppSession.ended_at).is_(None))
        .values(ended_at=now, end_reason=reason.value)
    )
    db.commit()


def start_session(
    engine: Engine,
    user_id: int,
    now: datetime,
    *,
    idle: timedelta = DEFAULT_IDLE_TIMEOUT,
    absolute: timedelta = DEFAULT_ABSOLUTE_TIMEOUT,
    replaces: str | None = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> str:
    """Open a session for an active user and return its raw id, for the cookie only.

    Call after a successful ``authenticate``: every sign-in gets a fresh id. ``replaces`` is the
    id the browser presented before signing in (if any); it is ended in the same transaction, so
    an id planted before sign-in never becomes authenticated (session fixation, SS-02). The
    wiring passes ``idle``/``absolute`` from ``Settings``. Raises ``NotAllowed`` for a missing or
    disabled user and ``ValueError`` for non-positive limits or a naive ``now``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")
    if idle <= timedelta(0) or absolute <= timedelta(0):
        raise ValueError("session limits must be positive")
    raw_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    with Session(engine) as db:
        user = db.get(AppUser, user_id)
        if user is None or not user.is_active:
            raise NotAllowed("This account cannot sign in.")
        if replaces is not None and len(replaces) <= MAX_PRESENTED_ID_LENGTH:
            db.exec(
                update(AppSession)
                .where(
                    col(AppSession.id_hash) == hash_session_id(replaces),
                    col(AppSession.ended_at).is_(None),
                )
                .values(ended_at=now, end_reason=EndReason.REPLACED.value)
            )
        db.add(
            AppSession(
                id_hash=hash_session_id(raw_id),
                user_id=user_id,
                created_at=now,
                last_seen_at=now,
                idle_timeout_seconds=int(idle.total_seconds()),
                expires_at_absolute=now + absolute,
                client_ip=client_ip,
                user_agent_hash=hashlib.sha256(user_agent.encode()).hexdigest()
                if user_agent
                else None,
            )
        )
        db.commit()
    return raw_id


def validate_session(
    engine: Engine, raw_id: str | None, now: datetime, *, on_event: EventHook
) -> ValidSession | SessionInvalid:
    """Check the id from the cookie at the top of every rerun and slide its idle window.

    Returns ``ValidSession`` or ``SessionInvalid(reason)``. An expired session is ended with its
    reason after ``on_event(SessionTimedOut)`` (the SESSION_TIMEOUT audit row); a disabled user's
    session is ended as ``user_disabled``. Idle means ``now - last_seen_at`` is *more* than the
    limit: at exactly the limit the session is still valid.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")
    if not raw_id or len(raw_id) > MAX_PRESENTED_ID_LENGTH:
        return SessionInvalid("unknown")
    id_hash = hash_session_id(raw_id)
    with Session(engine) as db:
        found = db.exec(
            select(AppSession, AppUser)
            .join(AppUser, col(AppUser.id) == col(AppSession.user_id))
            .where(AppSession.id_hash == id_hash)
        ).first()
        if found is None:
            return SessionInvalid("unknown")
        row, user = found
        if row.ended_at is not None:
            return SessionInvalid("ended")
        if not user.is_active:
            _end(db, id_hash, EndReason.USER_DISABLED, now)
            return SessionInvalid("user_disabled")
        timeout: EndReason | None = None
        if now >= row.expires_at_absolute:
            timeout = EndReason.ABSOLUTE_TIMEOUT
        elif now - row.last_seen_at > timedelta(seconds=row.idle_timeout_seconds):
            timeout = EndReason.IDLE_TIMEOUT
        if timeout is not None:
            on_event(SessionTimedOut(row.user_id, user.username, _ref(id_hash), timeout))
            _end(db, id_hash, timeout, now)
            idle_out = timeout is EndReason.IDLE_TIMEOUT
            return SessionInvalid("idle_timeout" if idle_out else "absolute_timeout")
        last_seen = max(row.last_seen_at, now)
        slid = db.exec(
            update(AppSession)
            .where(col(AppSession.id_hash) == id_hash, col(AppSession.ended_at).is_(None))
            .values(last_seen_at=last_seen)
        ).rowcount
        db.commit()
        if slid != 1:
            return SessionInvalid("ended")  # signed out by another request meanwhile
        return ValidSession(UserInfo.of(user), _info(row, last_seen))


def end_session(engine: Engine, raw_id: str | None, now: datetime, *, on_event: EventHook) -> bool:
    """Sign out: end the session server-side. True when a live session was ended.

    ``on_event(SignedOut)`` runs first (the LOGOUT audit row). An unknown or already ended id
    returns False without an event, so a double click on "Sign out" is harmless.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")
    if not raw_id or len(raw_id) > MAX_PRESENTED_ID_LENGTH:
        return False
    id_hash = hash_session_id(raw_id)
    with Session(engine) as db:
        found = db.exec(
            select(AppSession, AppUser)
            .join(AppUser, col(AppUser.id) == col(AppSession.user_id))
            .where(AppSession.id_hash == id_hash, col(AppSession.ended_at).is_(None))
        ).first()
        if found is None:
            return False
        row, user = found
        on_event(SignedOut(row.user_id, user.username, _ref(id_hash)))
        _end(db, id_hash, EndReason.SIGNED_OUT, now)
        return True


def end_all_sessions_for_user(
    engine: Engine, user_id: int, now: datetime, reason: EndReason = EndReason.ENDED_BY_ADMIN
) -> int:
    """End every live session of ``user_id``; returns how many were ended.

    ``change_role``, ``set_active(False)`` and ``reset_password`` already do this inside their
    own transaction; this is for an explicit "sign out everywhere". Audit it at the caller.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")
    with Session(engine) as db:
        count = end_user_sessions(db, user_id, reason, now)
        db.commit()
        return count
