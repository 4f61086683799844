"""The background mirror refresh: one audited step per interval, never dying of a failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from ehr.drchrono.backend import DrChronoBackend
from ehr.errors import UpstreamUnavailableError
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.sync_scheduler import SyncScheduler, run_background_step
from ehr.transport import EHRTransport
from storage import audit_report, mirror
from storage.crypto import Cipher
from tests.ehr.drchrono.conftest import CLINIC, PRACTICE_TZ, StaticTokens, issue_token

KEY = b"s" * 32


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    started = SandboxServer(
        SandboxConfig(clinic=CLINIC, rate_limit_per_hour=0, burst_per_second=0)
    ).start()
    yield started
    started.stop()


def _backend(server: SandboxServer) -> DrChronoBackend:
    transport = EHRTransport(
        server.base_url, StaticTokens(issue_token(server)), sleep=lambda _s: None
    )
    return DrChronoBackend(transport, practice_tz=PRACTICE_TZ)


def test_a_background_step_fills_the_mirror_and_is_audited_as_the_system(
    server: SandboxServer, sqlite_engine: Engine
) -> None:
    cipher = Cipher([Fernet.generate_key()])
    result = run_background_step(
        _backend(server),
        sqlite_engine,
        cipher,
        KEY,
        connection_id=1,
        calls_per_hour=500,
        share=0.6,
        max_requests=10,
    )
    assert result is not None
    assert 0 < result.requests <= 10
    stored = sum(len(mirror.load_rows(sqlite_engine, cipher, kind)) for kind in mirror.KINDS)
    assert stored == result.records > 0
    [row] = audit_report.query(sqlite_engine)
    assert (row.username, row.action, row.resource_type, row.outcome) == (
        "system",
        "READ",
        "mirror_sync",
        "SUCCESS",
    )
    assert json.loads(row.details)["requests"] == result.requests


def test_a_failing_step_is_audited_as_an_error_and_returns_none(
    server: SandboxServer, sqlite_engine: Engine
) -> None:
    server.faults.update(error_503_rate=1.0)
    try:
        result = run_background_step(
            _backend(server),
            sqlite_engine,
            Cipher([Fernet.generate_key()]),
            KEY,
            connection_id=1,
            calls_per_hour=500,
            share=0.6,
            max_requests=5,
        )
    finally:
        server.faults.reset()
    assert result is not None  # the sync absorbed the outage and stopped cleanly
    assert result.error == UpstreamUnavailableError.code
    assert result.records == 0
    [row] = audit_report.query(sqlite_engine)
    assert (row.outcome, json.loads(row.details)["error"]) == ("ERROR", "upstream_unavailable")


def test_the_scheduler_keeps_running_after_a_crashing_step() -> None:
    calls: list[int] = []
    done = threading.Event()

    def step() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        done.set()

    scheduler = SyncScheduler(step, interval_s=0.01, first_delay_s=0.0).start()
    try:
        assert done.wait(5.0)
    finally:
        scheduler.stop()
    assert len(calls) >= 2
    assert not scheduler.running


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SyncScheduler(lambda: None, interval_s=0)
