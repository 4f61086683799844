"""MirrorSync against the real sandbox over loopback, into real SQLite and PostgreSQL.

The backfill and restart tests run on both databases; the rest on SQLite only, since the
storage they rely on is tested on both in ``tests/storage/test_mirror.py``.

``DrChronoBackend`` is a ``WindowedSource`` through the sandbox's async batch list endpoints
(small batch pages here, so one window spans several pages), so the backfill runs newest month
first; ``PlainBackend`` hides that capability where a backend without windows is the point.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet

from ehr.budget import StoredBudget
from ehr.drchrono.backend import DrChronoBackend
from ehr.models import AppointmentStatus
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.sync import MirrorSync, WindowedSource
from ehr.transport import EHRTransport
from storage import mirror
from storage.crypto import Cipher
from storage.database import create_schema, make_engine
from storage.tokens import budget_state

TODAY = date(2025, 6, 11)
CLINIC = ClinicConfig(
    seed=11, patients=40, months_back=3, months_ahead=1, doctors=1, offices=1, today=TODAY
)
TZ = ZoneInfo("America/New_York")
# Sync clock during the backfill: the clinic's "today". Windows: June onwards, May .. Feb.
BACKFILL_NOW = datetime(2025, 6, 11, 12, 0, tzinfo=UTC)
BACKFILL_MONTHS = 4
HORIZON = date(2025, 2, 1)
# Small batch pages so one window spans several pages (resume inside a window is exercised).
BATCH_PAGE_SIZE = 5


class StaticTokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self.token


class PlainBackend:
    """The DrChrono backend with its ``WindowedSource`` capability hidden: what a backend
    without date windows looks like to ``MirrorSync`` (it backfills by walking ``iter_*``)."""

    _HIDDEN = frozenset({"windowed_kinds", "iter_window"})

    def __init__(self, backend: DrChronoBackend) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        if name in self._HIDDEN:
            raise AttributeError(name)
        return getattr(self._backend, name)


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
def sandbox(server: SandboxServer) -> SandboxServer:
    """The module's sandbox with no faults and an empty request log (data as generated)."""
    server.faults.reset()
    server.request_log.reset()
    return server


@pytest.fixture
def writable_sandbox(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """For tests that change upstream data: regenerated afterwards for the next test."""
    yield sandbox
    sandbox.sandbox.reset_data()


@pytest.fixture
def cipher() -> Cipher:
    return Cipher([Fernet.generate_key()])


def _transport(server: SandboxServer, **kwargs: Any) -> EHRTransport:
    token = str(server.provider.issue_token(server.client_id, [])["access_token"])
    return EHRTransport(server.base_url, StaticTokens(token), sleep=lambda _s: None, **kwargs)


def _batch_backend(transport: EHRTransport) -> DrChronoBackend:
    return DrChronoBackend(
        transport, practice_tz=TZ, batch_page_size=BATCH_PAGE_SIZE, batch_sleep=lambda _s: None
    )


def _sync(backend: Any, engine, cipher, transport: EHRTransport, clock: Clock, **kw: Any):
    return MirrorSync(
        backend,
        engine,
        cipher,
        lambda: (transport.requests_made, 500),
        share=1.0,
        clock=clock,
        backfill_months=BACKFILL_MONTHS,
        **kw,
    )


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


def _ids(engine, cipher, kind: str) -> list[Any]:
    return [row["id"] for row in mirror.load_rows(engine, cipher, kind)]


def _batch_ids(engine, cipher, kind: str) -> list[Any]:
    """Every id stored, batch by batch (a re-download would repeat one)."""
    from storage.mirror import _batch_table, _decode  # test-only peek at the payloads

    table = _batch_table()
    with engine.connect() as conn:
        payloads = conn.execute(
            table.select().where(table.c.kind == kind).order_by(table.c.seq)
        ).all()
    ids: list[Any] = []
    for row in payloads:
        rows, deleted = _decode(cipher, row.payload)
        ids.extend(r["id"] for r in rows)
        ids.extend(deleted)
    return ids


def test_backfill_is_newest_first_then_complete(sandbox, engine, cipher) -> None:
    transport = _transport(sandbox)
    sync = _sync(_batch_backend(transport), engine, cipher, transport, Clock(BACKFILL_NOW))

    first = sync.step(max_requests=8)  # POST + GET per batch window, one GET per walk

    assert first.stopped == "max_requests"
    assert first.requests <= 8
    june = date(2025, 6, 1)
    early = mirror.load_rows(engine, cipher, "appointment")
    assert early
    assert all(date.fromisoformat(r["scheduled_time"][:10]) >= june for r in early)
    early_items = mirror.load_rows(engine, cipher, "line_item")
    assert all(date.fromisoformat(r["service_date"]) >= june for r in early_items)
    progress = sync.progress()
    assert progress.phase == "backfill"
    assert 0.0 < progress.fraction < 1.0
    assert progress.estimated_time_left is not None
    assert progress.estimated_time_left > timedelta(0)

    rest = sync.step()

    assert rest.stopped == "done"
    assert set(_ids(engine, cipher, "line_item")) == _expected_line_items(sandbox)
    assert set(_ids(engine, cipher, "appointment")) == _expected_appointments(sandbox)
    assert set(_ids(engine, cipher, "transaction")) == set(_upstream(sandbox, "transactions"))
    payments = set(_upstream(sandbox, "patient_payments"))
    assert set(_ids(engine, cipher, "patient_payment")) == payments
    progress = sync.progress()
    assert progress.phase == "incremental"
    assert progress.estimated_time_left == timedelta(0)
    assert progress.requests == first.requests + rest.requests == transport.requests_made
    assert progress.fraction == 1.0
    assert all(k.since == date(2025, 6, 10) for k in progress.kinds)
    assert sandbox.request_log.count(method="POST", path_prefix="/api/appointments_list") == 5


def test_a_killed_sync_resumes_without_downloading_anything_twice(
    sandbox, engine, cipher, tmp_path: Path
) -> None:
    clock = Clock(BACKFILL_NOW)
    first_transport = _transport(sandbox)
    first = _sync(_batch_backend(first_transport), engine, cipher, first_transport, clock)
    assert first.step(max_requests=9).stopped == "max_requests"
    first_transport.close()  # "killed": a new process with a new transport and sync object
    second_transport = _transport(sandbox)
    second = _sync(_batch_backend(second_transport), engine, cipher, second_transport, clock)
    assert second.step().stopped == "done"
    interrupted = [(e.method, e.path, e.query_names) for e in sandbox.request_log.entries()]

    sandbox.request_log.reset()
    reference_engine = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    create_schema(reference_engine)
    transport = _transport(sandbox)
    reference = _sync(_batch_backend(transport), reference_engine, cipher, transport, clock)
    assert reference.step().stopped == "done"
    uninterrupted = [(e.method, e.path, e.query_names) for e in sandbox.request_log.entries()]

    assert sorted(interrupted) == sorted(uninterrupted)
    for kind in mirror.KINDS:
        stored = _batch_ids(engine, cipher, kind)
        assert len(stored) == len(set(stored)), kind
        assert sorted(stored, key=str) == sorted(
            _batch_ids(reference_engine, cipher, kind), key=str
        )
    reference_engine.dispose()


def test_an_incremental_sync_fetches_only_the_changed_records(
    writable_sandbox, sqlite_engine, cipher
) -> None:
    clock = Clock(BACKFILL_NOW)
    transport = _transport(writable_sandbox)
    backend = _batch_backend(transport)
    sync = _sync(backend, sqlite_engine, cipher, transport, clock)
    assert sync.step().stopped == "done"
    clock.now = datetime.now(UTC)  # catch up from the backfill's watermark to today
    assert sync.step().stopped == "done"
    assert sync.step().requests == 0  # refreshed moments ago: nothing is due
    k = 3
    changed = sorted(_expected_appointments(writable_sandbox))[:k]
    for appointment_id in changed:
        backend.set_appointment_status(appointment_id, AppointmentStatus.CHECKED_IN)
    clock.now += timedelta(minutes=10)
    seqs_before = {kind: len(mirror.batch_infos(sqlite_engine, kind)) for kind in mirror.KINDS}
    writable_sandbox.request_log.reset()

    result = sync.step()

    assert result.stopped == "done"
    assert result.requests == len(writable_sandbox.request_log.entries())
    assert result.requests <= math.ceil(k / 25) + len(mirror.KINDS)
    new_batches = [
        b
        for kind in mirror.KINDS
        for b in mirror.batch_infos(sqlite_engine, kind)[seqs_before[kind] :]
    ]
    assert sum(b.record_count for b in new_batches) == k == result.records
    rows = {r["id"]: r for r in mirror.load_rows(sqlite_engine, cipher, "appointment")}
    assert {rows[i]["status"] for i in changed} == {AppointmentStatus.CHECKED_IN.value}


def test_a_deleted_appointment_is_a_tombstone(writable_sandbox, sqlite_engine, cipher) -> None:
    transport = _transport(writable_sandbox)
    gone = sorted(_expected_appointments(writable_sandbox))[0]
    transport.write("DELETE", f"/api/appointments/{gone}")
    sync = _sync(_batch_backend(transport), sqlite_engine, cipher, transport, Clock(BACKFILL_NOW))

    assert sync.step().stopped == "done"

    assert gone not in _ids(sqlite_engine, cipher, "appointment")
    assert gone in _batch_ids(sqlite_engine, cipher, "appointment")  # kept as a tombstone
    assert sum(b.tombstone_count for b in mirror.batch_infos(sqlite_engine, "appointment")) >= 1


@pytest.mark.parametrize(
    ("fault", "stopped", "code"),
    [
        ({"throttle_next": 4}, "rate_limited", "rate_limited"),
        ({"truncated_json_next": 4}, "error", "upstream_data"),
    ],
)
def test_a_failure_mid_sync_stores_nothing_and_resumes(
    sandbox, sqlite_engine, cipher, fault, stopped, code
) -> None:
    clock = Clock(BACKFILL_NOW)
    transport = _transport(sandbox)
    sync = _sync(_batch_backend(transport), sqlite_engine, cipher, transport, clock)
    assert sync.step(max_requests=6).stopped == "max_requests"
    batches = {kind: mirror.batch_infos(sqlite_engine, kind) for kind in mirror.KINDS}
    states = {kind: mirror.load_state(sqlite_engine, cipher, kind) for kind in mirror.KINDS}
    sandbox.faults.update(**fault)

    failed = sync.step()

    assert failed.stopped == stopped
    assert failed.error == code
    assert failed.records == 0
    if stopped == "rate_limited":
        assert failed.paused_until is not None
        assert failed.message.startswith("paused until")
    assert {kind: mirror.batch_infos(sqlite_engine, kind) for kind in mirror.KINDS} == batches
    after = {kind: mirror.load_state(sqlite_engine, cipher, kind) for kind in mirror.KINDS}
    assert {k: s.cursor for k, s in after.items()} == {k: s.cursor for k, s in states.items()}
    assert code in {s.last_error for s in after.values()}
    sandbox.faults.reset()

    assert sync.step().stopped == "done"
    assert set(_ids(sqlite_engine, cipher, "line_item")) == _expected_line_items(sandbox)
    assert set(_ids(sqlite_engine, cipher, "appointment")) == _expected_appointments(sandbox)
    assert all(s.last_error is None for s in sync.progress().kinds)


def test_the_sync_spends_at_most_its_share_of_the_hourly_budget(
    sandbox, sqlite_engine, cipher
) -> None:
    clock = Clock(BACKFILL_NOW)
    limit, connection_id = 21, 1
    budget = StoredBudget(sqlite_engine, connection_id, limit=limit, clock=clock)
    transport = _transport(sandbox, budget=budget)
    sync = MirrorSync(
        _batch_backend(transport),
        sqlite_engine,
        cipher,
        lambda: (budget_state(sqlite_engine, connection_id, limit, clock()).calls, limit),
        share=0.5,
        clock=clock,
        backfill_months=BACKFILL_MONTHS,
    )

    result = sync.step()

    spent = budget_state(sqlite_engine, connection_id, limit, clock()).calls
    assert result.stopped == "budget"
    assert spent == result.requests
    assert 10 - 1 <= spent <= math.floor(0.5 * limit) == 10
    assert result.message == "paused until 13:00 UTC"
    assert sync.step().stopped == "budget"  # still this hour: nothing more is spent
    assert budget_state(sqlite_engine, connection_id, limit, clock()).calls == spent

    clock.now += timedelta(hours=1)
    later = sync.step()
    assert 9 <= budget_state(sqlite_engine, connection_id, limit, clock()).calls <= 10
    assert later.requests >= 9


def test_compaction_keeps_what_the_sync_stored(sandbox, sqlite_engine, cipher) -> None:
    transport = _transport(sandbox)
    sync = _sync(_batch_backend(transport), sqlite_engine, cipher, transport, Clock(BACKFILL_NOW))
    assert sync.step().stopped == "done"
    before = {k: mirror.load_rows(sqlite_engine, cipher, k) for k in mirror.KINDS}

    for kind in mirror.KINDS:
        mirror.compact(sqlite_engine, cipher, kind, now=BACKFILL_NOW)

    after = {k: mirror.load_rows(sqlite_engine, cipher, k) for k in mirror.KINDS}
    key = str
    for kind in mirror.KINDS:
        assert sorted(before[kind], key=lambda r: key(r["id"])) == sorted(
            after[kind], key=lambda r: key(r["id"])
        )
        assert len(mirror.batch_infos(sqlite_engine, kind)) == math.ceil(len(after[kind]) / 1000)


def test_the_mirror_file_holds_no_patient_name_or_cpt_description(
    sandbox, sqlite_engine, cipher
) -> None:
    transport = _transport(sandbox)
    sync = _sync(_batch_backend(transport), sqlite_engine, cipher, transport, Clock(BACKFILL_NOW))
    assert sync.step().stopped == "done"
    names = {f"{p['first_name']} {p['last_name']}" for p in _upstream(sandbox, "patients").values()}
    descriptions = {str(li["description"]) for li in _upstream(sandbox, "line_items").values()} - {
        "",
        "None",
    }
    assert len(names) > 10
    assert len(descriptions) > 3
    assert len(mirror.load_rows(sqlite_engine, cipher, "line_item")) > 10

    database = Path(sqlite_engine.url.database or "")
    raw = b"".join(p.read_bytes() for p in (database, Path(f"{database}-wal")) if p.exists())

    leaked = [text for text in names | descriptions if text.encode() in raw]
    assert leaked == []
    assert b'"code":' not in raw
    assert b'"patient_id":' not in raw


def test_windowed_source_is_an_optional_capability(sandbox) -> None:
    transport = _transport(sandbox)
    backend = _batch_backend(transport)
    assert isinstance(backend, WindowedSource)
    assert not isinstance(PlainBackend(backend), WindowedSource)


def test_a_backend_without_windows_backfills_by_walking_iter(
    sandbox, sqlite_engine, cipher
) -> None:
    transport = _transport(sandbox)
    backend = PlainBackend(DrChronoBackend(transport, practice_tz=TZ))
    sync = _sync(backend, sqlite_engine, cipher, transport, Clock(BACKFILL_NOW))

    assert sync.step().stopped == "done"

    assert set(_ids(sqlite_engine, cipher, "line_item")) == {
        int(k) for k in _upstream(sandbox, "line_items")
    }
    assert sandbox.request_log.count(method="POST") == 0
