"""The audit report (SECURITY.md AU-05): half-open ranges, filters, monotone sorting on every
column on both databases, and CSV export of exactly the selected rows."""

from __future__ import annotations

import csv
import io
import itertools
import stat
from datetime import UTC, datetime, timedelta

import pytest

from storage.audit import AuditAction, AuditOutcome, AuditRecord, append
from storage.audit_report import (
    EXPORT_COLUMNS,
    QUERY_MAX_LIMIT,
    SORTABLE_COLUMNS,
    export_csv,
    query,
)

KEY = b"k" * 32
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(hours=2, minutes=24)  # 100 rows over 10 days; every 10th row is at midnight
USERS = [(1, "alice"), (2, "Bob"), (3, "émile"), (None, None), (4, "=cmd")]
ACTIONS = [AuditAction.READ, AuditAction.SEARCH, AuditAction.EXPORT, AuditAction.LOGIN_FAILED]
OUTCOMES = [AuditOutcome.SUCCESS, AuditOutcome.SUCCESS, AuditOutcome.DENIED, AuditOutcome.ERROR]


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


@pytest.fixture
def seeded(engine):
    """100 rows across 10 days with varied (and sometimes missing) values in every column."""
    for i in range(100):
        user_id, username = USERS[i % len(USERS)]
        append(
            engine,
            KEY,
            AuditRecord(
                action=ACTIONS[i % 4],
                outcome=OUTCOMES[(i // 4) % 4],
                user_id=user_id,
                username=username,
                role=None if i % 7 == 0 else ["admin", "clinician", "billing"][i % 3],
                resource_type="patient" if i % 2 else "appointment",
                resource_id=None if i % 6 == 0 else str(1000 + (i * 37) % 101),
                patient_id=None if i % 5 == 0 else str(i % 13),
                data_category=["demographics", "billing", None][i % 3],
                client_ip=None if i % 4 == 0 else f"10.0.{i % 3}.{i % 11}",
                correlation_id=f"c-{(i * 7919) % 100:03d}",
                break_glass=i % 9 == 0,
            ),
            clock=lambda i=i: DAY0 + i * STEP,
        )
    return engine


def test_range_is_half_open(seeded):
    rows = query(seeded, since=day(3), until=day(5))
    assert [r.seq for r in rows] == list(range(31, 51))  # row 30 at day 3 in, row 50 at day 5 out
    assert all(day(3) <= r.ts_utc < day(5) for r in rows)
    assert query(seeded, since=day(5), until=day(5)) == []
    assert len(query(seeded, since=day(9))) == 10
    assert len(query(seeded, until=day(1))) == 10


def test_sorting_is_monotone_for_every_column(seeded):
    for column, descending in itertools.product(SORTABLE_COLUMNS, (False, True)):
        rows = query(seeded, order_by=column, descending=descending, limit=1000)
        assert len(rows) == 100
        keys = [(getattr(r, column) is not None, getattr(r, column)) for r in rows]
        # NULLs first ascending, last descending; seq breaks ties in the same direction.
        assert keys == sorted(keys, reverse=descending), (column, descending)
        for a, b in itertools.pairwise(rows):
            if getattr(a, column) == getattr(b, column):
                assert (a.seq < b.seq) != descending, (column, descending)


def test_filters_combine(seeded):
    assert {r.user_id for r in query(seeded, user=2, limit=1000)} == {2}
    assert {r.username for r in query(seeded, user="émile", limit=1000)} == {"émile"}
    denied = query(seeded, action="READ", outcome=AuditOutcome.DENIED, limit=1000)
    assert denied
    assert {(r.action, r.outcome) for r in denied} == {("READ", "DENIED")}
    assert {r.patient_id for r in query(seeded, patient_id=5, limit=1000)} == {"5"}
    some = query(seeded, resource_id="1037", limit=1000)
    assert some
    assert {r.resource_id for r in some} == {"1037"}
    glass = query(seeded, break_glass=True, limit=1000)
    assert [r.seq - 1 for r in glass] == list(range(0, 100, 9))


def test_paging_is_stable(seeded):
    pages = [query(seeded, order_by="action", limit=30, offset=o) for o in range(0, 100, 30)]
    seqs = [r.seq for page in pages for r in page]
    assert sorted(seqs) == list(range(1, 101))
    assert len(query(seeded, limit=QUERY_MAX_LIMIT + 5)) == 100


@pytest.mark.parametrize(
    "kwargs",
    [
        {"order_by": "details"},
        {"order_by": "seq; DROP TABLE audit_event"},
        {"since": datetime(2026, 3, 1)},  # naive on purpose
        {"action": "NOPE"},
        {"limit": -1},
    ],
)
def test_bad_arguments_are_refused(engine, kwargs):
    with pytest.raises(ValueError):  # noqa: PT011  several distinct messages
        query(engine, **kwargs)


def test_export_to_a_file_writes_the_range_with_mode_0600(seeded, tmp_path):
    path = tmp_path / "audit.csv"
    assert export_csv(seeded, path, day(3), day(5)) == 20
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == EXPORT_COLUMNS
        rows = list(reader)
    assert [int(r["seq"]) for r in rows] == list(range(31, 51))
    stored = {r.seq: r for r in query(seeded, since=day(3), until=day(5))}
    for row in rows:
        event = stored[int(row["seq"])]
        assert row["ts_utc"] == event.ts_utc.isoformat(timespec="microseconds")
        assert row["ts_utc"].endswith("+00:00")
        assert row["row_mac"] == event.row_mac
        assert row["patient_id"] == (event.patient_id or "")


def test_export_to_a_stream_escapes_formulas(seeded):
    buffer = io.StringIO()
    assert export_csv(seeded, buffer) == 100
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert len(rows) == 100
    assert {r["username"] for r in rows} == {"alice", "Bob", "émile", "", "'=cmd"}
    assert export_csv(seeded, io.StringIO(), day(20), day(21)) == 0
