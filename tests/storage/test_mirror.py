"""The encrypted mirror: batches load as latest-version-wins, commits are atomic with the state,
compaction keeps the loaded data, key rotation covers the mirror, nothing is stored in clear."""

from __future__ import annotations

import dataclasses
import json
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from storage import mirror
from storage.crypto import Cipher, DecryptionError
from storage.mirror import (
    COMPACT_BATCH_ROWS,
    MirrorBatch,
    MirrorSyncState,
    SyncState,
    SyncStateConflictError,
)
from storage.tokens import rotate_keys

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
KEY = Fernet.generate_key()


@pytest.fixture
def cipher() -> Cipher:
    return Cipher([KEY])


def _row(record_id: int, cents: int, day: int = 1, code: str = "99213") -> dict[str, object]:
    stamp = datetime(2026, 2, day, 12, tzinfo=UTC).isoformat()
    return {"id": record_id, "code": code, "billed": cents, "updated_at": stamp}


def _commit(engine, cipher, state, rows=(), deleted=(), **changes) -> SyncState:
    new = dataclasses.replace(state, **changes)
    return mirror.commit_page(engine, cipher, new, rows=rows, deleted=deleted, now=NOW)


def test_later_batches_win_and_tombstones_drop_ids(engine, cipher) -> None:
    state = mirror.load_state(engine, cipher, "line_item")
    assert state.version == 0
    state = _commit(engine, cipher, state, [_row(1, 100), _row(2, 200)], cursor="c1")
    state = _commit(engine, cipher, state, [_row(2, 250, day=3), _row(3, 300)], cursor="c2")
    _commit(engine, cipher, state, [_row(4, 400)], deleted=[1], cursor=None)

    rows = sorted(mirror.load_rows(engine, cipher, "line_item"), key=lambda r: r["id"])
    assert [(r["id"], r["billed"]) for r in rows] == [(2, 250), (3, 300), (4, 400)]
    infos = mirror.batch_infos(engine, "line_item")
    assert [(b.seq, b.record_count, b.tombstone_count) for b in infos] == [
        (1, 2, 0),
        (2, 2, 0),
        (3, 1, 1),
    ]
    assert infos[1].max_updated_at == datetime(2026, 2, 3, 12, tzinfo=UTC)
    assert mirror.load_rows(engine, cipher, "appointment") == []


def test_state_round_trips_with_the_cursor_encrypted(engine, cipher) -> None:
    state = mirror.load_state(engine, cipher, "appointment")
    saved = _commit(
        engine,
        cipher,
        state,
        cursor="https://ehr.example/api/x?cursor=abc",
        window_start=date(2026, 3, 1),
        backfill_until=date(2024, 3, 1),
        next_since=date(2026, 3, 1),
        records=5,
        requests=2,
        started_at=NOW,
        last_error="rate_limited",
    )
    loaded = mirror.load_state(engine, cipher, "appointment")
    assert loaded == saved
    assert loaded.cursor == "https://ehr.example/api/x?cursor=abc"
    assert loaded.version == 1
    assert loaded.updated_at == NOW
    table = MirrorSyncState.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(table.c.cursor_ciphertext)).scalar_one()
    assert "cursor=abc" not in stored


def test_a_stale_state_writes_nothing(engine, cipher) -> None:
    first = mirror.load_state(engine, cipher, "transaction")
    saved = _commit(engine, cipher, first, [_row(1, 100)], cursor="a")
    with pytest.raises(SyncStateConflictError):  # another writer already saved version 1
        _commit(engine, cipher, first, [_row(9, 900)], cursor="b")
    _commit(engine, cipher, saved, [_row(2, 200)], cursor="c")
    with pytest.raises(SyncStateConflictError):
        _commit(engine, cipher, saved, [_row(9, 900)], cursor="d")
    assert sorted(r["id"] for r in mirror.load_rows(engine, cipher, "transaction")) == [1, 2]
    assert mirror.load_state(engine, cipher, "transaction").cursor == "c"


def test_unknown_kinds_are_refused(engine, cipher) -> None:
    with pytest.raises(ValueError, match="unknown mirror kind"):
        mirror.load_rows(engine, cipher, "patients")


def test_compaction_keeps_the_loaded_data_in_batches_of_at_most_1000(engine, cipher) -> None:
    state = mirror.load_state(engine, cipher, "patient_payment")
    for start in range(0, 2400, 600):  # four pages, the last two re-versioning earlier ids
        base = start if start < 1200 else start - 1200
        rows = [_row(i, start + i) for i in range(base, base + 600)]
        state = _commit(engine, cipher, state, rows, cursor=str(start))
    state = _commit(engine, cipher, state, [], deleted=[0, 1, 2], cursor=None)
    before = mirror.load_rows(engine, cipher, "patient_payment")
    assert len(before) == 1197

    written = mirror.compact(engine, cipher, "patient_payment", now=NOW + timedelta(hours=1))

    after = mirror.load_rows(engine, cipher, "patient_payment")
    assert sorted(after, key=lambda r: r["id"]) == sorted(before, key=lambda r: r["id"])
    infos = mirror.batch_infos(engine, "patient_payment")
    assert written == len(infos) == 2
    assert [b.record_count for b in infos] == [COMPACT_BATCH_ROWS, 197]
    assert all(b.tombstone_count == 0 for b in infos)
    assert [b.seq for b in infos] == [6, 7]  # sequence numbers only ever grow
    # The state (and its version) is untouched: a sync holding it can go on committing.
    _commit(engine, cipher, state, [_row(5000, 1)], cursor="next")
    assert len(mirror.load_rows(engine, cipher, "patient_payment")) == 1198
    assert mirror.compact(engine, cipher, "line_item", now=NOW) == 0


def test_rotate_keys_re_encrypts_mirror_batches_and_cursors(engine) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    state = mirror.load_state(engine, Cipher([old]), "line_item")
    _commit(engine, Cipher([old]), state, [_row(1, 100)], cursor="secret-cursor")

    rotated = rotate_keys(engine, Cipher([new, old]))

    assert rotated == 2  # the batch payload and the state's cursor
    only_new = Cipher([new])
    assert mirror.load_rows(engine, only_new, "line_item")[0]["billed"] == 100
    assert mirror.load_state(engine, only_new, "line_item").cursor == "secret-cursor"
    with pytest.raises(DecryptionError):
        mirror.load_rows(engine, Cipher([old]), "line_item")
    encrypted = {
        c.name
        for table in (MirrorBatch.__table__, MirrorSyncState.__table__)  # type: ignore[attr-defined]
        for c in table.columns
        if c.info.get("encrypted")
    }
    assert encrypted == {"payload", "cursor_ciphertext"}


def test_the_database_file_and_wal_hold_no_row_value_in_clear(sqlite_engine, cipher) -> None:
    marker = "ZZTOP-CODE-4711"
    state = mirror.load_state(sqlite_engine, cipher, "line_item")
    rows = [_row(i, 123456789, code=marker) for i in range(50)]
    _commit(sqlite_engine, cipher, state, rows, cursor="cursor-MARKER-55")
    database = Path(sqlite_engine.url.database or "")
    raw = b"".join(p.read_bytes() for p in (database, Path(f"{database}-wal")) if p.exists())
    assert len(raw) > 0
    for needle in (marker, "123456789", '"billed"', "cursor-MARKER-55"):
        assert needle.encode() not in raw
    assert mirror.load_rows(sqlite_engine, cipher, "line_item")[0]["code"] == marker


def _as_columns(rows):
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: [row.get(name) for row in rows] for name in names}


def _insert_v1_batch(engine, cipher, kind, seq, rows, deleted=()) -> None:
    """A batch as written before payload version 2: a JSON list of row objects."""
    text = json.dumps({"v": 1, "rows": rows, "deleted": list(deleted)}).encode()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(MirrorBatch.__table__).values(  # type: ignore[attr-defined]
                kind=kind,
                seq=seq,
                record_count=len(rows),
                tombstone_count=len(deleted),
                created_at=NOW,
                payload=cipher.encrypt_bytes(zlib.compress(text)),
            )
        )


def test_columns_are_the_loaded_rows_in_the_same_order(engine, cipher) -> None:
    # Old row-object batches, then column batches: replaced ids keep their first place, a
    # tombstone drops an id (after its own batch's rows), and a re-added id goes last.
    _insert_v1_batch(engine, cipher, "line_item", 1, [_row(1, 100), _row(2, 200), _row(3, 300)])
    _insert_v1_batch(engine, cipher, "line_item", 2, [_row(4, 400)], deleted=[2, 4])
    state = mirror.load_state(engine, cipher, "line_item")
    state = _commit(engine, cipher, state, [_row(1, 150, day=4), _row(2, 250)], cursor="c")
    _commit(engine, cipher, state, [_row(5, 500)], deleted=[3], cursor=None)

    rows = mirror.load_rows(engine, cipher, "line_item")
    assert [(r["id"], r["billed"]) for r in rows] == [(1, 150), (2, 250), (5, 500)]
    assert mirror.load_columns(engine, cipher, "line_item") == _as_columns(rows)
    assert mirror.load_columns(engine, cipher, "appointment") == {}


def test_pages_are_stored_as_columns_unless_their_rows_differ_in_fields(engine, cipher) -> None:
    from storage.mirror import _batch_table, _open  # test-only peek at the payloads

    state = mirror.load_state(engine, cipher, "transaction")
    state = _commit(engine, cipher, state, [_row(1, 100), _row(2, 200)], cursor="a")
    uneven = [_row(3, 300), {"id": 4, "billed": None}]
    _commit(engine, cipher, state, uneven, deleted=[1], cursor=None)
    with engine.connect() as conn:
        payloads = conn.execute(sa.select(_batch_table().c.payload)).scalars().all()
    assert [_open(cipher, p)["v"] for p in payloads] == [2, 1]
    rows = mirror.load_rows(engine, cipher, "transaction")
    assert rows == [_row(2, 200), *uneven]  # the row dicts round-trip exactly
    columns = mirror.load_columns(engine, cipher, "transaction")
    assert columns == _as_columns(rows)
    assert columns["code"] == ["99213", "99213", None]
