"""Account services: first admin, sign-in, resume, sign-out, timeouts, each audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from ehr.policy import PermissionDenied
from ehr.services import accounts
from ehr.services.accounts import AccountError, AccountStore, SessionEnded, SignedInSession
from ehr.services.gateway import Caller
from storage import audit_report

KEY = b"a" * 32
PASSWORD = "correct horse battery staple 9"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(sqlite_engine: Engine, clock: Clock) -> AccountStore:
    return AccountStore(sqlite_engine, KEY, idle=timedelta(minutes=15), clock=clock)


def actions(engine: Engine) -> list[tuple[str, str]]:
    return [(r.action, r.outcome) for r in audit_report.query(engine)]


def test_the_first_admin_is_offered_only_while_no_account_exists(store: AccountStore) -> None:
    assert accounts.needs_first_admin(store)
    admin = accounts.create_first_admin(store, "Ada", PASSWORD, client_ip="10.0.0.1")
    assert admin.role == "admin"
    assert not accounts.needs_first_admin(store)
    with pytest.raises(AccountError, match="administrator"):
        accounts.create_first_admin(store, "mallory", PASSWORD)
    assert actions(store.engine) == [("PRIVILEGE_CHANGE", "SUCCESS")]


def test_a_weak_first_password_is_refused_with_a_message(store: AccountStore) -> None:
    with pytest.raises(AccountError) as refused:
        accounts.create_first_admin(store, "ada", "password")
    assert refused.value.message
    assert accounts.needs_first_admin(store)


def test_sign_in_resume_and_sign_out(store: AccountStore) -> None:
    accounts.create_first_admin(store, "ada", PASSWORD)
    signed = accounts.sign_in(store, "ada", PASSWORD, client_ip="10.0.0.2")
    assert isinstance(signed, SignedInSession)
    assert signed.token not in repr(signed)
    caller = accounts.resume_session(store, signed.token, client_ip="10.0.0.2")
    assert isinstance(caller, Caller)
    assert (caller.principal.username, caller.principal.role) == ("ada", "admin")
    assert accounts.sign_out(store, signed.token)
    assert accounts.resume_session(store, signed.token) == SessionEnded(timed_out=False)
    assert actions(store.engine) == [
        ("PRIVILEGE_CHANGE", "SUCCESS"),
        ("LOGIN", "SUCCESS"),
        ("LOGOUT", "SUCCESS"),
    ]


def test_a_wrong_password_is_refused_the_same_way_as_an_unknown_user(store: AccountStore) -> None:
    accounts.create_first_admin(store, "ada", PASSWORD)
    wrong = accounts.sign_in(store, "ada", "not the password at all")
    unknown = accounts.sign_in(store, "nobody", PASSWORD)
    assert isinstance(wrong, accounts.SignInRefused)
    assert wrong == unknown
    assert actions(store.engine)[-2:] == [("LOGIN_FAILED", "DENIED")] * 2


def test_an_idle_session_times_out_and_is_audited(store: AccountStore, clock: Clock) -> None:
    accounts.create_first_admin(store, "ada", PASSWORD)
    signed = accounts.sign_in(store, "ada", PASSWORD)
    assert isinstance(signed, SignedInSession)
    clock.now += timedelta(minutes=16)
    assert accounts.resume_session(store, signed.token) == SessionEnded(timed_out=True)
    assert actions(store.engine)[-1] == ("SESSION_TIMEOUT", "SUCCESS")


def _caller(store: AccountStore, username: str) -> Caller:
    signed = accounts.sign_in(store, username, PASSWORD)
    assert isinstance(signed, SignedInSession)
    caller = accounts.resume_session(store, signed.token)
    assert isinstance(caller, Caller)
    return caller


def test_an_admin_manages_accounts_and_each_change_is_audited(store: AccountStore) -> None:
    accounts.create_first_admin(store, "ada", PASSWORD)
    admin = _caller(store, "ada")
    bob = accounts.create_user(store, admin, "bob", PASSWORD, "front_desk")
    assert accounts.change_role(store, admin, bob.id, "clinician").role == "clinician"
    assert not accounts.set_active(store, admin, bob.id, False).is_active
    accounts.reset_password(store, admin, bob.id, "a different long passphrase 7")
    assert [u.username for u in accounts.list_users(store, admin)] == ["ada", "bob"]
    changes = [
        (r.action, r.resource_id, r.details)
        for r in audit_report.query(store.engine)
        if r.action == "PRIVILEGE_CHANGE"
    ][1:]
    assert [c[2] for c in changes] == [
        '{"field":"account","new":"front_desk","old":null}',
        '{"field":"role","new":"clinician","old":"front_desk"}',
        '{"field":"is_active","new":"false","old":"true"}',
        '{"field":"password"}',
    ]
    assert all(c[1] == str(bob.id) for c in changes[1:])


def test_a_non_admin_is_refused_and_audited(store: AccountStore) -> None:
    accounts.create_first_admin(store, "ada", PASSWORD)
    admin = _caller(store, "ada")
    accounts.create_user(store, admin, "bob", PASSWORD, "front_desk")
    bob = _caller(store, "bob")
    with pytest.raises(PermissionDenied):
        accounts.create_user(store, bob, "eve", PASSWORD, "admin")
    last = audit_report.query(store.engine)[-1]
    assert (last.action, last.outcome, last.username) == ("PRIVILEGE_CHANGE", "DENIED", "bob")


def test_the_last_admin_cannot_be_demoted(store: AccountStore) -> None:
    accounts.create_first_admin(store, "ada", PASSWORD)
    admin = _caller(store, "ada")
    with pytest.raises(AccountError):
        accounts.change_role(store, admin, admin.principal.user_id, "billing")
