"""The encrypted local mirror of analytics records (DESIGN.md §4 "Data volume vs the rate limit").

Billing and scheduling analytics read from here, not from DrChrono, whose 500 calls an hour
cannot re-download a year per page view. The mirror is **append-only encrypted batches**: each
synced upstream page becomes one ``mirror_batch`` row whose ``payload`` is one Fernet token (via
``Cipher``) of the zlib-compressed JSON of that page's rows, plus the ids deleted upstream
(tombstones). Payload version 2 stores the rows column by column (one list per field) when they
all have the same fields: a third of the JSON of row objects, so decrypting, decompressing and
parsing a year of line items costs about half as much; version 1 (a list of row objects, still
written for rows with differing fields) is read as before, so old batches need no migration. Only non-PHI metadata sits beside it in clear: kind, sequence number, counts,
the oldest and newest ``updated_at`` and when the batch was written. No record value is ever
stored unencrypted, so neither the SQLite file and its WAL nor a PostgreSQL dump holds a patient
id, code or amount in clear; rows are already stripped of names and free text by
``ehr.analytics.records`` before they get here.

Loading decrypts every batch of a kind in sequence order and keeps the latest version of each
id in one dict pass: a later batch wins, a tombstone drops the id (within one batch, tombstones
apply after its rows). ``load_columns`` does the same over ids only and returns the live rows
as columns, so analytics frames are built without a Python dict per row. ``compact`` rewrites a kind as fresh batches of at most
``COMPACT_BATCH_ROWS`` live rows in one transaction.

``mirror_sync_state`` holds one row per kind: where its sync stands (phase, cursor, backfill
window, incremental ``since``), counters and the last error code. ``commit_page`` writes a batch
and the new state in ONE transaction, so a page is either stored with the cursor past it or not
at all (SECURITY.md RL-04), and a restarted sync resumes exactly after the last stored page.
The state carries a ``version``: a writer holding a stale state (another replica synced the same
kind meanwhile) gets ``SyncStateConflictError`` and nothing is written. The cursor is encrypted
too (it is an upstream URL with query parameters). Both ciphertext columns carry the
``ENCRYPTED`` marker, so ``storage.tokens.rotate_keys`` re-encrypts them with the tokens.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from storage.crypto import Cipher
from storage.tokens import ENCRYPTED, begin_write_lock, checkpoint_wal
from storage.types import UTCDateTime

__all__ = [
    "COMPACT_BATCH_ROWS",
    "KINDS",
    "PHASE_BACKFILL",
    "PHASE_INCREMENTAL",
    "BatchInfo",
    "MirrorBatch",
    "MirrorSyncState",
    "Row",
    "SyncState",
    "SyncStateConflictError",
    "batch_infos",
    "commit_page",
    "compact",
    "load_columns",
    "load_rows",
    "load_state",
]

Row = dict[str, Any]
RecordId = int | str
# Live rows of a kind as one list per field (field order of first appearance; a field a row
# lacks reads None).
Columns = dict[str, list[Any]]

# The record kinds the mirror holds (one sync state and one batch sequence each).
KINDS: Final = ("line_item", "transaction", "patient_payment", "appointment")
PHASE_BACKFILL: Final = "backfill"
PHASE_INCREMENTAL: Final = "incremental"
# Rows per batch written by ``compact``: the batch list endpoints' page size, and small enough
# that one decrypted batch stays a few hundred kilobytes.
COMPACT_BATCH_ROWS: Final = 1000
# Versions of the payload layout inside the ciphertext: 1 = a list of row objects, 2 = columns
# (see the module docstring). Both are read; 2 is written whenever the rows allow it.
_ROWS_VERSION: Final = 1
_COLUMNS_VERSION: Final = 2
# zlib level: JSON rows of ids, codes and cents compress about 5x; higher levels gain little.
_ZLIB_LEVEL: Final = 6
_ERROR_CODE_CHARS: Final = 64


class MirrorBatch(SQLModel, table=True):
    """One encrypted page of mirrored records (or a compacted chunk) of one kind."""

    __tablename__ = "mirror_batch"
    __table_args__ = (sa.UniqueConstraint("kind", "seq", name="uq_mirror_batch_kind_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    seq: int
    record_count: int
    tombstone_count: int = Field(default=0)
    min_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    max_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(sa_type=UTCDateTime())
    payload: bytes = Field(sa_type=sa.LargeBinary, sa_column_kwargs={"info": ENCRYPTED})


class MirrorSyncState(SQLModel, table=True):
    """Where the sync of one kind stands; written with every batch (see the module docstring)."""

    __tablename__ = "mirror_sync_state"

    kind: str = Field(primary_key=True, max_length=32)
    phase: str = Field(default=PHASE_BACKFILL, max_length=16)
    cursor_ciphertext: str | None = Field(
        default=None, sa_type=sa.Text, sa_column_kwargs={"info": ENCRYPTED}
    )
    window_start: date | None = Field(default=None)
    window_end: date | None = Field(default=None)
    backfill_until: date | None = Field(default=None)
    since: date | None = Field(default=None)
    run_since: date | None = Field(default=None)
    next_since: date | None = Field(default=None)
    records: int = Field(default=0)
    requests: int = Field(default=0)
    windows_done: int = Field(default=0)
    backfill_requests: int = Field(default=0)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_error: str | None = Field(default=None, max_length=_ERROR_CODE_CHARS)
    version: int = Field(default=0)


@dataclass(frozen=True)
class SyncState:
    """The decrypted sync state of one kind; ``version`` 0 means "never saved".

    ``window_start``/``window_end`` bound the backfill window in progress (``window_end`` None:
    open-ended, the newest window); ``backfill_until`` is the start of the oldest window.
    ``since`` is the incremental watermark (the next refresh asks for records written on or
    after it); ``run_since``/``next_since`` belong to the walk in progress: the ``since`` it
    asks with, and the watermark adopted when it finishes. ``cursor`` resumes that walk.
    """

    kind: str
    phase: str = PHASE_BACKFILL
    cursor: str | None = dataclasses.field(default=None, repr=False)
    window_start: date | None = None
    window_end: date | None = None
    backfill_until: date | None = None
    since: date | None = None
    run_since: date | None = None
    next_since: date | None = None
    records: int = 0
    requests: int = 0
    windows_done: int = 0
    backfill_requests: int = 0
    started_at: datetime | None = None
    updated_at: datetime | None = None
    last_error: str | None = None
    version: int = 0


@dataclass(frozen=True)
class BatchInfo:
    """A batch's clear metadata (no decryption needed): for status pages and tests."""

    kind: str
    seq: int
    record_count: int
    tombstone_count: int
    min_updated_at: datetime | None
    max_updated_at: datetime | None
    created_at: datetime


class SyncStateConflictError(RuntimeError):
    """The sync state changed since it was read (another sync ran); nothing was written."""


def _batch_table() -> Any:
    return MirrorBatch.__table__  # type: ignore[attr-defined]


def _state_table() -> Any:
    return MirrorSyncState.__table__  # type: ignore[attr-defined]


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown mirror kind: {kind[:32]!r}")
    return kind


# ----------------------------------------------------------------------------- payloads


def _encode(cipher: Cipher, rows: Sequence[Row], deleted: Sequence[RecordId]) -> bytes:
    fields = list(rows[0]) if rows else []
    document: dict[str, Any]
    if all(list(row) == fields for row in rows):
        # Same fields in the same order: columns round-trip to exactly the same row dicts.
        columns = {name: [row[name] for row in rows] for name in fields}
        document = {"v": _COLUMNS_VERSION, "columns": columns, "deleted": list(deleted)}
    else:
        document = {"v": _ROWS_VERSION, "rows": list(rows), "deleted": list(deleted)}
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return cipher.encrypt_bytes(zlib.compress(text.encode("utf-8"), _ZLIB_LEVEL))


def _open(cipher: Cipher, payload: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(zlib.decompress(cipher.decrypt_bytes(bytes(payload))))
    if document.get("v", _ROWS_VERSION) not in (_ROWS_VERSION, _COLUMNS_VERSION):
        raise ValueError("unknown mirror payload version")
    return document


def _decode(cipher: Cipher, payload: bytes) -> tuple[list[Row], list[RecordId]]:
    """Rows and tombstones of one batch; ``DecryptionError`` when no key opens it."""
    document = _open(cipher, payload)
    if "columns" not in document:
        return list(document["rows"]), list(document["deleted"])
    columns: Columns = document["columns"]
    names = list(columns)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return rows, list(document["deleted"])


def _decode_columns(cipher: Cipher, payload: bytes) -> tuple[Columns, int, list[RecordId]]:
    """Columns, row count and tombstones of one batch (row objects turned into columns)."""
    document = _open(cipher, payload)
    if "columns" in document:
        columns: Columns = document["columns"]
        count = len(next(iter(columns.values()), []))
        return columns, count, list(document["deleted"])
    rows: list[Row] = document["rows"]
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {n: [row.get(n) for row in rows] for n in names}, len(rows), list(document["deleted"])


def _updated_bounds(rows: Iterable[Row]) -> tuple[datetime | None, datetime | None]:
    stamps = [
        datetime.fromisoformat(value)
        for value in (row.get("updated_at") for row in rows)
        if isinstance(value, str)
    ]
    return (min(stamps), max(stamps)) if stamps else (None, None)


def _latest(payloads: Iterable[bytes], cipher: Cipher) -> dict[RecordId, Row]:
    """One pass over batches in sequence order: later versions win, tombstones drop ids."""
    latest: dict[RecordId, Row] = {}
    for payload in payloads:
        rows, deleted = _decode(cipher, payload)
        for row in rows:
            latest[row["id"]] = row
        for record_id in deleted:
            latest.pop(record_id, None)
    return latest


# ----------------------------------------------------------------------------- state


def _from_row(row: Any, cipher: Cipher) -> SyncState:
    values = dict(row._mapping)
    ciphertext = values.pop("cursor_ciphertext")
    return SyncState(**values, cursor=None if ciphertext is None else cipher.decrypt(ciphertext))


def load_state(engine: Engine, cipher: Cipher, kind: str) -> SyncState:
    """The saved state of ``kind``, or a fresh one (``version`` 0) if it never synced."""
    table = _state_table()
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.kind == _check_kind(kind))).first()
    return SyncState(kind) if row is None else _from_row(row, cipher)


def _state_values(state: SyncState, cipher: Cipher, now: datetime) -> dict[str, Any]:
    values = dataclasses.asdict(state)
    cursor = values.pop("cursor")
    values["cursor_ciphertext"] = None if cursor is None else cipher.encrypt(cursor)
    values["updated_at"] = now
    if values["last_error"] is not None:
        values["last_error"] = str(values["last_error"])[:_ERROR_CODE_CHARS]
    return values


def _write_state(conn: Connection, cipher: Cipher, state: SyncState, now: datetime) -> SyncState:
    """Save ``state`` if nobody else moved it since it was read; the saved state is returned."""
    table = _state_table()
    values = _state_values(state, cipher, now)
    values["version"] = state.version + 1
    if state.version == 0:
        try:
            conn.execute(sa.insert(table).values(**values))
        except IntegrityError:  # the transaction is rolled back when the connection closes
            raise SyncStateConflictError() from None
    else:
        result = conn.execute(
            sa.update(table)
            .where(table.c.kind == state.kind, table.c.version == state.version)
            .values(**values)
        )
        if result.rowcount != 1:
            raise SyncStateConflictError()
    return dataclasses.replace(state, updated_at=now, version=state.version + 1)


def commit_page(
    engine: Engine,
    cipher: Cipher,
    state: SyncState,
    *,
    rows: Sequence[Row] = (),
    deleted: Sequence[RecordId] = (),
    now: datetime,
) -> SyncState:
    """Append one batch (when there are rows or tombstones) and save ``state``, atomically.

    ``state`` is the new state (cursor past this page) carrying the ``version`` that was read.
    Raises ``SyncStateConflictError`` (writing nothing) when the stored state has moved on.
    Returns the state as saved.
    """
    _check_kind(state.kind)
    batches = _batch_table()
    with engine.connect() as conn:
        begin_write_lock(conn)  # SQLite: one writer; PostgreSQL: the state row lock below
        saved = _write_state(conn, cipher, state, now)
        if rows or deleted:
            last = conn.execute(
                sa.select(sa.func.max(batches.c.seq)).where(batches.c.kind == state.kind)
            ).scalar()
            conn.execute(
                sa.insert(batches).values(
                    **_batch_values(cipher, state.kind, (last or 0) + 1, rows, deleted, now)
                )
            )
        conn.commit()
    return saved


def _batch_values(
    cipher: Cipher,
    kind: str,
    seq: int,
    rows: Sequence[Row],
    deleted: Sequence[RecordId],
    now: datetime,
) -> dict[str, Any]:
    oldest, newest = _updated_bounds(rows)
    return {
        "kind": kind,
        "seq": seq,
        "record_count": len(rows),
        "tombstone_count": len(deleted),
        "min_updated_at": oldest,
        "max_updated_at": newest,
        "created_at": now,
        "payload": _encode(cipher, rows, deleted),
    }


# ----------------------------------------------------------------------------- reading


def load_rows(engine: Engine, cipher: Cipher, kind: str) -> list[Row]:
    """The live rows of ``kind``: latest version of each id, deleted ids left out.

    Raises ``storage.crypto.DecryptionError`` when a batch opens with no configured key.
    """
    table = _batch_table()
    with engine.connect() as conn:
        payloads: Iterable[bytes] = conn.execute(
            sa.select(table.c.payload)
            .where(table.c.kind == _check_kind(kind))
            .order_by(table.c.seq)
        ).scalars()
        return list(_latest(payloads, cipher).values())


def load_columns(engine: Engine, cipher: Cipher, kind: str) -> Columns:
    """The live rows of ``kind`` as columns: the rows ``load_rows`` returns, in the same order.

    Raises ``storage.crypto.DecryptionError`` when a batch opens with no configured key.
    """
    table = _batch_table()
    batches: list[tuple[Columns, int]] = []
    latest: dict[RecordId, int] = {}  # id -> position of its latest version among all rows
    offset = 0
    with engine.connect() as conn:
        payloads: Iterable[bytes] = conn.execute(
            sa.select(table.c.payload)
            .where(table.c.kind == _check_kind(kind))
            .order_by(table.c.seq)
        ).scalars()
        for payload in payloads:
            columns, count, deleted = _decode_columns(cipher, payload)
            # dict.update keeps an id's first place and takes its latest position, exactly like
            # ``_latest``'s assignments; a tombstone pop lets a later version go last.
            latest.update(
                zip(columns.get("id", [None] * count), range(offset, offset + count), strict=True)
            )
            for record_id in deleted:
                latest.pop(record_id, None)
            batches.append((columns, count))
            offset += count
    return _gather(batches, offset, list(latest.values()))


def _gather(batches: list[tuple[Columns, int]], total: int, keep: list[int]) -> Columns:
    """The rows at positions ``keep`` of the batches' rows laid end to end, as columns."""
    names = list(dict.fromkeys(name for columns, _ in batches for name in columns))
    joined: Columns = {name: [] for name in names}
    for columns, count in batches:
        for name in names:
            joined[name].extend(columns.get(name) or [None] * count)
    if keep == list(range(total)):  # nothing replaced or deleted: the usual case
        return joined
    if len(keep) < 2:  # itemgetter returns a bare value, not a tuple, for one position
        return {name: [values[i] for i in keep] for name, values in joined.items()}
    pick = operator.itemgetter(*keep)
    return {name: list(pick(values)) for name, values in joined.items()}


def batch_infos(engine: Engine, kind: str) -> list[BatchInfo]:
    """Clear metadata of every batch of ``kind``, in sequence order (nothing decrypted)."""
    table = _batch_table()
    columns = [table.c[f.name] for f in dataclasses.fields(BatchInfo)]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(*columns).where(table.c.kind == _check_kind(kind)).order_by(table.c.seq)
        ).all()
    return [BatchInfo(**row._mapping) for row in rows]


# ----------------------------------------------------------------------------- compaction


def compact(engine: Engine, cipher: Cipher, kind: str, *, now: datetime) -> int:
    """Rewrite ``kind`` as fresh batches of at most ``COMPACT_BATCH_ROWS`` live rows.

    One transaction: the old batches are deleted and the new ones written together, under the
    write lock (SQLite) or the kind's state row lock (PostgreSQL), so a concurrent sync waits
    and loading never sees a half-compacted kind. Tombstones are dropped with the versions they
    deleted. Returns the number of batches written (0 when the kind holds no batch).
    """
    table, state = _batch_table(), _state_table()
    with engine.connect() as conn:
        begin_write_lock(conn)
        conn.execute(sa.select(state.c.kind).where(state.c.kind == kind).with_for_update())
        found = conn.execute(
            sa.select(table.c.seq, table.c.payload)
            .where(table.c.kind == _check_kind(kind))
            .order_by(table.c.seq)
        ).all()
        if not found:
            return 0
        live = list(_latest((row.payload for row in found), cipher).values())
        last_seq = found[-1].seq
        conn.execute(sa.delete(table).where(table.c.kind == kind, table.c.seq <= last_seq))
        chunks = [live[i : i + COMPACT_BATCH_ROWS] for i in range(0, len(live), COMPACT_BATCH_ROWS)]
        for offset, chunk in enumerate(chunks, start=1):
            conn.execute(
                sa.insert(table).values(
                    **_batch_values(cipher, kind, last_seq + offset, chunk, (), now)
                )
            )
        conn.commit()
    checkpoint_wal(engine)  # freed pages are zeroed (secure_delete); keep the WAL small too
    return len(chunks)
