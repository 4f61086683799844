"""Sign-in sessions: rotation, idle and absolute time-outs, sign-out (SECURITY.md SS-01, SS-02).

A fake clock is just the ``now`` argument. Runs on SQLite and PostgreSQL via ``engine``.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text, update
from sqlmodel import Session

from storage import passwords
from storage.identity import (
    AppUser,
    EndReason,
    NotAllowed,
    Role,
    SessionTimedOut,
    SignedIn,
    SignedOut,
    authenticate,
    change_role,
    create_user,
    reset_password,
    set_active,
)
from storage.sessions import (
    SessionInvalid,
    ValidSession,
    end_all_sessions_for_user,
    end_session,
    hash_session_id,
    start_session,
    validate_session,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PW = "quiet-Meadow-piano-58"


def _ignore(_event):
    return None


def _raise(_event):
    raise RuntimeError("audit store down")


@pytest.fixture(autouse=True)
def fast_hasher(monkeypatch):
    monkeypatch.setattr(
        passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def admin(engine):
    return create_user(engine, "root.admin", PW, Role.ADMIN, now=T0, on_event=_ignore)


@pytest.fixture
def clerk(engine, admin):
    return create_user(engine, "clerk", PW, Role.FRONT_DESK, admin.id, now=T0, on_event=_ignore)


def _check(engine, raw, at, events=None):
    return validate_session(
        engine, raw, at, on_event=(events.append if events is not None else _ignore)
    )


def _end_reason(engine, raw):
    with Session(engine) as db:
        return db.exec(
            text("select end_reason from app_session where id_hash = :h"),
            params={"h": hash_session_id(raw)},
        ).one()[0]


def test_a_new_random_id_at_every_sign_in(engine, clerk):
    ids = set()
    for _ in range(3):
        assert isinstance(authenticate(engine, "clerk", PW, T0, on_event=_ignore), SignedIn)
        raw = start_session(engine, clerk.id, T0)
        assert len(raw) >= 43  # 32 bytes of token_urlsafe: 256 bits
        ids.add(raw)
    assert len(ids) == 3


def test_sign_in_ends_the_id_the_browser_had_before(engine, clerk):
    before = start_session(engine, clerk.id, T0)
    after = start_session(engine, clerk.id, T0, replaces=before)
    assert after != before
    assert _check(engine, before, T0) == SessionInvalid("ended")
    assert _end_reason(engine, before) == "replaced"
    assert isinstance(_check(engine, after, T0), ValidSession)


def test_only_the_hash_is_stored(engine, clerk):
    raw = start_session(engine, clerk.id, T0, client_ip="10.1.2.3", user_agent="Firefox/140")
    with Session(engine) as db:
        rows = db.exec(text("select * from app_session")).all()
    assert len(rows) == 1
    values = [str(v) for v in rows[0]]
    assert hash_session_id(raw) in values
    assert not any(raw in v for v in values)
    assert "Firefox/140" not in values


def test_raw_id_is_not_in_the_sqlite_file(sqlite_engine):
    user = create_user(sqlite_engine, "solo", PW, Role.ADMIN, now=T0, on_event=_ignore)
    raw = start_session(sqlite_engine, user.id, T0)
    assert isinstance(_check(sqlite_engine, raw, T0 + timedelta(minutes=1)), ValidSession)
    db_file = Path(sqlite_engine.url.database)
    blob = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    assert hash_session_id(raw).encode() in blob
    assert raw.encode() not in blob


def test_idle_limit_14_59_valid_15_01_expired(engine, clerk):
    raw = start_session(engine, clerk.id, T0)
    result = _check(engine, raw, T0 + timedelta(minutes=14, seconds=59))
    assert isinstance(result, ValidSession)
    assert result.user.id == clerk.id
    assert result.session.idle_expires_at == T0 + timedelta(minutes=29, seconds=59)

    other = start_session(engine, clerk.id, T0)
    events = []
    assert _check(engine, other, T0 + timedelta(minutes=15, seconds=1), events) == SessionInvalid(
        "idle_timeout"
    )
    assert events == [
        SessionTimedOut(clerk.id, "clerk", hash_session_id(other)[:12], EndReason.IDLE_TIMEOUT)
    ]
    assert events[0].audit_action == "SESSION_TIMEOUT"
    # Ended for good: coming back "in time" again does not revive it.
    assert _check(engine, other, T0 + timedelta(minutes=1)) == SessionInvalid("ended")
    assert _end_reason(engine, other) == "idle_timeout"


def test_exactly_at_the_idle_limit_is_still_valid(engine, clerk):
    raw = start_session(engine, clerk.id, T0)
    assert isinstance(_check(engine, raw, T0 + timedelta(minutes=15)), ValidSession)


def test_activity_slides_the_idle_window(engine, clerk):
    raw = start_session(engine, clerk.id, T0)
    for minutes in (10, 20, 30, 44):
        assert isinstance(_check(engine, raw, T0 + timedelta(minutes=minutes)), ValidSession)
    assert _check(engine, raw, T0 + timedelta(minutes=59, seconds=1)) == SessionInvalid(
        "idle_timeout"
    )


def test_configured_idle_limit_is_used(engine, clerk):
    raw = start_session(engine, clerk.id, T0, idle=timedelta(minutes=5))
    assert _check(engine, raw, T0 + timedelta(minutes=5, seconds=1)) == SessionInvalid(
        "idle_timeout"
    )


def test_absolute_limit_of_twelve_hours_despite_activity(engine, clerk):
    raw = start_session(engine, clerk.id, T0)
    for minutes in range(10, 12 * 60, 10):  # active every 10 minutes up to 11:50
        assert isinstance(_check(engine, raw, T0 + timedelta(minutes=minutes)), ValidSession)
    last_second = T0 + timedelta(hours=12) - timedelta(seconds=1)
    assert isinstance(_check(engine, raw, last_second), ValidSession)
    events = []
    assert _check(engine, raw, T0 + timedelta(hours=12), events) == SessionInvalid(
        "absolute_timeout"
    )
    assert events[0].reason is EndReason.ABSOLUTE_TIMEOUT
    assert _end_reason(engine, raw) == "absolute_timeout"


def test_a_clock_jumping_back_does_not_extend_the_session(engine, clerk):
    raw = start_session(engine, clerk.id, T0)
    assert isinstance(_check(engine, raw, T0 + timedelta(minutes=10)), ValidSession)
    back = _check(engine, raw, T0 + timedelta(minutes=2))  # the system clock went back
    assert isinstance(back, ValidSession)
    assert back.session.last_seen_at == T0 + timedelta(minutes=10)
    assert _check(engine, raw, T0 + timedelta(minutes=25, seconds=1)) == SessionInvalid(
        "idle_timeout"
    )


def test_timeout_is_not_recorded_when_the_hook_fails_and_still_denies(engine, clerk):
    raw = start_session(engine, clerk.id, T0)
    late = T0 + timedelta(minutes=20)
    with pytest.raises(RuntimeError):
        validate_session(engine, raw, late, on_event=_raise)
    assert _end_reason(engine, raw) is None
    assert _check(engine, raw, late) == SessionInvalid("idle_timeout")


def test_signed_out_id_is_rejected(engine, clerk):
    raw = start_session(engine, clerk.id, T0)
    events = []
    assert end_session(engine, raw, T0 + timedelta(minutes=1), on_event=events.append) is True
    assert events == [SignedOut(clerk.id, "clerk", hash_session_id(raw)[:12])]
    assert events[0].audit_action == "LOGOUT"
    assert _check(engine, raw, T0 + timedelta(minutes=2)) == SessionInvalid("ended")
    assert end_session(engine, raw, T0 + timedelta(minutes=3), on_event=events.append) is False
    assert len(events) == 1


def test_sign_out_fails_closed_when_the_hook_fails(engine, clerk):
    raw = start_session(engine, clerk.id, T0)
    with pytest.raises(RuntimeError):
        end_session(engine, raw, T0, on_event=_raise)
    assert _end_reason(engine, raw) is None


@pytest.mark.parametrize("presented", [None, "", "x" * 10_000, "not-a-session-id", "\ud800"])
def test_unknown_ids_are_rejected(engine, clerk, presented):
    start_session(engine, clerk.id, T0)
    assert _check(engine, presented, T0) == SessionInvalid("unknown")


def test_disabling_a_user_ends_their_sessions(engine, admin, clerk):
    one, two = start_session(engine, clerk.id, T0), start_session(engine, clerk.id, T0)
    set_active(engine, admin.id, clerk.id, False, now=T0, on_event=_ignore)
    assert _check(engine, one, T0) == _check(engine, two, T0) == SessionInvalid("ended")
    assert _end_reason(engine, one) == "user_disabled"
    with pytest.raises(NotAllowed):
        start_session(engine, clerk.id, T0)


def test_a_disabled_user_with_a_live_row_is_refused(engine, clerk):
    raw = start_session(engine, clerk.id, T0)
    with Session(engine) as db:  # disabled behind our back, without ending the sessions
        db.exec(update(AppUser).where(AppUser.id == clerk.id).values(is_active=False))
        db.commit()
    assert _check(engine, raw, T0) == SessionInvalid("user_disabled")
    assert _end_reason(engine, raw) == "user_disabled"


@pytest.mark.parametrize("change", ["role", "password"])
def test_role_change_and_password_reset_end_sessions(engine, admin, clerk, change):
    raw = start_session(engine, clerk.id, T0)
    admin_raw = start_session(engine, admin.id, T0)
    if change == "role":
        change_role(engine, admin.id, clerk.id, Role.CLINICIAN, now=T0, on_event=_ignore)
    else:
        reset_password(
            engine, admin.id, clerk.id, "brisk-Canyon-ledger-92", now=T0, on_event=_ignore
        )
    assert _check(engine, raw, T0) == SessionInvalid("ended")
    assert isinstance(_check(engine, admin_raw, T0), ValidSession)  # others are untouched


def test_end_all_sessions_for_user(engine, clerk):
    raws = [start_session(engine, clerk.id, T0) for _ in range(3)]
    end_session(engine, raws[0], T0, on_event=_ignore)
    assert end_all_sessions_for_user(engine, clerk.id, T0) == 2
    assert all(_check(engine, r, T0) == SessionInvalid("ended") for r in raws)
    assert _end_reason(engine, raws[0]) == "signed_out"  # the first reason is kept
    assert _end_reason(engine, raws[1]) == "ended_by_admin"


def test_sessions_are_shared_between_engines(engine, db_url, clerk):
    from storage.database import make_engine

    other_process = make_engine(db_url)
    try:
        raw = start_session(engine, clerk.id, T0)
        assert isinstance(_check(other_process, raw, T0 + timedelta(minutes=10)), ValidSession)
        end_session(other_process, raw, T0 + timedelta(minutes=11), on_event=_ignore)
        assert _check(engine, raw, T0 + timedelta(minutes=12)) == SessionInvalid("ended")
    finally:
        other_process.dispose()


def test_bad_arguments(engine, clerk):
    with pytest.raises(ValueError, match="aware"):
        start_session(engine, clerk.id, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        start_session(engine, clerk.id, T0, idle=timedelta(0))
    with pytest.raises(NotAllowed):
        start_session(engine, 999_999, T0)
