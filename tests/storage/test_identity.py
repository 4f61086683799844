"""App users: usernames, password policy and storage, sign-in lockout, privilege changes.

SECURITY.md AC-01, AC-07 and section 3.1. Runs on SQLite and PostgreSQL via ``engine``. Argon2 is
swapped for cheap parameters (the hash is still ``$argon2id$``) except where the real parameters
are the point.
"""

import contextlib
import threading
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage import identity, passwords
from storage.identity import (
    AppUser,
    ChangedField,
    InvalidRole,
    InvalidUsername,
    LastAdminError,
    LoginFailed,
    LoginFailureReason,
    LoginSucceeded,
    NotAllowed,
    PasswordPolicyError,
    PrivilegeChanged,
    Role,
    SignedIn,
    SignInRejected,
    UserInfo,
    UsernameTaken,
    authenticate,
    change_role,
    count_users,
    create_user,
    find_user,
    get_user,
    list_users,
    reset_password,
    set_active,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ADMIN_PW = "vivid-Lantern-orbit-73"
GOOD_PW = "Tr0ub4dor&3x!"


class CountingHasher(PasswordHasher):
    """Cheap argon2id parameters, counting verifies (to prove unknown users cost one too)."""

    def __init__(self, time_cost: int = 1, memory_cost: int = 8) -> None:
        super().__init__(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)
        self.verifies = 0

    def verify(self, hash, password):
        self.verifies += 1
        return super().verify(hash, password)


@pytest.fixture(autouse=True)
def hasher(monkeypatch):
    fast = CountingHasher()
    monkeypatch.setattr(passwords, "HASHER", fast)
    return fast


@pytest.fixture
def events():
    return []


@pytest.fixture
def admin(engine, events):
    user = create_user(engine, "root.admin", ADMIN_PW, Role.ADMIN, now=T0, on_event=events.append)
    events.clear()
    return user


def _make(engine, admin, name, role, password=GOOD_PW):
    return create_user(engine, name, password, role, admin.id, now=T0, on_event=lambda _e: None)


def _raise(_event):
    raise RuntimeError("audit store down")


def _row(engine, user_id):
    with Session(engine) as db:
        row = db.get(AppUser, user_id)
        assert row is not None
        return row


# ---------------------------------------------------------------- usernames (AC-01, section 3.1)


@pytest.mark.parametrize("duplicate", ["alice", "ALICE", "Ａlice", "  Alice  ", "ＡＬＩＣＥ"])
def test_usernames_are_unique_after_nfkc_and_casefold(engine, admin, duplicate):
    _make(engine, admin, "Alice", Role.CLINICIAN)
    with pytest.raises(UsernameTaken):
        _make(engine, admin, duplicate, Role.BILLING)
    assert count_users(engine) == 2
    assert find_user(engine, duplicate).username == "Alice"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "a" * 65,
        "x" * 10_000,
        "bad\x00name",
        "line\nbreak",
        "tab\tname",
        "bob\u202eevil",
        "lone\ud800surrogate",
        "emoji😀",
        "two  spaces",
        "\u0301accent-first",
    ],
)
def test_invalid_usernames_are_refused_with_the_limit(engine, admin, bad):
    with pytest.raises(InvalidUsername) as err:
        _make(engine, admin, bad, Role.CLINICIAN)
    assert "64" in err.value.message
    assert count_users(engine) == 1


def test_username_display_form_is_nfkc_and_trimmed(engine, admin):
    user = _make(engine, admin, "  Ｊosé.O'Neil-2  ", Role.CLINICIAN)
    assert user.username == "José.O'Neil-2"


def test_unknown_role_is_refused(engine, admin):
    with pytest.raises(InvalidRole):
        _make(engine, admin, "carol", "superuser")


# ---------------------------------------------------------------- passwords (AC-01)


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("Short1!abc", "at least 12"),
        ("x" * 129, "at most 128"),
        ("password1234", "well-known"),
        ("Password123456!", "well-known"),  # a common word plus decoration
        ("qwertyuiop[]", "well-known"),
        ("correcthorsebatterystaple", "well-known"),
        ("abababababab", "different characters"),
        ("dana-in-2026-spring", "username"),
        ("DANA-in-2026-SPRING", "username"),
        ("with\x00nul-byte-inside", "control"),
        ("rtl\u202eoverride-pass", "control"),
        ("lone\ud800surrogate-pass", "control"),
    ],
)
def test_password_policy(engine, admin, password, fragment):
    with pytest.raises(PasswordPolicyError) as err:
        _make(engine, admin, "dana", Role.FRONT_DESK, password=password)
    assert fragment in err.value.message
    assert password not in err.value.message
    assert count_users(engine) == 1


def test_password_equal_to_a_long_username_is_refused(engine, admin):
    with pytest.raises(PasswordPolicyError):
        _make(engine, admin, "reception-desk-2", Role.FRONT_DESK, password="Reception-Desk-2")


def test_hash_is_argon2id_on_both_databases(engine, admin):
    user = _make(engine, admin, "erin", Role.BILLING)
    assert _row(engine, user.id).password_hash.startswith("$argon2id$")


def test_plain_password_never_reaches_the_sqlite_file(sqlite_engine, monkeypatch):
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher())  # the production parameters
    user = create_user(sqlite_engine, "frank", GOOD_PW, Role.ADMIN, now=T0, on_event=lambda e: None)
    assert isinstance(
        authenticate(sqlite_engine, "frank", GOOD_PW, T0, on_event=lambda e: None), SignedIn
    )
    stored = _row(sqlite_engine, user.id).password_hash
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    db_file = Path(sqlite_engine.url.database)
    blob = b"".join(
        p.read_bytes()
        for p in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-journal"))
        if p.exists()
    )
    assert stored.encode() in blob  # the file really is the one we wrote to
    assert GOOD_PW.encode() not in blob
    assert GOOD_PW.encode("utf-16-le") not in blob


def test_public_read_model_has_no_secrets(engine, admin):
    _make(engine, admin, "gina", Role.CLINICIAN)
    names = {f.name for f in fields(UserInfo)}
    assert not names & {"password_hash", "totp_secret_ciphertext"}
    listed = list_users(engine)
    assert [u.username for u in listed] == ["gina", "root.admin"]
    assert "$argon2" not in repr(listed)
    assert get_user(engine, listed[0].id) == listed[0]
    assert get_user(engine, 999_999) is None


# ---------------------------------------------------------------- first admin and actors


def test_first_account_must_be_an_admin_and_later_ones_need_an_admin(engine):
    with pytest.raises(NotAllowed):
        create_user(engine, "nurse", GOOD_PW, Role.CLINICIAN, now=T0, on_event=lambda e: None)
    first = create_user(engine, "boss", GOOD_PW, Role.ADMIN, now=T0, on_event=lambda e: None)
    with pytest.raises(NotAllowed):  # no more actor-less accounts once one exists
        create_user(engine, "boss2", GOOD_PW, Role.ADMIN, now=T0, on_event=lambda e: None)
    clin = _make(engine, first, "clin", Role.CLINICIAN)
    with pytest.raises(NotAllowed):
        create_user(
            engine, "x-user", GOOD_PW, Role.BILLING, clin.id, now=T0, on_event=lambda e: None
        )
    assert count_users(engine) == 2


def test_create_user_emits_the_account_event_and_fails_closed(engine, admin, events):
    with pytest.raises(RuntimeError):
        create_user(engine, "hank", GOOD_PW, Role.BILLING, admin.id, now=T0, on_event=_raise)
    assert find_user(engine, "hank") is None
    create_user(engine, "hank", GOOD_PW, Role.BILLING, admin.id, now=T0, on_event=events.append)
    assert events == [
        PrivilegeChanged(
            admin.id, "root.admin", None, "hank", ChangedField.ACCOUNT, None, "billing"
        )
    ]


# ---------------------------------------------------------------- privilege changes (AC-07)


def test_admin_changes_a_role_with_old_and_new_values(engine, admin, events):
    bob = _make(engine, admin, "bob", Role.FRONT_DESK)
    changed = change_role(engine, admin.id, bob.id, Role.CLINICIAN, now=T0, on_event=events.append)
    assert changed.role == "clinician"
    assert events == [
        PrivilegeChanged(
            admin.id, "root.admin", bob.id, "bob", ChangedField.ROLE, "front_desk", "clinician"
        )
    ]
    assert events[0].audit_action == "PRIVILEGE_CHANGE"
    events.clear()
    change_role(engine, admin.id, bob.id, "clinician", now=T0, on_event=events.append)
    assert events == []  # no change, no event


def test_non_admin_cannot_change_roles(engine, admin, events):
    bob = _make(engine, admin, "bob", Role.FRONT_DESK)
    clin = _make(engine, admin, "clin", Role.CLINICIAN)
    with pytest.raises(NotAllowed):
        change_role(engine, clin.id, bob.id, Role.ADMIN, now=T0, on_event=events.append)
    with pytest.raises(NotAllowed):  # nor grant themselves more
        change_role(engine, clin.id, clin.id, Role.ADMIN, now=T0, on_event=events.append)
    assert events == []
    assert get_user(engine, bob.id).role == "front_desk"
    assert get_user(engine, clin.id).role == "clinician"


def test_a_disabled_admin_is_not_an_actor(engine, admin):
    second = _make(engine, admin, "admin2", Role.ADMIN)
    bob = _make(engine, admin, "bob", Role.FRONT_DESK)
    set_active(engine, admin.id, second.id, False, now=T0, on_event=lambda e: None)
    with pytest.raises(NotAllowed):
        change_role(engine, second.id, bob.id, Role.ADMIN, now=T0, on_event=lambda e: None)


def test_last_active_admin_cannot_be_demoted_or_disabled(engine, admin, events):
    with pytest.raises(LastAdminError):
        change_role(engine, admin.id, admin.id, Role.CLINICIAN, now=T0, on_event=events.append)
    with pytest.raises(LastAdminError):
        set_active(engine, admin.id, admin.id, False, now=T0, on_event=events.append)
    assert events == []
    assert get_user(engine, admin.id).role == "admin"
    assert get_user(engine, admin.id).is_active

    second = _make(engine, admin, "admin2", Role.ADMIN)
    change_role(engine, second.id, admin.id, Role.BILLING, now=T0, on_event=events.append)
    with pytest.raises(LastAdminError):  # now "admin2" is the last one
        change_role(engine, second.id, second.id, Role.BILLING, now=T0, on_event=events.append)
    assert len(events) == 1


def test_role_change_fails_closed_when_the_hook_raises(engine, admin):
    bob = _make(engine, admin, "bob", Role.FRONT_DESK)
    with pytest.raises(RuntimeError):
        change_role(engine, admin.id, bob.id, Role.ADMIN, now=T0, on_event=_raise)
    assert get_user(engine, bob.id).role == "front_desk"
    with pytest.raises(RuntimeError):
        set_active(engine, admin.id, bob.id, False, now=T0, on_event=_raise)
    assert get_user(engine, bob.id).is_active


def test_disable_and_enable_emit_events_and_block_sign_in(engine, admin, events):
    bob = _make(engine, admin, "bob", Role.FRONT_DESK)
    set_active(engine, admin.id, bob.id, False, now=T0, on_event=events.append)
    assert events == [
        PrivilegeChanged(
            admin.id, "root.admin", bob.id, "bob", ChangedField.ACTIVE, "true", "false"
        )
    ]
    events.clear()
    result = authenticate(engine, "bob", GOOD_PW, T0, on_event=events.append)
    assert result == SignInRejected()
    assert events[0].reason is LoginFailureReason.DISABLED
    set_active(engine, admin.id, bob.id, True, now=T0, on_event=events.append)
    assert isinstance(authenticate(engine, "bob", GOOD_PW, T0, on_event=events.append), SignedIn)


def test_reset_password_replaces_the_hash_and_records_no_values(engine, admin, events):
    bob = _make(engine, admin, "bob", Role.FRONT_DESK)
    new_pw = "harbour-Violet-engine-41"
    with pytest.raises(RuntimeError):
        reset_password(engine, admin.id, bob.id, new_pw, now=T0, on_event=_raise)
    assert isinstance(authenticate(engine, "bob", GOOD_PW, T0, on_event=lambda e: None), SignedIn)
    with pytest.raises(PasswordPolicyError):
        reset_password(engine, admin.id, bob.id, "password1234", now=T0, on_event=events.append)
    later = T0 + timedelta(days=1)
    user = reset_password(engine, admin.id, bob.id, new_pw, now=later, on_event=events.append)
    assert events == [
        PrivilegeChanged(admin.id, "root.admin", bob.id, "bob", ChangedField.PASSWORD, None, None)
    ]
    assert user.password_changed_at == later
    assert authenticate(engine, "bob", GOOD_PW, later, on_event=lambda e: None) == SignInRejected()
    assert isinstance(authenticate(engine, "bob", new_pw, later, on_event=lambda e: None), SignedIn)


def test_the_database_refuses_an_unknown_role(engine, admin):
    statement = update(AppUser).where(AppUser.id == admin.id).values(role="root")
    with Session(engine) as db, pytest.raises(IntegrityError, match=r"(?i)ck_app_user_role|check"):
        db.exec(statement)
    assert get_user(engine, admin.id).role == "admin"


# ---------------------------------------------------------------- sign-in and lockout


def test_sign_in_success_emits_login_and_returns_the_user(engine, admin, events):
    result = authenticate(engine, "ROOT.ADMIN", ADMIN_PW, T0, "10.0.0.5", on_event=events.append)
    assert result == SignedIn(get_user(engine, admin.id))
    assert events == [LoginSucceeded(admin.id, "root.admin", "admin", "10.0.0.5")]


def test_wrong_unknown_and_locked_all_answer_alike(engine, admin, events, hasher):
    wrong = authenticate(engine, "root.admin", "not-the-password", T0, on_event=events.append)
    before = hasher.verifies
    unknown = authenticate(engine, "nobody-here", "not-the-password", T0, on_event=events.append)
    assert hasher.verifies == before + 1  # an unknown name still costs one argon2 verify
    assert wrong == unknown == SignInRejected()
    assert wrong.message == "Wrong username or password."
    assert events[0].reason is LoginFailureReason.BAD_PASSWORD
    assert events[1] == LoginFailed(
        None, None, events[1].attempt_fingerprint, LoginFailureReason.UNKNOWN_USER, False, None
    )
    assert len(events[1].attempt_fingerprint) == 8
    assert "nobody" not in repr(events[1])


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("x" * 10_000, "whatever-password"),
        ("nul\x00user", "whatever-password"),
        ("root.admin", "p" * 10_000),
        ("", ""),
    ],
)
def test_absurd_sign_in_input_is_a_plain_rejection(engine, admin, hasher, username, password):
    before = hasher.verifies
    events = []
    assert authenticate(engine, username, password, T0, on_event=events.append) == SignInRejected()
    assert hasher.verifies == before + 1
    assert events[0].reason is LoginFailureReason.INVALID_INPUT
    assert get_user(engine, admin.id).failed_logins == 0


def test_lockout_after_five_failures_for_fifteen_minutes(engine, admin, events):
    assert identity.MAX_FAILED_LOGINS == 5
    assert timedelta(minutes=15) == identity.LOCKOUT_DURATION
    for i in range(5):
        authenticate(
            engine,
            "root.admin",
            f"wrong-guess-{i}",
            T0 + timedelta(seconds=i),
            on_event=events.append,
        )
    assert [e.locked_now for e in events] == [False] * 4 + [True]
    locked_at = T0 + timedelta(seconds=4)
    assert get_user(engine, admin.id).locked_until == locked_at + timedelta(minutes=15)

    events.clear()
    # The right password while locked answers exactly like a wrong one.
    right = authenticate(
        engine,
        "root.admin",
        ADMIN_PW,
        locked_at + timedelta(minutes=14, seconds=59),
        on_event=events.append,
    )
    wrong = authenticate(
        engine,
        "root.admin",
        "wrong-again",
        locked_at + timedelta(minutes=14, seconds=59),
        on_event=events.append,
    )
    assert right == wrong == SignInRejected()
    assert [e.reason for e in events] == [LoginFailureReason.LOCKED, LoginFailureReason.LOCKED]
    assert get_user(engine, admin.id).locked_until == locked_at + timedelta(
        minutes=15
    )  # not extended

    unlocked = authenticate(
        engine,
        "root.admin",
        ADMIN_PW,
        locked_at + timedelta(minutes=15, seconds=1),
        on_event=events.append,
    )
    assert isinstance(unlocked, SignedIn)
    assert unlocked.user.failed_logins == 0
    assert unlocked.user.locked_until is None


def test_success_resets_the_failure_count(engine, admin):
    for i in range(4):
        authenticate(engine, "root.admin", f"wrong-{i}", T0, on_event=lambda e: None)
    assert get_user(engine, admin.id).failed_logins == 4
    assert isinstance(
        authenticate(engine, "root.admin", ADMIN_PW, T0, on_event=lambda e: None), SignedIn
    )
    authenticate(engine, "root.admin", "wrong-5", T0, on_event=lambda e: None)
    assert not get_user(engine, admin.id).is_locked(T0)


def test_failures_count_even_when_the_audit_hook_fails(engine, admin):
    with pytest.raises(RuntimeError):
        authenticate(engine, "root.admin", "wrong-guess", T0, on_event=_raise)
    assert get_user(engine, admin.id).failed_logins == 1


def test_success_is_not_granted_when_the_audit_hook_fails(engine, admin):
    authenticate(engine, "root.admin", "wrong-guess", T0, on_event=lambda e: None)
    with pytest.raises(RuntimeError):
        authenticate(engine, "root.admin", ADMIN_PW, T0, on_event=_raise)
    assert get_user(engine, admin.id).failed_logins == 1  # the success was not committed


def test_rehash_when_parameters_change(engine, admin, monkeypatch):
    old_hash = _row(engine, admin.id).password_hash
    assert "m=8,t=1" in old_hash
    monkeypatch.setattr(passwords, "HASHER", CountingHasher(time_cost=2, memory_cost=16))
    assert isinstance(
        authenticate(engine, "root.admin", ADMIN_PW, T0, on_event=lambda e: None), SignedIn
    )
    new_hash = _row(engine, admin.id).password_hash
    assert new_hash != old_hash
    assert "m=16,t=2" in new_hash
    assert isinstance(
        authenticate(engine, "root.admin", ADMIN_PW, T0, on_event=lambda e: None), SignedIn
    )


def test_password_is_matched_in_nfkc_form(engine, admin):
    _make(engine, admin, "ivy", Role.CLINICIAN, password="ｆｕｌｌｗｉｄｔｈ-Ｐａｓｓ-９")
    assert isinstance(
        authenticate(engine, "ivy", "fullwidth-Pass-9", T0, on_event=lambda e: None), SignedIn
    )


def test_an_account_that_requires_mfa_is_refused_until_totp_exists(engine, admin, events):
    with Session(engine) as db:
        db.exec(update(AppUser).where(AppUser.id == admin.id).values(mfa_required=True))
        db.commit()
    assert (
        authenticate(engine, "root.admin", ADMIN_PW, T0, on_event=events.append) == SignInRejected()
    )
    assert events[0].reason is LoginFailureReason.MFA_UNAVAILABLE


def test_naive_datetimes_are_refused(engine, admin):
    with pytest.raises(ValueError, match="aware"):
        authenticate(engine, "root.admin", ADMIN_PW, datetime(2026, 1, 1), on_event=lambda e: None)


def test_timestamps_round_trip_as_utc(engine, admin):
    with Session(engine) as db:
        raw = db.exec(text("select created_at from app_user")).one()[0]
    assert raw is not None
    assert get_user(engine, admin.id).created_at == T0
    assert get_user(engine, admin.id).created_at.tzinfo is not None


def test_two_admins_demoting_each_other_at_once_leave_one_admin(engine, admin):
    """Both pass the first last-admin check; the lock (PostgreSQL) or the re-check (SQLite) stops one."""
    other = _make(engine, admin, "admin2", Role.ADMIN)
    both_checked = threading.Barrier(2)

    def hook(_event):
        # On SQLite both threads get here before either writes. On PostgreSQL the second one is
        # still waiting for the row locks, so the first one gives up waiting and goes on.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait(timeout=1)

    outcomes = {}

    def demote(actor, target):
        try:
            change_role(engine, actor.id, target.id, Role.BILLING, now=T0, on_event=hook)
            outcomes[actor.username] = "ok"
        except (LastAdminError, NotAllowed) as exc:
            outcomes[actor.username] = type(exc).__name__

    threads = [
        threading.Thread(target=demote, args=(admin, other)),
        threading.Thread(target=demote, args=(other, admin)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes.values()) == ["LastAdminError", "ok"] or sorted(outcomes.values()) == [
        "NotAllowed",
        "ok",
    ]
    assert [u.role for u in list_users(engine)].count("admin") == 1
