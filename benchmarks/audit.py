"""Audit log: append throughput and the time to verify a million-row chain, SQLite and PostgreSQL.

Appends go through ``storage.audit.append``, one thread, the way the app writes every row (one
locked transaction each). For verification the chain is not built through ``append`` (hours at
a million rows): rows are generated with the same MAC function, ``compute_row_mac``, chained
exactly as ``append`` chains them, and bulk-inserted; ``storage.audit_chain.verify`` must then
find the chain intact, which also checks the generator. Each database is a throw-away one: a
temp SQLite file, and on PostgreSQL a uniquely named database created and dropped here.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from benchmarks.harness import Record, RunContext, WithPeakRss, interleaved, median
from benchmarks.harness import make_record as rec
from storage.audit import (
    AUDIT_TABLE,
    GENESIS_MAC,
    AuditAction,
    AuditOutcome,
    AuditRecord,
    append,
    compute_row_mac,
)
from storage.audit_chain import verify
from storage.database import create_schema, make_engine

# The PostgreSQL server the tests use (trust auth); a database is created on it per run.
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POSTGRES_URL_ENV = "TEST_POSTGRES_URL"
# Appends per timed run: enough that one slow fsync does not decide the figure.
APPENDS_PER_RUN = 500
QUICK_APPENDS_PER_RUN = 200
# Rows in the chain that is verified.
VERIFY_ROWS = 1_000_000
QUICK_VERIFY_ROWS = 100_000
# Rows per INSERT batch while loading the chain.
INSERT_BATCH_ROWS = 10_000
# A fixed benchmark key (the chain is synthetic; never a real deployment's key).
BENCH_KEY = b"benchmark-audit-key-not-a-secret-0123456789"
# When the synthetic chain starts, and the spacing of its rows.
CHAIN_START = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
ROW_SPACING = timedelta(seconds=2)
# Actions cycled through the generated rows, so the text columns vary like real ones.
_ACTIONS = (AuditAction.READ, AuditAction.SEARCH, AuditAction.READ, AuditAction.UPDATE)
_RESOURCES = ("patient", "appointment", "clinical_note", "line_item")
# Distinct records the generated chain cycles through: building (validating) an AuditRecord per
# row would cost more than its MAC, and seq, time and MACs differ per row anyway.
_TEMPLATES = 997


def _postgres_admin_url() -> str:
    return os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)


@contextmanager
def _sqlite_engine() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'audit.db'}")
        try:
            create_schema(engine)
            yield engine
        finally:
            engine.dispose()


@contextmanager
def _postgres_engine() -> Iterator[Engine]:
    """An engine on a fresh PostgreSQL database, dropped afterwards."""
    admin = create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"bench_{uuid.uuid4().hex[:16]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(_postgres_admin_url()).set(database=name)
        engine = make_engine(url.render_as_string(hide_password=False))
        try:
            create_schema(engine)
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _postgres_reachable() -> bool:
    admin = create_engine(_postgres_admin_url())
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure to connect means "no server to measure"
        return False
    finally:
        admin.dispose()


def _sample_record(number: int) -> AuditRecord:
    return AuditRecord(
        action=_ACTIONS[number % len(_ACTIONS)],
        user_id=1 + number % 7,
        username=f"user{number % 7}",
        role="clinician",
        resource_type=_RESOURCES[number % len(_RESOURCES)],
        resource_id=str(100_000 + number),
        patient_id=str(5_000 + number % 1500),
        data_category="demographics",
        client_ip="127.0.0.1",
        correlation_id=f"{number:012x}",
        details={"count": number % 25},
    )


def _appends(engine: Engine, count: int) -> Callable[[], object]:
    records = [_sample_record(n) for n in range(count)]

    def run() -> None:
        for record in records:
            append(engine, BENCH_KEY, record)

    return run


def _chain_rows(count: int) -> Iterator[list[dict[str, Any]]]:
    """``count`` correctly chained rows, in batches, built as ``append`` builds them."""
    templates = [_sample_record(n) for n in range(_TEMPLATES)]
    prev_mac = GENESIS_MAC
    batch: list[dict[str, Any]] = []
    for seq in range(1, count + 1):
        record = templates[seq % _TEMPLATES]
        row: dict[str, Any] = {
            "seq": seq,
            "ts_utc": CHAIN_START + ROW_SPACING * seq,
            "user_id": record.user_id,
            "username": record.username,
            "role": record.role,
            "action": record.action.value,
            "resource_type": record.resource_type,
            "resource_id": record.resource_id,
            "patient_id": record.patient_id,
            "data_category": record.data_category,
            "outcome": AuditOutcome.SUCCESS.value,
            "client_ip": record.client_ip,
            "correlation_id": record.correlation_id,
            "break_glass": False,
            "details": record.details_text,
            "prev_mac": prev_mac,
        }
        row["row_mac"] = prev_mac = compute_row_mac(BENCH_KEY, row, prev_mac)
        batch.append(row)
        if len(batch) == INSERT_BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _load_chain(engine: Engine, count: int) -> None:
    with engine.begin() as conn:
        for batch in _chain_rows(count):
            conn.execute(AUDIT_TABLE.insert(), batch)


def _check_intact(engine: Engine, rows: int) -> None:
    result = verify(engine, BENCH_KEY)
    if not result.ok or result.checked != rows:
        raise RuntimeError(f"the generated chain did not verify: {result.message}")


def _measure(
    ctx: RunContext, dialect: str, engine_for: Callable[[], AbstractContextManager[Engine]]
) -> list[Record]:
    appends = QUICK_APPENDS_PER_RUN if ctx.quick else APPENDS_PER_RUN
    rows = QUICK_VERIFY_ROWS if ctx.quick else VERIFY_ROWS
    with engine_for() as engine:
        ctx.progress(f"audit: {ctx.runs} runs of {appends} appends on {dialect}")
        times = interleaved({"append": _appends(engine, appends)}, ctx.runs)["append"]
        throughput = [appends / seconds for seconds in times]
    with engine_for() as engine:
        ctx.progress(f"audit: generating a {rows:,}-row chain on {dialect}")
        _load_chain(engine, rows)
        check = WithPeakRss(lambda: _check_intact(engine, rows))
        ctx.progress(f"audit: {ctx.runs} verifications of {rows:,} rows on {dialect}")
        # No warm-up round: the chain was just written, so it is as warm as it will get.
        verify_times = interleaved({"verify": check}, ctx.runs, warmup=0)["verify"]
    records = [
        rec(f"audit.append.{dialect}", throughput, "rows/s", note=f"{appends} appends a run"),
        rec(
            f"audit.verify.{dialect}",
            verify_times,
            "s",
            note=f"{rows:,} rows ({rows / median(verify_times):,.0f} rows/s)",
        ),
    ]
    peaks = check.timed(ctx.runs)
    if peaks:
        records.append(rec(f"audit.verify.{dialect}.peak_rss", peaks, "MiB"))
    return records


def run(ctx: RunContext) -> list[Record]:
    """Append throughput and verify time on SQLite, then on PostgreSQL when it answers."""
    records = _measure(ctx, "sqlite", _sqlite_engine)
    if _postgres_reachable():
        records += _measure(ctx, "postgresql", _postgres_engine)
    else:
        ctx.notes.append(f"audit on PostgreSQL skipped: no server at ${POSTGRES_URL_ENV}")
    return records
