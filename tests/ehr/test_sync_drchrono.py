"""``MirrorSync`` with the real ``DrChronoBackend`` as its ``WindowedSource`` (no test adapter).

The same clinic and windows as ``tests/ehr/test_sync.py``: the sync's clock is the clinic's
"today" (2025-06-11) and four months back, so the backfill windows are June onwards, then May
down to February. Batch jobs complete at once here (the polling itself is covered in
``tests/ehr/drchrono/test_batch.py``); the backend's batch sleep is a no-op.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from ehr.drchrono.backend import DrChronoBackend
from ehr.drchrono.batch import APPOINTMENTS_LIST, LINE_ITEMS_LIST
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.sync import MirrorSync, WindowedSource
from ehr.transport import EHRTransport
from storage import mirror
from storage.crypto import Cipher

TODAY = date(2025, 6, 11)
CLINIC = ClinicConfig(
    seed=11, patients=40, months_back=3, months_ahead=1, doctors=1, offices=1, today=TODAY
)
TZ = ZoneInfo("America/New_York")
BACKFILL_NOW = datetime(2025, 6, 11, 12, 0, tzinfo=UTC)
BACKFILL_MONTHS = 4
JUNE = date(2025, 6, 1)
HORIZON = date(2025, 2, 1)
# Small batch pages where a window must span several pages (a cursor inside a window).
SMALL_PAGE = 2
# Longest wait for the sandbox to log a request it has answered.
LOG_WAIT_S = 2.0


class StaticTokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self.token


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(
        clinic=CLINIC, rate_limit_per_hour=0, burst_per_second=0, batch_delay_s=0.0
    )
    started = SandboxServer(config).start()
    yield started
    started.stop()


@pytest.fixture
def sandbox(server: SandboxServer) -> Iterator[SandboxServer]:
    """The module's sandbox, with no faults and an empty log; its data regenerated afterwards
    (some tests delete an appointment)."""
    server.faults.reset()
    server.request_log.reset()
    yield server
    server.faults.reset()
    server.sandbox.reset_data()


@pytest.fixture
def cipher() -> Cipher:
    return Cipher([Fernet.generate_key()])


@pytest.fixture
def transport(sandbox: SandboxServer) -> Iterator[EHRTransport]:
    token = str(sandbox.provider.issue_token(sandbox.client_id, [])["access_token"])
    http = EHRTransport(sandbox.base_url, StaticTokens(token), sleep=lambda _s: None)
    yield http
    http.close()


def _backend(transport: EHRTransport, **kwargs: Any) -> DrChronoBackend:
    return DrChronoBackend(transport, practice_tz=TZ, batch_sleep=lambda _s: None, **kwargs)


def _sync(backend: DrChronoBackend, engine: Engine, cipher: Cipher, transport: EHRTransport,
          clock: Clock) -> MirrorSync:  # fmt: skip
    return MirrorSync(
        backend,
        engine,
        cipher,
        lambda: (transport.requests_made, 500),
        share=1.0,
        clock=clock,
        backfill_months=BACKFILL_MONTHS,
    )


def _log(server: SandboxServer, transport: EHRTransport, sent_before: int = 0) -> list[Any]:
    """The request log (reset when the transport had sent ``sent_before``) once it holds every
    request sent since (the sandbox logs a request just after answering it)."""
    deadline = time.monotonic() + LOG_WAIT_S
    while len(server.request_log.entries()) < transport.requests_made - sent_before:
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    return server.request_log.entries()


def _upstream(server: SandboxServer, table: str) -> dict[Any, dict[str, Any]]:
    return {key: rec for key, rec, _stamp in server.store.scan(table)}


def _expected_line_items(server: SandboxServer) -> set[int]:
    return {
        int(k)
        for k, rec in _upstream(server, "line_items").items()
        if date.fromisoformat(rec["service_date"]) >= HORIZON
    }


def _expected_appointments(server: SandboxServer) -> set[str]:
    return {
        str(k)
        for k, rec in _upstream(server, "appointments").items()
        if not rec.get("deleted_flag") and date.fromisoformat(rec["scheduled_time"][:10]) >= HORIZON
    }


def _ids(engine: Engine, cipher: Cipher, kind: str) -> set[Any]:
    return {row["id"] for row in mirror.load_rows(engine, cipher, kind)}


def _tombstones(engine: Engine) -> int:
    return sum(b.tombstone_count for b in mirror.batch_infos(engine, "appointment"))


def test_the_drchrono_backend_is_a_windowed_source(transport: EHRTransport) -> None:
    backend = _backend(transport)
    assert isinstance(backend, WindowedSource)
    assert backend.windowed_kinds == {"line_item", "appointment"}


def test_the_real_backend_backfills_newest_first_then_completes(
    sandbox: SandboxServer, engine: Engine, cipher: Cipher, transport: EHRTransport
) -> None:
    sync = _sync(_backend(transport), engine, cipher, transport, Clock(BACKFILL_NOW))

    # June of both kinds (a POST and a GET each), and one page of each kind walked without
    # windows (transactions, patient payments); May's windows would take two more.
    first = sync.step(max_requests=6)

    assert (first.stopped, first.requests) == ("max_requests", 6)
    june_items = {
        k for k, rec in _upstream(sandbox, "line_items").items()
        if date.fromisoformat(rec["service_date"]) >= JUNE
    }  # fmt: skip
    june_appointments = {
        str(k) for k, rec in _upstream(sandbox, "appointments").items()
        if not rec.get("deleted_flag") and rec["scheduled_time"][:10] >= JUNE.isoformat()
    }  # fmt: skip
    assert june_items
    assert june_appointments
    # The newest month is complete, and nothing older is there yet.
    assert _ids(engine, cipher, "line_item") == june_items
    assert _ids(engine, cipher, "appointment") == june_appointments
    assert sync.progress().phase == "backfill"

    rest = sync.step()

    assert rest.stopped == "done"
    assert _ids(engine, cipher, "line_item") == _expected_line_items(sandbox)
    assert _ids(engine, cipher, "appointment") == _expected_appointments(sandbox)
    assert _ids(engine, cipher, "transaction") == set(_upstream(sandbox, "transactions"))
    assert _ids(engine, cipher, "patient_payment") == set(_upstream(sandbox, "patient_payments"))
    progress = sync.progress()
    assert progress.phase == "incremental"
    assert progress.requests == first.requests + rest.requests == transport.requests_made
    entries = _log(sandbox, transport)
    windows = BACKFILL_MONTHS + 1
    posts = [e.path for e in entries if e.method == "POST"]
    assert sorted(posts) == sorted([LINE_ITEMS_LIST] * windows + [APPOINTMENTS_LIST] * windows)
    # Both kinds came only through their windows: no walk of the plain lists.
    assert not [e for e in entries if e.path in ("/api/line_items", "/api/appointments")]


def test_an_expired_job_mid_window_is_fetched_again_from_the_window_start(
    sandbox: SandboxServer, sqlite_engine: Engine, cipher: Cipher, transport: EHRTransport
) -> None:
    backend = _backend(transport, batch_page_size=SMALL_PAGE)
    sync = _sync(backend, sqlite_engine, cipher, transport, Clock(BACKFILL_NOW))
    june_items = sum(
        1 for rec in _upstream(sandbox, "line_items").values() if rec["service_date"] >= "2025-06"
    )
    line_item_window = 1 + max(1, math.ceil(june_items / SMALL_PAGE))
    walks = 2  # transactions and patient payments: one plain page each
    # The June line item window, the walks, then three requests into the June appointments.
    assert sync.step(max_requests=line_item_window + walks + 3).stopped == "max_requests"
    state = mirror.load_state(sqlite_engine, cipher, "appointment")
    assert (state.window_start, state.cursor is not None) == (JUNE, True)
    assert state.records == 2 * SMALL_PAGE
    sandbox.sandbox.batch_jobs.clear()  # the job expired upstream
    sandbox.request_log.reset()
    sent_before = transport.requests_made

    assert sync.step().stopped == "done"

    assert _ids(sqlite_engine, cipher, "line_item") == _expected_line_items(sandbox)
    assert _ids(sqlite_engine, cipher, "appointment") == _expected_appointments(sandbox)
    assert all(k.last_error is None for k in sync.progress().kinds)
    entries = _log(sandbox, transport, sent_before)
    assert len(entries) == transport.requests_made - sent_before
    assert entries[0].status == 404  # the dead cursor, then the same window again
    assert entries[1].method == "POST"


def test_an_appointment_deleted_before_the_backfill_is_a_tombstone(
    sandbox: SandboxServer, sqlite_engine: Engine, cipher: Cipher, transport: EHRTransport
) -> None:
    gone = sorted(_expected_appointments(sandbox))[0]
    transport.write("DELETE", f"/api/appointments/{gone}")
    sync = _sync(_backend(transport), sqlite_engine, cipher, transport, Clock(BACKFILL_NOW))

    assert sync.step().stopped == "done"

    assert gone not in _ids(sqlite_engine, cipher, "appointment")
    assert _tombstones(sqlite_engine) == 1  # the batch window listed it, flagged as deleted


def test_an_appointment_deleted_after_the_backfill_becomes_a_tombstone(
    sandbox: SandboxServer, sqlite_engine: Engine, cipher: Cipher, transport: EHRTransport
) -> None:
    clock = Clock(BACKFILL_NOW)
    sync = _sync(_backend(transport), sqlite_engine, cipher, transport, clock)
    assert sync.step().stopped == "done"
    clock.now = datetime.now(UTC)  # catch up from the backfill's watermark to today
    assert sync.step().stopped == "done"
    gone = sorted(_expected_appointments(sandbox))[0]
    assert gone in _ids(sqlite_engine, cipher, "appointment")
    tombstones = _tombstones(sqlite_engine)
    transport.write("DELETE", f"/api/appointments/{gone}")
    clock.now += timedelta(minutes=10)

    assert sync.step().stopped == "done"  # the incremental walk of iter_appointments

    assert gone not in _ids(sqlite_engine, cipher, "appointment")
    assert _tombstones(sqlite_engine) == tombstones + 1


def test_a_job_that_cannot_be_started_stops_the_step_and_the_next_step_retries(
    sandbox: SandboxServer, sqlite_engine: Engine, cipher: Cipher, transport: EHRTransport
) -> None:
    sync = _sync(_backend(transport), sqlite_engine, cipher, transport, Clock(BACKFILL_NOW))
    sandbox.faults.update(error_500_rate=1.0)

    failed = sync.step()

    assert (failed.stopped, failed.error, failed.records) == ("error", "upstream_unavailable", 0)
    entries = _log(sandbox, transport)
    assert [(e.method, e.status) for e in entries] == [("POST", 500)]  # sent once (RL-02)
    sandbox.faults.reset()

    assert sync.step().stopped == "done"
    assert _ids(sqlite_engine, cipher, "line_item") == _expected_line_items(sandbox)
