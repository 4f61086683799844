"""A demo app for the page and clinic-day benchmarks: users signed in, the sandbox EHR connected.

The same recipe as the page tests (``tests/pages/conftest.py``): a fresh data directory and
``ui.wiring.reset()``, the first admin created through ``ehr.services.accounts``, one user per
role, the embedded sandbox connected through its real OAuth consent page, and AppTest sessions
signed in through ``TEST_TOKEN_KEY`` (AppTest cannot send cookies). Everything the app builds
once per process (engine, sandbox, connector) is process-global in ``ui.wiring``, so only one
``DemoApp`` may be open at a time.

Three things differ from production, on purpose, and are said by every benchmark that uses
it: password hashing is cheap (sign-in is not what is measured); both of the sandbox's rate
limits and the app's own hourly budget are lifted; and the client's 8 calls/s pace is lifted.
So every figure counts the calls a view needs, not the pacing that would spread them out.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import requests
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from ehr import transport
from ehr.sandbox.server import SandboxServer
from ehr.services import accounts, connection, mirror
from ehr.services.accounts import SignedInSession
from ehr.services.gateway import Caller, Gateway
from ehr.sync import StepResult
from ehr.throttle import Throttle
from storage import passwords
from ui import wiring
from ui.session import TEST_TOKEN_KEY

ROOT: Final = Path(__file__).resolve().parents[1]
ROLES: Final = ("admin", "clinician", "front_desk", "billing")
PASSWORD: Final = "correct horse battery staple 9"  # noqa: S105  # a throwaway demo account
HTTP_TIMEOUT_S: Final = 30.0
# AppTest's per-run timeout: a cold page at a large clinic walks many upstream pages.
APP_TIMEOUT_S: Final = 600.0
# An hourly budget no benchmark reaches: the app's own throttle must not pace what we count.
UNBOUNDED_CALLS_PER_HOUR: Final = 10_000_000
# Requests one mirror sync step may use: more than a full sync of any clinic benchmarked here.
SYNC_MAX_REQUESTS: Final = 1_000_000
# Page scripts by name, as ``AppTest.switch_page`` wants them.
PAGES: Final = {
    "patients": "pages/patients.py",
    "appointments": "pages/appointments.py",
    "clinical": "pages/clinical.py",
    "billing": "pages/billing.py",
}
_CHEAP_HASHER: Final = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
# A client pace that never binds (the app paces 8 calls/s: that spreads calls, it never changes
# how many are made, and would make a sync of a large clinic take minutes here).
_UNPACED_RATE_PER_S: Final = 1e12
_UNPACED_BURST: Final = 1_000_000


class _Unpaced(Throttle):
    """``ehr.transport``'s throttle while a ``DemoApp`` is open: never waits."""

    def __init__(
        self, *_args: Any, sleep: Callable[[float], None] = time.sleep, **_kw: Any
    ) -> None:
        super().__init__(_UNPACED_RATE_PER_S, _UNPACED_BURST, sleep=sleep)


class DemoAppError(RuntimeError):
    """The demo app could not be set up or a page raised."""


class DemoApp:
    """A demo-mode app with ``patients`` synthetic patients; a context manager.

    After entering: ``sessions`` (one signed-in session per role), ``sandbox`` (the embedded
    server, for its store and request log).
    """

    def __init__(self, patients: int, *, seed: int = 7) -> None:
        self._env = {
            "SANDBOX_PATIENTS": str(patients),
            "SANDBOX_SEED": str(seed),
            "SYNC_INTERVAL_MINUTES": "0",  # the benchmark runs sync steps itself
            "API_CALLS_PER_HOUR": str(UNBOUNDED_CALLS_PER_HOUR),
            "SYNC_BUDGET_SHARE": "1.0",
        }
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_hasher = passwords.HASHER
        self.sessions: dict[str, SignedInSession] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> DemoApp:
        self._folder = tempfile.TemporaryDirectory(prefix="bench-demo-")
        env = {**self._env, "DATA_DIR": str(Path(self._folder.name) / "data")}
        removed = ("DATABASE_URL", "DRCHRONO_CLIENT_ID", "DRCHRONO_CLIENT_SECRET")
        for name in (*env, *removed):
            self._saved_env[name] = os.environ.get(name)
        os.environ.update(env)
        for name in removed:
            os.environ.pop(name, None)
        passwords.HASHER = _CHEAP_HASHER
        vars(transport)["Throttle"] = _Unpaced
        try:
            wiring.reset()
            self._sign_up()
            self._connect()
            self._lift_sandbox_limits()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        wiring.reset()
        passwords.HASHER = self._saved_hasher
        vars(transport)["Throttle"] = Throttle
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def _sign_up(self) -> None:
        store = wiring.account_store()
        accounts.create_first_admin(store, "admin", PASSWORD)
        admin = self.caller("admin", _sign_in("admin"))
        for role in ROLES[1:]:
            accounts.create_user(store, admin, _username(role), PASSWORD, role)
        self.sessions = {role: _sign_in(_username(role)) for role in ROLES}

    def _connect(self) -> None:
        """The real OAuth flow against the embedded sandbox: consent page, code, callback."""
        caller = self.caller("admin")
        authorize_url = connection.begin_connect(wiring.connector(), caller)
        with requests.Session() as http:
            page = http.get(authorize_url, timeout=HTTP_TIMEOUT_S)
            found = re.search(r'name="request_id" value="([^"]+)"', page.text)
            if found is None:
                raise DemoAppError("the sandbox consent page has no form")
            reply = http.post(
                page.url.split("?")[0],
                data={
                    "request_id": found.group(1),
                    "decision": "allow",
                    "username": "demo",
                    "password": "demo",
                },
                allow_redirects=False,
                timeout=HTTP_TIMEOUT_S,
            )
        query = parse_qs(urlsplit(reply.headers["Location"]).query)
        connection.complete_connect(wiring.connector(), caller, {k: v[0] for k, v in query.items()})

    def _lift_sandbox_limits(self) -> None:
        limiter = self.sandbox.limiter
        limiter.per_hour, limiter.per_second = 0, 0
        limiter.reset()

    # --- what benchmarks use ----------------------------------------------------------------

    @property
    def sandbox(self) -> SandboxServer:
        """The embedded sandbox (its store and request log)."""
        server = wiring.demo_sandbox()
        if server is None:
            raise DemoAppError("the demo app has no sandbox")
        return server

    def caller(self, role: str, session: SignedInSession | None = None) -> Caller:
        """The caller of ``role``'s signed-in session, as the app resumes it."""
        token = (session or self.sessions[role]).token
        resumed = accounts.resume_session(wiring.account_store(), token)
        if not isinstance(resumed, Caller):
            raise DemoAppError(f"the {role} session did not resume")
        return resumed

    def gateway(self, role: str) -> Gateway:
        """A fresh gateway for ``role``: one browser session, its own empty cache."""
        return wiring.new_gateway(self.caller(role))

    def requests_made(self) -> int:
        """Requests the sandbox has answered so far (its request log, OAuth included)."""
        return len(self.sandbox.request_log.entries())

    def sync_mirror(self) -> StepResult:
        """Fill the analytics mirror as an admin (one unbounded step); raises unless done."""
        result = mirror.run_sync_step(self.gateway("admin"), max_requests=SYNC_MAX_REQUESTS)
        if result.stopped != "done":
            raise DemoAppError(f"the mirror sync stopped early: {result.stopped}")
        return result

    def open_page(
        self,
        role: str,
        page: str,
        *,
        query: Mapping[str, str] | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> OpenedPage:
        """A new browser session of ``role``: Home first (as after sign-in), then ``page``.

        ``page`` is a ``PAGES`` key; ``query`` becomes the URL's query parameters; ``state`` is
        put in session state before the page runs (widget values). The returned requests are
        those of the page's own run, not Home's. Raises ``DemoAppError`` when a run raised.
        """
        at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=APP_TIMEOUT_S)
        at.session_state[TEST_TOKEN_KEY] = self.sessions[role].token
        for name, value in (query or {}).items():
            at.query_params[name] = value
        check(at.run())
        at.switch_page(PAGES[page])
        for name, value in (state or {}).items():
            at.session_state[name] = value
        before = self.requests_made()
        check(at.run())
        return OpenedPage(at, self.requests_made() - before)


@dataclass(frozen=True)
class OpenedPage:
    """A page opened in a new AppTest session, and the upstream requests its run made."""

    at: AppTest
    requests: int


def check(at: AppTest) -> AppTest:
    """``at`` unless its last run raised or showed an error (then ``DemoAppError``)."""
    if at.exception:
        raise DemoAppError(f"the page raised: {at.exception[0].message}")
    if at.error:
        raise DemoAppError(f"the page showed an error: {at.error[0].value}")
    return at


def _username(role: str) -> str:
    return "admin" if role == "admin" else role.replace("_", "")


def _sign_in(username: str) -> SignedInSession:
    result = accounts.sign_in(wiring.account_store(), username, PASSWORD)
    if not isinstance(result, SignedInSession):
        raise DemoAppError(f"{username} could not sign in")
    return result
