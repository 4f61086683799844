"""Fills and refreshes the encrypted analytics mirror within a share of the hourly API budget.

DrChrono allows 500 calls an hour and pages are small, so analytics read a local mirror
(``storage.mirror``) that this module keeps: a **backfill** of history, then **incremental**
refreshes with ``since``. Each upstream page becomes one encrypted batch, committed together
with the cursor past it, so:

* a restart resumes after the last stored page and downloads nothing twice;
* a 429, an outage or a data error mid-page (RL-04) stores nothing of that page and leaves the
  cursor where it was; the error's code is kept in the state and the next step retries it;
* the sync spends at most ``share`` of the hourly budget (read through ``budget_probe``, which
  returns the calls used this hour and the limit): when the share is used up it stops cleanly
  and reports "paused until HH:MM" (the next hour), leaving the rest for interactive pages.

**Newest first.** A backend that also implements ``WindowedSource`` (the optional capability
below: records of a kind by service/scheduled date window, as DrChrono's async batch list
endpoints serve them, up to 1,000 a page) is backfilled month by month, newest window first:
the current month onwards (future appointments included), then each earlier month down to
``backfill_months`` back. Recent data is therefore usable after a handful of calls. Records
dated before that horizon enter the mirror only if they change later. A kind the backend
cannot window is backfilled by one walk of its ``iter_*`` listing (all records, upstream order).

**Incremental.** The watermark is the UTC date the previous walk started, less a day (DrChrono's
``since`` is a practice-local date; the margin covers the offset), so changes made during a
backfill are caught and at most about a day of changes is read twice.

**Deletions.** Appointments carry ``is_deleted``; a deleted one becomes a tombstone and drops
out of the loaded data. Line items, transactions and patient payments have no deletion signal in
their listings (DrChrono has a separate ``/api/line_item_deletions`` feed and a
``CASH_PAYMENT_DELETE`` webhook that no backend exposes yet), so a record deleted upstream stays
in the mirror until a full re-sync; this gap is documented, not hidden.
"""

from __future__ import annotations

import calendar
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal, Protocol, runtime_checkable

from sqlalchemy import Engine

from ehr.analytics.records import Row, to_row
from ehr.backend import EHRBackend
from ehr.errors import (
    EHRError,
    NotFoundError,
    RateLimitedError,
    UpstreamDataError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from ehr.models import Appointment, Page
from storage import mirror
from storage.crypto import Cipher
from storage.mirror import KINDS, PHASE_BACKFILL, PHASE_INCREMENTAL, SyncState
from storage.tokens import DEFAULT_CALLS_PER_HOUR, utc_now

__all__ = [
    "DEFAULT_BACKFILL_MONTHS",
    "DEFAULT_REFRESH_INTERVAL",
    "DEFAULT_SHARE",
    "KINDS",
    "BudgetProbe",
    "KindProgress",
    "MirrorSync",
    "StepResult",
    "SyncProgress",
    "WindowedSource",
]

# Share of the hourly budget the background sync may use: the rest stays for interactive pages
# (patient search, today's schedule), which must never find the budget gone.
DEFAULT_SHARE: Final = 0.6
# Backfill horizon in months: a year of KPIs plus the same months a year earlier to compare.
DEFAULT_BACKFILL_MONTHS: Final = 24
# ``since`` is a practice-local date upstream and our clock is UTC (see the module docstring).
SINCE_MARGIN: Final = timedelta(days=1)
# A kind is refreshed at most this often, however often steps run (pages may trigger them).
DEFAULT_REFRESH_INTERVAL: Final = timedelta(minutes=5)
# Requests before a batch job's first page: the POST that starts it and the GET that reads it.
_BATCH_FIRST_PAGE_REQUESTS: Final = 2
_HOUR: Final = timedelta(hours=1)

# Errors after which a step stops cleanly and the next step retries the same page.
_RETRYABLE = (RateLimitedError, UpstreamUnavailableError, UpstreamTimeoutError, UpstreamDataError)

StopReason = Literal["done", "max_requests", "budget", "rate_limited", "error"]
# Calls used in the current hour and the hourly limit (e.g. from ``storage.tokens.budget_state``).
BudgetProbe = Callable[[], tuple[int, int]]


@runtime_checkable
class WindowedSource(Protocol):
    """Optional backend capability: records of a kind by date window, for newest-first backfill.

    ``windowed_kinds`` names the mirror kinds it can window. ``iter_window`` yields one
    ``Page`` per upstream page (line items by service date, appointments by scheduled date,
    ``start``..``end`` inclusive, ``end`` None meaning open-ended), with a resumable
    ``next_cursor`` like the ``iter_*`` methods of ``EHRBackend``. It raises the same errors;
    a cursor it no longer knows (an expired batch job) is ``NotFoundError`` or ``ValueError``,
    after which the window is fetched again from its start.
    """

    windowed_kinds: frozenset[str]

    def iter_window(
        self, kind: str, start: date, end: date | None, *, cursor: str | None = None
    ) -> Iterator[Page[Any]]:
        """Records of ``kind`` dated ``start``..``end``, page by page."""
        ...


@dataclass(frozen=True)
class KindProgress:
    """Sync progress of one kind (no record content)."""

    kind: str
    phase: str
    records: int
    requests: int
    window_start: date | None
    window_end: date | None
    since: date | None
    last_error: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class SyncProgress:
    """The mirror's sync as a progress bar sees it.

    ``phase`` is ``backfill`` while any kind is backfilling. ``estimated_time_left`` is None
    when it cannot be estimated (a kind walked without windows is still backfilling).
    ``fraction`` is the share of backfill windows done (1.0 once incremental).
    """

    phase: str
    records: int
    requests: int
    kinds: tuple[KindProgress, ...]
    estimated_time_left: timedelta | None
    fraction: float


@dataclass(frozen=True)
class StepResult:
    """What one ``MirrorSync.step`` did and why it stopped.

    ``paused_until`` is set when the budget share was used up or upstream rate-limited us.
    ``error`` is the ``EHRError`` code that stopped it, if one did.
    """

    stopped: StopReason
    requests: int
    records: int
    pages: int
    paused_until: datetime | None = None
    error: str | None = None

    @property
    def message(self) -> str:
        """A short status line for the Settings page ("paused until 15:00 UTC")."""
        if self.paused_until is not None:
            return f"paused until {self.paused_until:%H:%M} UTC"
        if self.stopped == "error":
            return f"stopped: {self.error}"
        return "up to date" if self.stopped == "done" else "more to sync"


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _months_between(older: date, newer: date) -> int:
    return (newer.year - older.year) * 12 + newer.month - older.month


def _next_hour(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + _HOUR


@dataclass
class _Counters:
    requests: int = 0
    records: int = 0
    pages: int = 0


class _Stop(Exception):  # control flow inside a step, never escapes it
    def __init__(self, reason: StopReason, paused_until: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.paused_until = paused_until
        self.error: str | None = None


class MirrorSync:
    """Backfills and refreshes the mirror of every kind (see the module docstring).

    ``budget_probe`` returns ``(calls used this hour, hourly limit)``; the sync stops once it
    reaches ``share`` of the smaller of that limit and ``calls_per_hour``. ``clock`` returns an
    aware UTC datetime. Requests are counted from the probe's before/after readings (at least
    one per page), so a probe shared with other sessions over-counts rather than under-counts.
    """

    def __init__(
        self,
        backend: EHRBackend,
        engine: Engine,
        cipher: Cipher,
        budget_probe: BudgetProbe,
        *,
        share: float = DEFAULT_SHARE,
        calls_per_hour: int = DEFAULT_CALLS_PER_HOUR,
        clock: Callable[[], datetime] = utc_now,
        backfill_months: int = DEFAULT_BACKFILL_MONTHS,
        refresh_interval: timedelta = DEFAULT_REFRESH_INTERVAL,
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError("share must be in (0, 1]")
        if calls_per_hour < 1 or backfill_months < 0:
            raise ValueError("calls_per_hour must be >= 1 and backfill_months >= 0")
        self._backend = backend
        self._engine = engine
        self._cipher = cipher
        self._probe = budget_probe
        self._share = share
        self._calls_per_hour = calls_per_hour
        self._clock = clock
        self._backfill_months = backfill_months
        self._refresh_interval = refresh_interval

    # --- public -------------------------------------------------------------------------------

    def step(self, max_requests: int | None = None) -> StepResult:
        """Sync until caught up, ``max_requests`` are used, or the budget share is spent.

        Backfill windows go newest first across kinds; once a kind is backfilled, each step
        refreshes it once with ``since``. Transient upstream failures (429, 5xx, timeouts, bad
        bodies) end the step cleanly with the page not stored; any other ``EHRError`` is
        recorded in the kind's state and re-raised.
        """
        if max_requests is not None and max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        counters = _Counters()
        refreshed: set[str] = set()
        try:
            while (kind := self._next_kind(refreshed)) is not None:
                self._walk(kind, counters, max_requests)
                refreshed.add(kind)  # a kind just backfilled is fresh: no refresh this step
        except _Stop as stop:
            return StepResult(
                stop.reason,
                counters.requests,
                counters.records,
                counters.pages,
                paused_until=stop.paused_until,
                error=stop.error,
            )
        return StepResult("done", counters.requests, counters.records, counters.pages)

    def progress(self) -> SyncProgress:
        """Records, requests, phase and estimated time left, from the stored states."""
        states = [self._state(kind) for kind in KINDS]
        kinds = tuple(
            KindProgress(
                s.kind,
                s.phase if s.version else PHASE_BACKFILL,
                s.records,
                s.requests,
                s.window_start,
                s.window_end,
                s.since,
                s.last_error,
                s.updated_at,
            )
            for s in states
        )
        backfilling = [s for s in states if s.version == 0 or s.phase == PHASE_BACKFILL]
        remaining: list[float | None] = [self._remaining_requests(s) for s in backfilling]
        eta: timedelta | None = timedelta(0)
        if any(r is None for r in remaining):
            eta = None
        else:
            per_hour = self._share * self._calls_per_hour
            eta = timedelta(hours=sum(r or 0.0 for r in remaining) / per_hour)
        total_windows = len(KINDS) * (self._backfill_months + 1)
        left = sum(self._windows_left(s) for s in states)
        return SyncProgress(
            phase=PHASE_BACKFILL if backfilling else PHASE_INCREMENTAL,
            records=sum(s.records for s in states),
            requests=sum(s.requests for s in states),
            kinds=kinds,
            estimated_time_left=eta,
            fraction=max(0.0, 1.0 - left / total_windows) if total_windows else 1.0,
        )

    # --- choosing work ------------------------------------------------------------------------

    def _state(self, kind: str) -> SyncState:
        return mirror.load_state(self._engine, self._cipher, kind)

    def _windowed(self, kind: str) -> bool:
        backend: object = self._backend
        return isinstance(backend, WindowedSource) and kind in backend.windowed_kinds

    def _today(self) -> date:
        return self._clock().astimezone(UTC).date()

    def _next_kind(self, refreshed: set[str]) -> str | None:
        """The kind to work on next: the newest backfill window first, then refreshes."""
        newest_first: list[tuple[date, int, str]] = []
        for order, kind in enumerate(KINDS):
            state = self._state(kind)
            if state.version == 0:
                newest_first.append((date.max, order, kind))
            elif state.phase == PHASE_BACKFILL:
                # A walk without windows ranks with the newest windows: it is one walk.
                start = state.window_start or _month_start(self._today())
                newest_first.append((start, order, kind))
        if newest_first:
            return max(newest_first, key=lambda t: (t[0], -t[1]))[2]
        now = self._clock()
        for kind in KINDS:
            state = self._state(kind)
            walking = state.run_since is not None  # a refresh was interrupted: finish it
            due = state.updated_at is None or now - state.updated_at >= self._refresh_interval
            if kind not in refreshed and (walking or due):
                return kind
        return None

    def _windows_left(self, state: SyncState) -> int:
        if state.version == 0:
            return self._backfill_months + 1
        if state.phase != PHASE_BACKFILL:
            return 0
        if state.window_start is None or state.backfill_until is None:
            return self._backfill_months + 1  # one walk: all of it is left until it ends
        return _months_between(state.backfill_until, state.window_start) + 1

    def _remaining_requests(self, state: SyncState) -> float | None:
        if state.version == 0 and not self._windowed(state.kind):
            return None
        if state.version and (state.window_start is None or state.backfill_until is None):
            return None
        per_window = state.backfill_requests / state.windows_done if state.windows_done else 1.0
        return self._windows_left(state) * per_window

    # --- one walk -----------------------------------------------------------------------------

    def _begin(self, state: SyncState) -> SyncState:
        """The state at the start of a backfill or of an incremental walk."""
        now = self._clock()
        watermark = (now.astimezone(UTC) - SINCE_MARGIN).date()
        if state.version == 0:
            newest = _month_start(self._today())
            windowed = self._windowed(state.kind)
            return dataclasses.replace(
                state,
                phase=PHASE_BACKFILL,
                window_start=newest if windowed else None,
                window_end=None,
                backfill_until=_add_months(newest, -self._backfill_months) if windowed else None,
                next_since=watermark,
                started_at=now,
            )
        if state.phase == PHASE_INCREMENTAL and state.next_since is None:
            return dataclasses.replace(state, run_since=state.since, next_since=watermark)
        return state

    def _pages(self, state: SyncState) -> Iterator[Page[Any]]:
        kind, cursor = state.kind, state.cursor
        if state.phase == PHASE_BACKFILL and state.window_start is not None:
            backend: Any = self._backend
            source: WindowedSource = backend
            return source.iter_window(kind, state.window_start, state.window_end, cursor=cursor)
        since = state.run_since if state.phase == PHASE_INCREMENTAL else None
        if kind == "line_item":
            return self._backend.iter_line_items(since=since, cursor=cursor)
        if kind == "transaction":
            return self._backend.iter_transactions(since=since, cursor=cursor)
        if kind == "patient_payment":
            return self._backend.iter_patient_payments(since=since, cursor=cursor)
        return self._backend.iter_appointments(since=since, cursor=cursor)

    def _walk(self, kind: str, counters: _Counters, max_requests: int | None) -> None:
        """Fetch and store the pages of ``kind``'s current window or walk, to its end."""
        state = self._begin(self._state(kind))
        pages: Iterator[Page[Any]] | None = None
        while True:
            self._check_limits(counters, max_requests, self._page_cost(state))
            before = self._used()
            try:
                if pages is None:
                    pages = self._pages(state)
                page = next(pages, None)
            except (ValueError, NotFoundError):
                if state.cursor is None:
                    raise
                # The cursor is no longer valid upstream (an expired batch job): refetch.
                state, pages = dataclasses.replace(state, cursor=None), None
                continue
            except EHRError as exc:
                self._record_failure(state, exc, self._used() - before, counters)
                raise
            if page is None:
                if state.cursor is not None:  # the page cap ended the iterator: go on
                    pages = None
                    continue
                page = Page(())  # nothing at all: the walk is over all the same
            state = self._store(state, page, self._used() - before, counters)
            if page.next_cursor is None:
                return

    def _store(
        self, state: SyncState, page: Page[Any], spent: int, counters: _Counters
    ) -> SyncState:
        rows, deleted = _rows_of(page.items)
        spent = max(spent, 1 if page.items or page.next_cursor else 0)
        finished = page.next_cursor is None
        advanced = dataclasses.replace(
            state,
            cursor=page.next_cursor,
            records=state.records + len(rows),
            requests=state.requests + spent,
            backfill_requests=state.backfill_requests
            + (spent if state.phase == PHASE_BACKFILL else 0),
            last_error=None,
        )
        if finished:
            advanced = self._after_walk(advanced)
        saved = mirror.commit_page(
            self._engine, self._cipher, advanced, rows=rows, deleted=deleted, now=self._clock()
        )
        counters.requests += spent
        counters.records += len(rows)
        counters.pages += 1
        return saved

    def _after_walk(self, state: SyncState) -> SyncState:
        """The state once the current window or walk is complete."""
        if state.phase == PHASE_INCREMENTAL:
            return dataclasses.replace(
                state, since=state.next_since, run_since=None, next_since=None
            )
        done = dataclasses.replace(state, windows_done=state.windows_done + 1)
        start, until = state.window_start, state.backfill_until
        if start is not None and until is not None and start > until:
            older = _add_months(start, -1)
            return dataclasses.replace(
                done, window_start=older, window_end=start - timedelta(days=1)
            )
        return dataclasses.replace(
            done,
            phase=PHASE_INCREMENTAL,
            window_start=None,
            window_end=None,
            since=state.next_since,
            next_since=None,
        )

    # --- budget and failures ------------------------------------------------------------------

    def _used(self) -> int:
        return self._probe()[0]

    def _page_cost(self, state: SyncState) -> int:
        """Requests the next page takes (retries aside), so no limit is overshot by a page."""
        fresh_window = state.cursor is None and state.phase == PHASE_BACKFILL
        if fresh_window and state.window_start is not None:
            return _BATCH_FIRST_PAGE_REQUESTS
        return 1

    def _check_limits(self, counters: _Counters, max_requests: int | None, cost: int) -> None:
        if max_requests is not None and counters.requests + cost > max_requests:
            raise _Stop("max_requests")
        used, limit = self._probe()
        allowed = math.floor(self._share * min(limit, self._calls_per_hour))
        if used + cost > allowed:
            raise _Stop("budget", _next_hour(self._clock()))

    def _record_failure(
        self, state: SyncState, exc: EHRError, spent: int, counters: _Counters
    ) -> None:
        """Keep the error code and the calls spent; the cursor and the batches stay as they were."""
        current = self._state(state.kind)
        spent = max(spent, 0)
        failed = dataclasses.replace(
            current, requests=current.requests + spent, last_error=exc.code
        )
        if current.version == 0:
            failed = dataclasses.replace(state, requests=spent, last_error=exc.code, cursor=None)
        mirror.commit_page(self._engine, self._cipher, failed, now=self._clock())
        counters.requests += spent
        if isinstance(exc, _RETRYABLE):
            if isinstance(exc, RateLimitedError):
                stop = _Stop("rate_limited", exc.retry_at or _next_hour(self._clock()))
            else:
                stop = _Stop("error")
            stop.error = exc.code
            raise stop from None


def _rows_of(items: Sequence[Any]) -> tuple[list[Row], list[int | str]]:
    """Mirror rows of a page, and the ids of appointments deleted upstream (tombstones)."""
    rows: list[Row] = []
    deleted: list[int | str] = []
    for item in items:
        if isinstance(item, Appointment) and item.is_deleted:
            deleted.append(item.id)
        else:
            rows.append(to_row(item))
    return rows, deleted
