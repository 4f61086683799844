"""Reading the audit log: filtered, sorted pages for the Settings viewer, and CSV export.

Both are read-only. Time ranges are half-open, ``[since, until)``, in aware datetimes. Sorting on
text columns uses byte order on both databases (``COLLATE "C"`` on PostgreSQL), NULLs first when
ascending, and ``seq`` breaks ties, so pages are stable and identical across backends.

The CSV carries every column, the MACs included: they are not secret (HMAC outputs reveal
nothing about the key) and let an auditor holding ``k_audit`` re-check an exported slice. Text
cells that a spreadsheet would run as a formula (leading ``=``, ``+``, ``-``, ``@``, tab, CR) get
a leading ``'`` (OWASP CSV injection advice). Running or exporting a report is itself audited by
the caller (AU-05).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from sqlalchemy import ColumnElement, String, and_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from storage.audit import (
    AUDIT_TABLE,
    MAC_FIELDS,
    AuditAction,
    AuditEvent,
    AuditOutcome,
    format_ts,
)

# Columns the report may sort by; anything else is refused (no SQL from user input).
SORTABLE_COLUMNS: Final = tuple(name for name in MAC_FIELDS if name != "details")
# Default and ceiling of one report page: a screenful for people, bounded for the server.
QUERY_DEFAULT_LIMIT: Final = 500
QUERY_MAX_LIMIT: Final = 10_000
# Rows per round trip while exporting, so a large export never sits in memory.
EXPORT_CHUNK_ROWS: Final = 2000
EXPORT_COLUMNS: Final = (*SORTABLE_COLUMNS, "details", "prev_mac", "row_mac")
_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


def _filters(
    *,
    since: datetime | None,
    until: datetime | None,
    user: int | str | None = None,
    action: AuditAction | str | None = None,
    outcome: AuditOutcome | str | None = None,
    resource_id: str | int | None = None,
    patient_id: str | int | None = None,
    break_glass: bool | None = None,
) -> list[ColumnElement[bool]]:
    c = AUDIT_TABLE.c
    clauses: list[ColumnElement[bool]] = []
    if _aware("since", since) is not None:
        clauses.append(c.ts_utc >= since)
    if _aware("until", until) is not None:
        clauses.append(c.ts_utc < until)
    if isinstance(user, int) and not isinstance(user, bool):
        clauses.append(c.user_id == user)
    elif isinstance(user, str):
        clauses.append(c.username == user)
    if action is not None:
        clauses.append(c.action == AuditAction(action).value)
    if outcome is not None:
        clauses.append(c.outcome == AuditOutcome(outcome).value)
    if resource_id is not None:
        clauses.append(c.resource_id == str(resource_id))
    if patient_id is not None:
        clauses.append(c.patient_id == str(patient_id))
    if break_glass is not None:
        clauses.append(c.break_glass == break_glass)
    return clauses


def query(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    user: int | str | None = None,
    action: AuditAction | str | None = None,
    outcome: AuditOutcome | str | None = None,
    resource_id: str | int | None = None,
    patient_id: str | int | None = None,
    break_glass: bool | None = None,
    order_by: str = "seq",
    descending: bool = False,
    limit: int = QUERY_DEFAULT_LIMIT,
    offset: int = 0,
) -> list[AuditEvent]:
    """Audit rows in ``[since, until)`` matching every given filter, sorted and paged.

    ``user`` is a user id (int) or an app username (str). ``order_by`` must be one of
    ``SORTABLE_COLUMNS``; ``limit`` is capped at ``QUERY_MAX_LIMIT``. Raises ``ValueError`` for
    naive datetimes, an unknown column or action/outcome, or a negative limit/offset.
    """
    if order_by not in SORTABLE_COLUMNS:
        raise ValueError(f"cannot sort the audit log by {order_by!r}")
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
    clauses = _filters(
        since=since,
        until=until,
        user=user,
        action=action,
        outcome=outcome,
        resource_id=resource_id,
        patient_id=patient_id,
        break_glass=break_glass,
    )
    column: Any = AUDIT_TABLE.c[order_by]
    if isinstance(column.type, String) and engine.dialect.name == "postgresql":
        column = column.collate("C")
    ordering = column.desc().nulls_last() if descending else column.asc().nulls_first()
    tie = col(AuditEvent.seq).desc() if descending else col(AuditEvent.seq).asc()
    statement = (
        sm_select(AuditEvent)
        .where(*clauses)
        .order_by(ordering, tie)
        .limit(min(limit, QUERY_MAX_LIMIT))
        .offset(offset)
    )
    with Session(engine) as session:
        return list(session.exec(statement).all())


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def _rows(engine: Engine, clauses: list[ColumnElement[bool]]) -> Iterator[dict[str, Any]]:
    table = AUDIT_TABLE
    last = 0
    with engine.connect() as conn:
        while True:
            chunk = (
                conn.execute(
                    select(table)
                    .where(and_(table.c.seq > last, *clauses))
                    .order_by(table.c.seq)
                    .limit(EXPORT_CHUNK_ROWS)
                )
                .mappings()
                .all()
            )
            if not chunk:
                return
            for row in chunk:
                yield dict(row)
            last = chunk[-1]["seq"]


def _write(engine: Engine, stream: TextIO, clauses: list[ColumnElement[bool]]) -> int:
    writer = csv.writer(stream)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in _rows(engine, clauses):
        writer.writerow([_cell(row[name]) for name in EXPORT_COLUMNS])
        count += 1
    return count


def export_csv(
    engine: Engine,
    path_or_stream: str | os.PathLike[str] | TextIO,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Write the rows in ``[since, until)`` as CSV in seq order; return how many were written.

    A path is created (or truncated) with mode 0600, as the file holds user and patient ids; a
    text stream is written as is. Rows are streamed in chunks, so the log size does not matter.
    """
    clauses = _filters(since=since, until=until)
    if isinstance(path_or_stream, str | os.PathLike):
        path = Path(path_or_stream)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            return _write(engine, handle, clauses)
    return _write(engine, path_or_stream, clauses)
