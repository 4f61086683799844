"""Fixtures for page tests: a fresh demo app per test, users per role, a connected sandbox EHR.

Each test is a fresh "process": its own data directory, database and embedded sandbox
(``ui.wiring.reset``). Users sign in through ``ehr.services.accounts`` like the sign-in route
does; AppTest cannot send cookies, so the session id goes in through ``TEST_TOKEN_KEY``, and
it must still validate in the database like any cookie.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from ehr.services import accounts, connection
from ehr.services.accounts import SignedInSession
from ehr.services.gateway import Caller
from storage import passwords
from ui import wiring
from ui.session import TEST_TOKEN_KEY

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple 9"
ROLES = ("admin", "clinician", "front_desk", "billing")
HTTP_TIMEOUT_S = 10.0


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A demo-mode configuration on an empty data directory; resources reset around the test."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SANDBOX_PATIENTS", "60")
    monkeypatch.setenv("SYNC_INTERVAL_MINUTES", "0")  # tests run sync steps themselves
    # Page tests sign in many accounts; the password hashing itself is tested in
    # tests/storage with the real parameters, so here a cheap argon2id keeps setup fast.
    monkeypatch.setattr(
        passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    for name in ("DATABASE_URL", "DRCHRONO_CLIENT_ID", "DRCHRONO_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    wiring.reset()
    yield tmp_path / "data"
    wiring.reset()


def sign_in(username: str) -> SignedInSession:
    result = accounts.sign_in(wiring.account_store(), username, PASSWORD)
    assert isinstance(result, SignedInSession)
    return result


@pytest.fixture
def users(demo_env: Path) -> dict[str, SignedInSession]:
    """One signed-in session per role (the admin created through first-run setup)."""
    store = wiring.account_store()
    accounts.create_first_admin(store, "admin", PASSWORD)
    admin = caller_of(sign_in("admin"))
    for role in ROLES[1:]:
        accounts.create_user(store, admin, role.replace("_", ""), PASSWORD, role)
    return {role: sign_in("admin" if role == "admin" else role.replace("_", "")) for role in ROLES}


def caller_of(session: SignedInSession) -> Caller:
    caller = accounts.resume_session(wiring.account_store(), session.token)
    assert isinstance(caller, Caller)
    return caller


def connect_demo_ehr(admin: SignedInSession) -> None:
    """Drive the real OAuth flow against the embedded sandbox: consent page, code, callback."""
    caller = caller_of(admin)
    authorize_url = connection.begin_connect(wiring.connector(), caller)
    http = requests.Session()
    page = http.get(authorize_url, timeout=HTTP_TIMEOUT_S)
    match = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert match, "the sandbox consent page has no form"
    reply = http.post(
        page.url.split("?")[0],
        data={
            "request_id": match.group(1),
            "decision": "allow",
            "username": "demo",
            "password": "demo",
        },
        allow_redirects=False,
        timeout=HTTP_TIMEOUT_S,
    )
    params = {k: v[0] for k, v in parse_qs(urlsplit(reply.headers["Location"]).query).items()}
    connection.complete_connect(wiring.connector(), caller, params)


@pytest.fixture
def connected(users: dict[str, SignedInSession]) -> dict[str, SignedInSession]:
    """``users`` with the demo EHR connected."""
    connect_demo_ehr(users["admin"])
    return users


AppFactory = Callable[..., AppTest]


@pytest.fixture
def open_app() -> AppFactory:
    """``open_app(session, page=None)``: an AppTest of Home.py signed in as ``session``."""

    def factory(session: SignedInSession | None, page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
        if session is not None:
            at.session_state[TEST_TOKEN_KEY] = session.token
        at.run()
        if page is not None:
            at.switch_page(page)
            at.run()
        return at

    return factory
