"""In-memory, thread-safe record store behind the sandbox REST API.

Holds one synthetic clinic as ``{resource: {id: record}}`` in DrChrono JSON. Every record also
carries an internal *stamp* (practice-local naive datetime with microseconds) that moves forward
on every write and is strictly increasing across the whole store, so ``since=<t>`` finds exactly
what changed at or after ``t``. Deletions leave tombstones (id + stamp) for deletion feeds.

Records are never mutated in place: a write stores a new dict. Readers may therefore hold a
record taken from ``scan`` without a lock; they must copy before changing it.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from ehr.sandbox.clinic import Clinic

Key = int | str
Record = dict[str, Any]

# Timestamp formats DrChrono serialises: seconds, no zone (practice-local time).
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
# Fields whose value tells when a generated record last changed, in order of preference.
_STAMP_FIELDS = ("updated_at", "created_at", "timestamp", "posted_date")
# The smallest step between two stamps: keeps them strictly increasing under a frozen clock.
_STAMP_STEP = dt.timedelta(microseconds=1)


def parse_local(value: object) -> dt.datetime | None:
    """Parse a DrChrono date or naive timestamp string; None when absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=None)


def format_timestamp(moment: dt.datetime) -> str:
    """Format a stamp the way DrChrono prints timestamps (``2021-02-14T13:40:39``)."""
    return moment.strftime(TIMESTAMP_FORMAT)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A deleted record: which one and when (store stamp)."""

    resource: str
    key: Key
    deleted: dt.datetime


class Store:
    """Thread-safe tables of DrChrono records with ids, write stamps and tombstones.

    ``clock`` returns epoch seconds (``time.time`` by default); the store turns it into the
    practice's local time. Load a clinic with ``load``; ``lock`` lets a caller validate and
    write atomically (it is re-entrant).
    """

    def __init__(self, clinic: Clinic, *, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self._tables: dict[str, dict[Key, Record]] = {}
        self._stamps: dict[str, dict[Key, dt.datetime]] = {}
        self._tombstones: list[Tombstone] = []
        self._next_ids: dict[str, int] = {}
        self._last_stamp = dt.datetime.min
        self.practice_group = 0
        self.timezone = ZoneInfo("UTC")
        self.user: Record = {}
        self.generation = 0
        self.load(clinic)

    # --- loading -------------------------------------------------------------------------------

    def load(self, clinic: Clinic) -> None:
        """Replace every table with a deep copy of ``clinic`` (used at start and by reset-data)."""
        tables = copy.deepcopy(clinic.tables)
        with self.lock:
            self.practice_group = clinic.practice_group
            self.timezone = ZoneInfo(clinic.timezone)
            self.user = copy.deepcopy(clinic.user)
            self._tables = {name: dict(rows) for name, rows in tables.items()}
            self._tombstones = []
            newest = dt.datetime.min
            per_record: dict[str, dict[Key, dt.datetime | None]] = {}
            for name, rows in self._tables.items():
                per_record[name] = {key: _record_time(rec) for key, rec in rows.items()}
                known = [moment for moment in per_record[name].values() if moment is not None]
                if known:
                    newest = max(newest, max(known))
            # Records without any time of their own count as written when the clinic was made.
            baseline = newest if newest != dt.datetime.min else self._now()
            self._stamps = {
                name: {key: moment or baseline for key, moment in rows.items()}
                for name, rows in per_record.items()
            }
            # Later writes must sort after everything generated, even if the wall clock lags
            # the generated "today" (a fixed future date in tests).
            self._last_stamp = baseline.replace(microsecond=0) + dt.timedelta(seconds=1)
            self._next_ids = {name: _next_int_id(rows) for name, rows in self._tables.items()}
            self.generation += 1

    # --- time ----------------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), self.timezone).replace(tzinfo=None)

    def now_local(self) -> dt.datetime:
        """The practice-local wall-clock time now (naive), from the injected clock."""
        return self._now()

    def _next_stamp(self) -> dt.datetime:
        stamp = max(self._now(), self._last_stamp + _STAMP_STEP)
        self._last_stamp = stamp
        return stamp

    # --- reads ---------------------------------------------------------------------------------

    def resources(self) -> list[str]:
        """Names of the loaded tables."""
        with self.lock:
            return sorted(self._tables)

    def get(self, resource: str, key: Key) -> Record | None:
        """The record (a deep copy) or None when the table or id is unknown."""
        with self.lock:
            record = self._tables.get(resource, {}).get(key)
            return copy.deepcopy(record) if record is not None else None

    def peek(self, resource: str, key: Key | None) -> Record | None:
        """The stored record itself, without copying; callers must not mutate it."""
        if key is None:
            return None
        with self.lock:
            return self._tables.get(resource, {}).get(key)

    def stamp(self, resource: str, key: Key) -> dt.datetime | None:
        """The internal last-write stamp of one record."""
        with self.lock:
            return self._stamps.get(resource, {}).get(key)

    def scan(self, resource: str) -> list[tuple[Key, Record, dt.datetime]]:
        """Every ``(id, record, stamp)`` of a table: a snapshot list of uncopied records."""
        with self.lock:
            stamps = self._stamps.get(resource, {})
            return [(key, rec, stamps[key]) for key, rec in self._tables.get(resource, {}).items()]

    def count(self, resource: str) -> int:
        """How many records a table holds."""
        with self.lock:
            return len(self._tables.get(resource, {}))

    def tombstones(self, resource: str | None = None) -> list[Tombstone]:
        """Deletions so far, oldest first, optionally of one resource."""
        with self.lock:
            return [t for t in self._tombstones if resource is None or t.resource == resource]

    # --- writes --------------------------------------------------------------------------------

    def allocate_id(self, resource: str) -> int:
        """Reserve the next integer id of a table."""
        with self.lock:
            next_id = self._next_ids.get(resource, 1)
            self._next_ids[resource] = next_id + 1
            return next_id

    def put(self, resource: str, key: Key, record: Record, *, created: bool = False) -> dt.datetime:
        """Store ``record`` (new or replacing) under ``key`` and return its new stamp.

        When the record has an ``updated_at`` field it is set to the stamp, as DrChrono's
        ``updated_at`` moves on every write; with ``created`` so is ``created_at``.
        """
        with self.lock:
            stamp = self._next_stamp()
            stored = dict(record)
            if "updated_at" in stored:
                stored["updated_at"] = format_timestamp(stamp)
            if created and "created_at" in stored:
                stored["created_at"] = format_timestamp(stamp)
            self._tables.setdefault(resource, {})[key] = stored
            self._stamps.setdefault(resource, {})[key] = stamp
            if isinstance(key, int):
                self._next_ids[resource] = max(self._next_ids.get(resource, 1), key + 1)
            return stamp

    def delete(self, resource: str, key: Key) -> bool:
        """Remove a record, leaving a tombstone; False when it did not exist."""
        with self.lock:
            if self._tables.get(resource, {}).pop(key, None) is None:
                return False
            self._stamps[resource].pop(key, None)
            self._tombstones.append(Tombstone(resource, key, self._next_stamp()))
            return True

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Hold the store lock for a validate-then-write sequence."""
        with self.lock:
            yield


def _record_time(record: Record) -> dt.datetime | None:
    for name in _STAMP_FIELDS:
        moment = parse_local(record.get(name))
        if moment is not None:
            return moment
    return None


def _next_int_id(rows: dict[Key, Record]) -> int:
    numeric = [int(key) for key in rows if isinstance(key, int) or str(key).isdigit()]
    return max(numeric) + 1 if numeric else 1
