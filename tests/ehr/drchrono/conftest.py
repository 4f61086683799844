"""Fixtures for the DrChrono backend tests: a real sandbox on 127.0.0.1:0 with a small clinic.

One server per test module (rate limits off, so nothing waits); each test builds its own
transport and backend so ``transport.requests_made`` counts only that test's calls. Tests that
write create their own records, so sharing the server is safe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from ehr.drchrono.backend import DrChronoBackend
from ehr.paging import MAX_PAGES
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.transport import EHRTransport

TODAY = dt.date(2025, 6, 11)
# Small but with more than one appointment page (20) in its three months.
CLINIC = ClinicConfig(
    seed=7, patients=40, months_back=3, months_ahead=1, doctors=1, offices=1, today=TODAY
)
PRACTICE_TZ = ZoneInfo("America/New_York")


class StaticTokens:
    """A ``TokenSource`` holding one sandbox-issued token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self.token


def start_server(clinic: ClinicConfig = CLINIC) -> SandboxServer:
    """A started sandbox with limits off (the caller stops it)."""
    config = SandboxConfig(clinic=clinic, rate_limit_per_hour=0, burst_per_second=0)
    return SandboxServer(config).start()


def issue_token(server: SandboxServer) -> str:
    return str(server.provider.issue_token(server.client_id, [])["access_token"])


@dataclass
class Connected:
    """A backend and the transport under it (for request counts)."""

    backend: DrChronoBackend
    transport: EHRTransport


def connect(
    server: SandboxServer, *, max_pages: int = MAX_PAGES, base_url: str | None = None
) -> Connected:
    transport = EHRTransport(
        base_url or server.base_url, StaticTokens(issue_token(server)), sleep=lambda _s: None
    )
    return Connected(
        DrChronoBackend(transport, practice_tz=PRACTICE_TZ, max_pages=max_pages), transport
    )


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    started = start_server()
    yield started
    started.stop()


@pytest.fixture
def conn(server: SandboxServer) -> Iterator[Connected]:
    connected = connect(server)
    yield connected
    connected.transport.close()
