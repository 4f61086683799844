"""Fixtures for the sandbox REST API tests: real servers on 127.0.0.1:0, plain ``requests``.

One session-wide server (rate limits off, admin on, batch jobs instant) serves every test that
does not need special settings; tests write only records they create themselves, so sharing it
is safe. ``start_sandbox`` builds extra servers with their own config (limits, faults, clocks)
and stops them at teardown. The clinic is generated once and reused (the store deep-copies it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import requests

from ehr.sandbox.clinic import Clinic, ClinicConfig, generate_clinic
from ehr.sandbox.server import SandboxConfig, SandboxServer

TODAY = dt.date(2025, 6, 11)
CLINIC = ClinicConfig(seed=7, patients=120, months_back=4, months_ahead=1, today=TODAY)
HTTP_TIMEOUT_S = 10.0
ADMIN_HEADER = "X-Sandbox-Admin-Key"


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Api:
    """A bearer-authenticated ``requests`` client for one sandbox server."""

    server: SandboxServer
    token: str
    http: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.server.base_url + path

    def call(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        bearer = self.token if token is None else token
        if bearer:
            headers.setdefault("Authorization", f"Bearer {bearer}")
        kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
        kwargs.setdefault("allow_redirects", False)
        return self.http.request(method, self.url(path), headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    def walk(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every record of a list, following ``next`` until null."""
        results: list[dict[str, Any]] = []
        url: str | None = path
        pages = 0
        while url:
            response = self.get(url, **kwargs)
            assert response.status_code == 200, response.text
            body = response.json()
            results.extend(body["results"])
            url = body["next"]
            kwargs.pop("params", None)  # next already carries the query string
            pages += 1
            assert pages < 1000, "runaway pagination"
        return results

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {ADMIN_HEADER: self.server.admin_key}
        return self.http.request(
            method, self.url(path), headers=headers, timeout=HTTP_TIMEOUT_S, **kwargs
        )

    def token_for(self, *scopes: str) -> str:
        return str(self.server.provider.issue_token(self.server.client_id, scopes)["access_token"])


@pytest.fixture(scope="session")
def clinic() -> Clinic:
    return generate_clinic(CLINIC)


def _base_config(**overrides: Any) -> SandboxConfig:
    config = SandboxConfig(
        clinic=CLINIC,
        rate_limit_per_hour=0,
        burst_per_second=0,
        batch_delay_s=0.0,
        faults_admin_enabled=True,
    )
    return replace(config, **overrides)


@pytest.fixture(scope="session")
def sandbox_server(clinic: Clinic) -> Iterator[SandboxServer]:
    server = SandboxServer(_base_config(), clinic=clinic).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api(sandbox_server: SandboxServer) -> Iterator[Api]:
    token = sandbox_server.provider.issue_token(sandbox_server.client_id, [])["access_token"]
    client = Api(sandbox_server, token)
    yield client
    client.http.close()


StartSandbox = Callable[..., Api]


@pytest.fixture
def start_sandbox(clinic: Clinic) -> Iterator[StartSandbox]:
    """Start a dedicated server: ``start_sandbox(clock=..., **SandboxConfig overrides)``."""
    started: list[tuple[SandboxServer, Api]] = []

    def start(clock: Callable[[], float] | None = None, **overrides: Any) -> Api:
        kwargs: dict[str, Any] = {"clinic": clinic}
        if clock is not None:
            kwargs["clock"] = clock
        server = SandboxServer(_base_config(**overrides), **kwargs).start()
        token = server.provider.issue_token(server.client_id, [])["access_token"]
        client = Api(server, token)
        started.append((server, client))
        return client

    yield start
    for server, client in started:
        client.http.close()
        server.stop()
