"""Tamper detection (SECURITY.md AU-04): with the triggers dropped, as an attacker holding the
database could, every edit, deletion, renumbering and truncation is named by ``verify``."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

import storage.audit_chain as chain_module
from storage.audit import (
    GENESIS_MAC,
    MAC_FIELDS,
    AuditAction,
    AuditKeyError,
    AuditRecord,
    append,
    canonical_json,
    format_ts,
)
from storage.audit_chain import (
    ANCHOR_EVERY_APPENDS,
    Anchor,
    AuditChainError,
    anchor,
    default_anchor_path,
    read_latest_anchor,
    record_anchor_if_due,
    verify,
    write_anchor,
)

KEY = b"k" * 32
ROWS = 60


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    """Verify in chunks of 7 rows, so every scenario also crosses chunk boundaries."""
    monkeypatch.setattr(chain_module, "VERIFY_CHUNK_ROWS", 7)


@pytest.fixture
def chain(engine):
    """An engine whose audit log holds ROWS valid rows."""
    for i in range(ROWS):
        append(
            engine,
            KEY,
            AuditRecord(action=AuditAction.READ, user_id=i % 5, patient_id=i, details={"i": i}),
        )
    return engine


def _tamper(engine, *statements: tuple[str, dict]) -> None:
    """Drop the append-only triggers in this connection, then run ``statements``."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            names = conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).scalars()
            for name in list(names):
                conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        else:
            names = conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger "
                    "WHERE tgrelid = 'audit_event'::regclass AND NOT tgisinternal"
                )
            ).scalars()
            for name in list(names):
                conn.exec_driver_sql(f'DROP TRIGGER "{name}" ON audit_event')
        for sql, params in statements:
            conn.execute(text(sql), params)


def test_untouched_log_is_clean(chain):
    result = verify(chain, KEY)
    assert result.ok
    assert (result.checked, result.head_seq, result.first_bad_seq, result.kind) == (
        ROWS,
        ROWS,
        None,
        None,
    )
    assert result.problems == ()
    assert "intact" in result.message


def test_empty_log_is_clean_and_anchors_at_genesis(engine):
    assert verify(engine, KEY).ok
    assert anchor(engine, KEY) == Anchor(0, GENESIS_MAC)
    assert verify(engine, KEY, anchor=Anchor(0, GENESIS_MAC)).ok


def test_edited_row_is_named_exactly(chain):
    _tamper(chain, ("UPDATE audit_event SET user_id = 999 WHERE seq = 57", {}))
    result = verify(chain, KEY)
    assert not result.ok
    assert (result.first_bad_seq, result.kind) == (57, "edited")
    assert [(p.seq, p.kind) for p in result.problems] == [(57, "edited")]


def test_deleted_row_is_reported_as_a_gap(chain):
    _tamper(chain, ("DELETE FROM audit_event WHERE seq = 58", {}))
    result = verify(chain, KEY)
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 58, "missing")
    assert "gap after seq 57" in result.message
    assert [(p.seq, p.kind) for p in result.problems] == [(58, "missing")]


def test_deleting_the_first_row_is_a_gap(chain):
    _tamper(chain, ("DELETE FROM audit_event WHERE seq = 1", {}))
    result = verify(chain, KEY)
    assert (result.first_bad_seq, result.kind) == (1, "missing")


def test_truncated_tail_is_caught_by_the_anchor(chain):
    before = anchor(chain, KEY)
    assert before.seq == ROWS
    _tamper(chain, ("DELETE FROM audit_event WHERE seq > :s", {"s": ROWS - 3}))
    # Without an anchor the shorter chain is internally valid: this is why anchors exist.
    assert verify(chain, KEY).ok
    result = verify(chain, KEY, anchor=before)
    assert (result.ok, result.first_bad_seq, result.kind) == (False, ROWS - 2, "truncated")
    assert "behind the anchor" in result.message


def test_cut_and_regrown_tail_is_caught_by_the_anchor(chain):
    before = anchor(chain, KEY)
    _tamper(chain, ("DELETE FROM audit_event WHERE seq > :s", {"s": ROWS - 3}))
    for _ in range(3):  # regrown through the real append, with the real key
        append(chain, KEY, AuditRecord(action=AuditAction.READ, user_id=1))
    assert verify(chain, KEY).ok
    result = verify(chain, KEY, anchor=before)
    assert (result.first_bad_seq, result.kind) == (ROWS, "truncated")


def test_edit_with_recomputed_plain_hash_is_still_detected(chain):
    """An attacker without k_audit recomputes a SHA-256 over the edited row."""
    with chain.connect() as conn:
        row = dict(conn.execute(text("SELECT * FROM audit_event WHERE seq = 30")).mappings().one())
    row["user_id"] = 4242
    payload = {name: row[name] for name in MAC_FIELDS}
    payload["ts_utc"] = str(row["ts_utc"])
    forged = hashlib.sha256((canonical_json(payload) + row["prev_mac"]).encode()).hexdigest()
    _tamper(
        chain,
        ("UPDATE audit_event SET user_id = 4242, row_mac = :m WHERE seq = 30", {"m": forged}),
    )
    result = verify(chain, KEY)
    assert (result.first_bad_seq, result.kind) == (30, "edited")
    # seq 31 no longer links to 30, but that is a consequence, not a second finding.
    assert [p.seq for p in result.problems] == [30]


def test_renumbering_to_hide_a_deletion_is_reported_as_reordered(chain):
    statements = [("DELETE FROM audit_event WHERE seq = 30", {})]
    statements += [
        ("UPDATE audit_event SET seq = :new WHERE seq = :old", {"new": s - 1, "old": s})
        for s in range(31, ROWS + 1)
    ]
    _tamper(chain, *statements)
    result = verify(chain, KEY)
    assert (result.first_bad_seq, result.kind) == (30, "reordered")
    assert "written as seq 31" in result.message
    assert result.problem_count == ROWS - 30


def test_swapped_timestamps_are_edits(chain):
    with chain.connect() as conn:
        ts = dict(
            conn.execute(text("SELECT seq, ts_utc FROM audit_event WHERE seq IN (10, 11)")).all()
        )
    _tamper(
        chain,
        ("UPDATE audit_event SET ts_utc = :t WHERE seq = 10", {"t": ts[11]}),
        ("UPDATE audit_event SET ts_utc = :t WHERE seq = 11", {"t": ts[10]}),
    )
    result = verify(chain, KEY)
    assert [(p.seq, p.kind) for p in result.problems] == [(10, "edited"), (11, "edited")]


def test_another_key_never_verifies(chain):
    result = verify(chain, b"z" * 32)
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 1, "edited")
    assert result.problem_count == ROWS
    assert len(result.problems) <= chain_module.MAX_REPORTED_PROBLEMS


@pytest.mark.parametrize("key", [b"", b"too-short"])
def test_verify_refuses_without_a_key(chain, key):
    with pytest.raises(AuditKeyError, match="AUDIT_HMAC_KEY"):
        verify(chain, key)
    with pytest.raises(AuditKeyError, match="AUDIT_HMAC_KEY"):
        anchor(chain, key)


def test_anchor_refuses_a_forged_head(chain):
    _tamper(chain, ("UPDATE audit_event SET user_id = 7 WHERE seq = :s", {"s": ROWS}))
    with pytest.raises(AuditChainError, match=f"seq {ROWS}"):
        anchor(chain, KEY)


def test_anchor_file_keeps_the_highest_seq_with_mode_0600(tmp_path):
    path = default_anchor_path(tmp_path / "data")
    assert read_latest_anchor(path) is None
    write_anchor(path, Anchor(5, "a" * 64))
    write_anchor(path, Anchor(9, "b" * 64))
    write_anchor(path, Anchor(7, "c" * 64))
    assert read_latest_anchor(path) == Anchor(9, "b" * 64)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [5, 9, 7]


def test_anchor_file_damage_is_an_error(tmp_path):
    path = tmp_path / "anchors.jsonl"
    write_anchor(path, Anchor(3, "a" * 64))
    write_anchor(path, Anchor(3, "b" * 64))
    with pytest.raises(AuditChainError, match="two MACs for seq 3"):
        read_latest_anchor(path)
    path.write_text('{"seq": 1, "row_mac": "nothex"}\n')
    with pytest.raises(AuditChainError, match="line 1 is malformed"):
        read_latest_anchor(path)


def test_anchor_round_trip_through_the_file(chain, tmp_path):
    path = tmp_path / "anchors.jsonl"
    write_anchor(path, anchor(chain, KEY))
    assert verify(chain, KEY, anchor=read_latest_anchor(path)).ok
    _tamper(chain, ("DELETE FROM audit_event WHERE seq = :s", {"s": ROWS}))
    assert verify(chain, KEY, anchor=read_latest_anchor(path)).kind == "truncated"


def test_anchors_are_recorded_every_n_appends(engine, tmp_path):
    path = tmp_path / "anchors.jsonl"
    written = [
        record_anchor_if_due(path, append(engine, KEY, AuditRecord(action=AuditAction.READ)))
        for _ in range(ANCHOR_EVERY_APPENDS + 1)
    ]
    assert written.count(True) == 1
    assert written[ANCHOR_EVERY_APPENDS - 1]
    latest = read_latest_anchor(path)
    assert latest is not None
    assert latest.seq == ANCHOR_EVERY_APPENDS


def test_canonical_timestamp_format():
    ts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    assert format_ts(ts) == "2026-01-02T08:04:05.000000+00:00"
    assert format_ts(datetime(2026, 1, 2, tzinfo=UTC)).endswith(".000000+00:00")
    with pytest.raises(ValueError, match="timezone-aware"):
        format_ts(datetime(2026, 1, 2))  # naive on purpose
