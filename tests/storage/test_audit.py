"""The audit table and its one write path: append-only at the database, chained, serialised,
fail-closed, PHI-free details and UTC timestamps (SECURITY.md AU-01, AU-03, AU-04, AU-07)."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from sqlmodel import select as sm_select

import storage.audit as audit_module
from storage.audit import (
    AUDIT_TABLE,
    GENESIS_MAC,
    AuditAction,
    AuditAppendOnlyError,
    AuditEvent,
    AuditOutcome,
    AuditRecord,
    AuditWriteError,
    append,
    compute_row_mac,
)
from storage.audit_chain import verify
from storage.database import create_schema, make_engine

KEY = b"k" * 32
REPO = Path(__file__).resolve().parents[2]


def _read(engine) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(sm_select(AuditEvent).order_by(AUDIT_TABLE.c.seq)).all())


def _seqs(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT seq FROM audit_event ORDER BY seq")).scalars())


def test_append_builds_a_chain_from_genesis(engine):
    first = append(engine, KEY, AuditRecord(action=AuditAction.LOGIN, user_id=1, username="ann"))
    second = append(
        engine,
        KEY,
        AuditRecord(
            action="READ",
            user_id=1,
            role="clinician",
            resource_type="patient",
            resource_id=42,
            patient_id=42,
            data_category="demographics",
            client_ip="10.0.0.7",
            correlation_id="c-1",
        ),
    )
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_mac == GENESIS_MAC
    assert second.prev_mac == first.row_mac
    stored = _read(engine)
    assert [r.row_mac for r in stored] == [first.row_mac, second.row_mac]
    row = stored[1]
    assert (row.action, row.outcome, row.patient_id, row.resource_id) == (
        "READ",
        "SUCCESS",
        "42",
        "42",
    )
    # The stored row recomputes to its MAC with the key, and to nothing else without it.
    as_dict = {c.name: getattr(row, c.name) for c in AUDIT_TABLE.columns}
    assert compute_row_mac(KEY, as_dict, row.prev_mac) == row.row_mac
    assert compute_row_mac(b"x" * 32, as_dict, row.prev_mac) != row.row_mac


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET user_id = 99 WHERE seq = 1",
        "DELETE FROM audit_event WHERE seq = 1",
        "DELETE FROM audit_event",
    ],
)
def test_update_and_delete_are_refused_by_the_database(engine, statement):
    append(engine, KEY, AuditRecord(action=AuditAction.READ, user_id=1))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    assert _seqs(engine) == [1]
    assert verify(engine, KEY).ok


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_truncate_is_refused_on_postgres(engine):
    append(engine, KEY, AuditRecord(action=AuditAction.READ, user_id=1))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_event"))
    assert _seqs(engine) == [1]


def test_orm_changes_are_refused(engine):
    append(engine, KEY, AuditRecord(action=AuditAction.READ, user_id=1))
    with Session(engine) as session:
        row = session.get(AuditEvent, 1)
        assert row is not None
        row.user_id = 2
        with pytest.raises(AuditAppendOnlyError):
            session.commit()
    with Session(engine) as session:
        row = session.get(AuditEvent, 1)
        session.delete(row)
        with pytest.raises(AuditAppendOnlyError):
            session.commit()
    assert _read(engine)[0].user_id == 1


def test_no_update_or_delete_path_in_the_code_base():
    forbidden = re.compile(
        r"(UPDATE\s+audit_event|DELETE\s+FROM\s+audit_event|TRUNCATE\s+(TABLE\s+)?audit_event"
        r"|AUDIT_TABLE\s*\.\s*(update|delete)\b|AuditEvent\.__table__\s*\.\s*(update|delete)\b"
        r"|(update|delete)\(\s*AuditEvent\b)",
        re.IGNORECASE,
    )
    sources = [REPO / "Home.py"] + [
        p
        for top in ("storage", "ehr", "ui", "pages", "migrations")
        for p in (REPO / top).rglob("*.py")
    ]
    offenders = [
        str(p.relative_to(REPO)) for p in sources if p.exists() and forbidden.search(p.read_text())
    ]
    assert offenders == []


def test_ts_utc_round_trips_as_aware_utc(engine):
    written = append(engine, KEY, AuditRecord(action=AuditAction.READ, user_id=1))
    tokyo = datetime(2026, 3, 8, 16, 30, 0, 123456, tzinfo=ZoneInfo("Asia/Tokyo"))
    shifted = append(engine, KEY, AuditRecord(action=AuditAction.READ), clock=lambda: tokyo)
    stored = _read(engine)
    for row, event_ in zip(stored, (written, shifted), strict=True):
        assert row.ts_utc == event_.ts_utc
        assert row.ts_utc.utcoffset() == timedelta(0)
        assert row.ts_utc.isoformat().endswith("+00:00")
        assert datetime.fromisoformat(row.ts_utc.isoformat()) == row.ts_utc
    assert stored[1].ts_utc.isoformat() == "2026-03-08T07:30:00.123456+00:00"
    assert verify(engine, KEY).ok


def test_a_naive_clock_is_refused_and_releases_the_lock(engine):
    with pytest.raises(ValueError, match="timezone-aware"):
        append(engine, KEY, AuditRecord(action=AuditAction.READ), clock=datetime.now)
    assert _seqs(engine) == []
    append(engine, KEY, AuditRecord(action=AuditAction.READ))
    assert _seqs(engine) == [1]


@pytest.mark.parametrize("key", [b"", b"short-key"])
def test_append_refuses_a_missing_key(engine, key):
    with pytest.raises(AuditWriteError, match="AUDIT_HMAC_KEY"):
        append(engine, key, AuditRecord(action=AuditAction.READ))
    assert _seqs(engine) == []


def test_a_locked_database_fails_closed(engine, monkeypatch, tmp_path):
    """Another writer holds the append lock beyond the timeout → AuditWriteError, no row."""
    append(engine, KEY, AuditRecord(action=AuditAction.READ))
    if engine.dialect.name == "sqlite":
        short = make_engine(str(engine.url))
        event.listen(short, "connect", lambda c, _r: c.execute("PRAGMA busy_timeout=100"))
        holder = sqlite3.connect(engine.url.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        release = holder.close
    else:
        monkeypatch.setattr(audit_module, "APPEND_LOCK_TIMEOUT_MS", 100)
        short = engine
        holder_conn = engine.connect()
        lock_key = {"k": audit_module.POSTGRES_APPEND_LOCK_KEY}
        holder_conn.execute(text("SELECT pg_advisory_lock(:k)"), lock_key)

        def release() -> None:
            holder_conn.execute(text("SELECT pg_advisory_unlock(:k)"), lock_key)
            holder_conn.close()

    try:
        with pytest.raises(AuditWriteError, match="busy or unavailable"):
            append(short, KEY, AuditRecord(action=AuditAction.READ))
    finally:
        release()
    append(short, KEY, AuditRecord(action=AuditAction.READ))
    if short is not engine:
        short.dispose()
    assert _seqs(engine) == [1, 2]
    assert verify(engine, KEY).ok


def test_threads_keep_one_gap_free_chain(engine):
    threads_n, each = 8, 40
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(each):
                append(engine, KEY, AuditRecord(action=AuditAction.READ, user_id=i))
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _seqs(engine) == list(range(1, threads_n * each + 1))
    assert verify(engine, KEY).ok


def _append_in_process(url: str, username: str, count: int) -> None:
    """Runs in a spawned process: its own engine, its own connections."""
    engine = make_engine(url)
    try:
        for _ in range(count):
            append(engine, KEY, AuditRecord(action=AuditAction.READ, username=username))
    finally:
        engine.dispose()


def test_two_processes_keep_one_gap_free_chain(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_append_in_process, args=(db_url, f"proc{i}", 500)) for i in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    try:
        assert [w.exitcode for w in workers] == [0, 0]
        assert _seqs(engine) == list(range(1, 1001))
        result = verify(engine, KEY)
        assert result.ok, result.message
        names = [r.username for r in _read(engine)]
        assert names.count("proc0") == names.count("proc1") == 500
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "details",
    [
        {"name": "x"},
        {"patient_name": "x"},
        {"firstName": "x"},
        {"last_name": "x"},
        {"dob": "x"},
        {"dateOfBirth": "x"},
        {"home_address": "x"},
        {"phone": "x"},
        {"email": "x"},
        {"ssn": "x"},
        {"access_token": "x"},
        {"refreshToken": "x"},
        {"password": "x"},
        {"code": "x"},
        {"auth_code": "x"},
        {"state": "x"},
        {"oauth_state": "x"},
        {"client_secret": "x"},
        {"code_verifier": "x"},
        {"changes": {"status": "ok", "last_name": "x"}},
        {"items": [{"id": 1}, {"email": "x"}]},
    ],
)
def test_details_with_phi_or_secret_keys_are_rejected(details):
    with pytest.raises(ValueError, match="looks like PHI or a secret"):
        AuditRecord(action=AuditAction.READ, details=details)


def test_details_errors_never_echo_values():
    with pytest.raises(ValueError, match="audit details") as caught:
        AuditRecord(action=AuditAction.READ, details={"patient_name": "Zebulon Quixote"})
    assert "Zebulon" not in str(caught.value)
    with pytest.raises(ValueError, match="audit details") as caught:
        AuditRecord(action=AuditAction.READ, details={"Zebulon Quixote": 1})
    assert "Zebulon" not in str(caught.value)


@pytest.mark.parametrize(
    "details",
    [
        {"when": datetime.now(UTC)},
        {"ratio": float("nan")},
        {"blob": "x" * 5000},
        {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}},
    ],
)
def test_details_must_be_small_plain_json(details):
    with pytest.raises(ValueError, match="audit details"):
        AuditRecord(action=AuditAction.READ, details=details)


def test_safe_details_are_stored_canonically(engine):
    details = {
        "target_username": "bob",
        "old": "front_desk",
        "new": "clinician",
        "error_code": "UPSTREAM_503",
        "count": 3,
        "ids": [3, 1, 2],
    }
    record = AuditRecord(action=AuditAction.PRIVILEGE_CHANGE, user_id=1, details=details)
    append(engine, KEY, record)
    assert _read(engine)[0].details == (
        '{"count":3,"error_code":"UPSTREAM_503","ids":[3,1,2],"new":"clinician",'
        '"old":"front_desk","target_username":"bob"}'
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "NOT_AN_ACTION"),
        ("outcome", "MAYBE"),
        ("client_ip", "not-an-ip"),
        ("username", "evil\nINFO fake"),
        ("username", ""),
        ("resource_id", "x" * 65),
        ("user_id", "7"),
        ("break_glass", "yes"),
    ],
)
def test_record_fields_are_validated(field, value):
    kwargs = {"action": AuditAction.READ, field: value}
    with pytest.raises(ValueError, match=r"audit|AuditAction|AuditOutcome"):
        AuditRecord(**kwargs)


def test_record_normalises_enums_ids_and_ips():
    record = AuditRecord(action="EXPORT", outcome="DENIED", patient_id=7, client_ip="2001:DB8:0::1")
    assert record.action is AuditAction.EXPORT
    assert record.outcome is AuditOutcome.DENIED
    assert record.patient_id == "7"
    assert record.client_ip == "2001:db8::1"


def test_after_append_observers_see_each_committed_row_and_cannot_break_it(sqlite_engine):
    audit = audit_module
    seen = []

    def broken(_row):
        raise RuntimeError("observer bug")

    stop_seen = audit.on_append(seen.append)
    stop_broken = audit.on_append(broken)
    try:
        row = audit.append(sqlite_engine, KEY, audit.AuditRecord(action=audit.AuditAction.READ))
    finally:
        stop_seen()
        stop_broken()
    assert [r.seq for r in seen] == [row.seq]
    audit.append(sqlite_engine, KEY, audit.AuditRecord(action=audit.AuditAction.READ))
    assert len(seen) == 1  # removed observers are not called again
