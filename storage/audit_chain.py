"""Checking the audit chain, and the anchors that expose a cut-off tail.

``verify`` walks ``audit_event`` in ``seq`` order, a chunk at a time (memory stays bounded for
millions of rows), and reports every problem it finds up to a cap, naming the first:

- ``edited``: a row's MAC does not match its content (any column, seq and prev_mac included);
- ``reordered``: the row is authentic but sits at another seq than the one it was written with
  (rows renumbered, for instance to hide a deletion);
- ``missing``: a seq gap, or a row that does not link to its intact predecessor;
- ``truncated``: the head is behind the anchor, or the row at the anchor's seq has another MAC.

A row made invalid by its predecessor's problem is not reported again, so an edit of seq 57
names exactly seq 57. Without an anchor, deleting the newest rows is invisible (the remaining
chain is valid), which is why anchors exist.

Where anchors live: ``<DATA_DIR>/audit-anchors.jsonl`` (``default_anchor_path``), one JSON line
per anchor, file mode 0600, appended and never rewritten. The app writes one after every
``ANCHOR_EVERY_APPENDS`` appends (``record_anchor_if_due``), after each verify and at shutdown;
operations copy the file off the host daily (WORM bucket or e-mailed digest), because an
attacker holding the host can also delete the file. ``verify(..., anchor=read_latest_anchor(p))``
then checks the database against it.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import select
from sqlalchemy.engine import Engine

from storage.audit import (
    AUDIT_TABLE,
    GENESIS_MAC,
    AuditEvent,
    compute_row_mac,
    require_key,
)

ProblemKind = Literal["edited", "missing", "truncated", "reordered"]

# Rows fetched per round trip while verifying: big enough to amortise the query, small enough
# that a million-row log never sits in memory.
VERIFY_CHUNK_ROWS = 5000
# Problems kept in a VerifyResult; the count goes on, the list stops (bounded memory).
MAX_REPORTED_PROBLEMS: Final = 100
# How far from its position a moved row is searched for: renumbering that hides up to this many
# deleted rows is named "reordered"; larger shifts are still reported, as "edited".
REORDER_SEARCH_WINDOW: Final = 16
# Policy: write an anchor after this many appends (plus on verify and at shutdown), so at most
# this many newest rows can vanish unnoticed between anchors.
ANCHOR_EVERY_APPENDS: Final = 100
ANCHOR_FILE_NAME: Final = "audit-anchors.jsonl"
_HEX_MAC = re.compile(r"^[0-9a-f]{64}$")


class AuditChainError(RuntimeError):
    """The chain or an anchor file cannot be trusted (raised where no result object fits)."""


@dataclass(frozen=True)
class Anchor:
    """The chain head at some moment, kept outside the database: ``seq`` 0 means empty."""

    seq: int
    row_mac: str

    def __post_init__(self) -> None:
        """Reject values that cannot be an anchor."""
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise ValueError("anchor seq must be a non-negative int")
        if not isinstance(self.row_mac, str) or not _HEX_MAC.match(self.row_mac):
            raise ValueError("anchor row_mac must be 64 lowercase hex digits")


@dataclass(frozen=True)
class ChainProblem:
    """One finding of ``verify``: the seq it concerns, its kind and a message with ids only."""

    seq: int
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``verify``: ``ok`` only when every row, link and the anchor check out."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    kind: ProblemKind | None
    message: str
    problems: tuple[ChainProblem, ...] = ()
    problem_count: int = 0
    head_seq: int = 0


class _Walker:
    """Consumes rows in seq order and collects problems; holds O(1) state."""

    def __init__(self, key: bytes, anchor: Anchor | None) -> None:
        self.key = key
        self.anchor = anchor
        self.expected = 1
        self.prev_mac = GENESIS_MAC
        self.prev_ok = True
        self.checked = 0
        self.head = 0
        self.problems: list[ChainProblem] = []
        self.count = 0

    def report(self, seq: int, kind: ProblemKind, message: str) -> None:
        self.count += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(ChainProblem(seq, kind, message))

    def _moved_from(self, row: dict[str, Any]) -> int | None:
        """The seq this row verifies under, if it is not its own (a moved row)."""
        seq: int = row["seq"]
        for delta in range(1, REORDER_SEARCH_WINDOW + 1):
            for candidate in (seq + delta, seq - delta):
                if candidate >= 1:
                    mac = compute_row_mac(self.key, {**row, "seq": candidate}, row["prev_mac"])
                    if hmac.compare_digest(mac, row["row_mac"]):
                        return candidate
        return None

    def feed(self, row: dict[str, Any]) -> None:
        seq: int = row["seq"]
        self.checked += 1
        gap = seq != self.expected
        if gap:
            self.report(
                self.expected,
                "missing",
                f"gap after seq {self.expected - 1}: seq {self.expected}..{seq - 1} missing",
            )
        mac = compute_row_mac(self.key, row, row["prev_mac"])
        row_ok = hmac.compare_digest(mac, row["row_mac"])
        if not row_ok:
            # Classifying costs extra MACs; past the report cap the count is all that is kept.
            moved = self._moved_from(row) if len(self.problems) < MAX_REPORTED_PROBLEMS else None
            if moved is None:
                self.report(seq, "edited", f"seq {seq} does not match its MAC (row edited)")
            else:
                self.report(
                    seq,
                    "reordered",
                    f"seq {seq} holds the row written as seq {moved} (rows renumbered or moved)",
                )
        elif not gap and self.prev_ok and not hmac.compare_digest(row["prev_mac"], self.prev_mac):
            self.report(
                seq,
                "missing",
                f"seq {seq} does not link to seq {seq - 1}: a row was removed or replaced",
            )
        anchor = self.anchor
        if (
            anchor is not None
            and seq == anchor.seq
            and not hmac.compare_digest(row["row_mac"], anchor.row_mac)
        ):
            self.report(
                seq,
                "truncated",
                f"seq {seq} differs from the anchor: the chain was cut and rewritten",
            )
        self.prev_ok = row_ok and not gap
        self.prev_mac = row["row_mac"]
        self.expected = seq + 1
        self.head = seq

    def finish(self) -> VerifyResult:
        if self.anchor is not None and self.head < self.anchor.seq:
            self.report(
                self.head + 1,
                "truncated",
                f"head at seq {self.head} is behind the anchor at seq {self.anchor.seq}: "
                f"seq {self.head + 1}..{self.anchor.seq} missing",
            )
        if not self.problems:
            against = f", consistent with anchor seq {self.anchor.seq}" if self.anchor else ""
            return VerifyResult(
                ok=True,
                checked=self.checked,
                first_bad_seq=None,
                kind=None,
                message=f"audit chain intact: {self.checked} rows, head seq {self.head}{against}",
                head_seq=self.head,
            )
        first = self.problems[0]
        return VerifyResult(
            ok=False,
            checked=self.checked,
            first_bad_seq=first.seq,
            kind=first.kind,
            message=f"audit chain broken ({self.count} problem(s)); first: {first.message}",
            problems=tuple(self.problems),
            problem_count=self.count,
            head_seq=self.head,
        )


def verify(engine: Engine, key: bytes, *, anchor: Anchor | None = None) -> VerifyResult:
    """Walk the whole chain and report whether it is intact (see the module docstring).

    ``anchor`` (normally ``read_latest_anchor``) adds the truncation check. Raises
    ``AuditKeyError`` when the key is missing or short: without the key nothing can be
    checked, and an unchecked log is never reported clean.
    """
    require_key(key)
    walker = _Walker(key, anchor)
    table = AUDIT_TABLE
    last = 0
    with engine.connect() as conn:
        while True:
            # Keyset paging on the primary key: each chunk is an index range scan.
            chunk = (
                conn.execute(
                    select(table)
                    .where(table.c.seq > last)
                    .order_by(table.c.seq)
                    .limit(VERIFY_CHUNK_ROWS)
                )
                .mappings()
                .all()
            )
            if not chunk:
                break
            for row in chunk:
                walker.feed(dict(row))
            last = chunk[-1]["seq"]
    return walker.finish()


def anchor(engine: Engine, key: bytes) -> Anchor:
    """The current head as an ``Anchor`` (seq 0 and the genesis MAC for an empty log).

    The head row's own MAC is checked first, so a forged head is never anchored; raises
    ``AuditChainError`` if it does not verify and ``AuditKeyError`` for an unusable key.
    """
    require_key(key)
    table = AUDIT_TABLE
    with engine.connect() as conn:
        found = conn.execute(select(table).order_by(table.c.seq.desc()).limit(1)).mappings().first()
    if found is None:
        return Anchor(0, GENESIS_MAC)
    head: dict[str, Any] = dict(found)
    if not hmac.compare_digest(compute_row_mac(key, head, head["prev_mac"]), head["row_mac"]):
        raise AuditChainError(f"the head row (seq {head['seq']}) does not match its MAC")
    return Anchor(head["seq"], head["row_mac"])


def default_anchor_path(data_dir: Path) -> Path:
    """Where the app keeps its anchor file."""
    return data_dir / ANCHOR_FILE_NAME


def write_anchor(path: Path, value: Anchor) -> None:
    """Append ``value`` as one JSON line to ``path`` (created mode 0600, synced to disk)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = json.dumps(
        {
            "seq": value.seq,
            "row_mac": value.row_mac,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        sort_keys=True,
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also tightens a file created by hand
        os.write(fd, (line + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_latest_anchor(path: Path) -> Anchor | None:
    """The anchor with the highest seq in ``path``, or ``None`` if the file does not exist.

    A malformed line, or two different MACs for that highest seq, raises ``AuditChainError``:
    a damaged anchor file must be looked at, not skipped.
    """
    if not path.exists():
        return None
    latest: Anchor | None = None
    with path.open(encoding="ascii") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                current = Anchor(raw["seq"], raw["row_mac"])
            except (ValueError, KeyError, TypeError):
                raise AuditChainError(f"anchor file line {number} is malformed") from None
            if latest is None or current.seq > latest.seq:
                latest = current
            elif current.seq == latest.seq and current.row_mac != latest.row_mac:
                raise AuditChainError(f"anchor file holds two MACs for seq {current.seq}")
    return latest


def record_anchor_if_due(path: Path, event: AuditEvent) -> bool:
    """After an append: write ``event`` as an anchor every ``ANCHOR_EVERY_APPENDS`` rows."""
    if event.seq % ANCHOR_EVERY_APPENDS:
        return False
    write_anchor(path, Anchor(event.seq, event.row_mac))
    return True
