"""DrChrono's async batch lists: a kind's records of one date window, up to 1,000 a page.

The mirror backfill (``ehr.sync``) goes newest month first through this module, which is the
``WindowedSource`` side of ``DrChronoBackend``. Batch lists (drchrono.md §2.3) are jobs:

1. ``POST /api/line_items_list`` (``service_date_range``) or ``/api/appointments_list``
   (``date_range``, or ``occurred_since`` for the open-ended newest window; verbose for the
   status history and ``show_archived=true`` so deleted appointments arrive as tombstones)
   with ``page_size`` up to ``MAX_BATCH_PAGE_SIZE`` answers ``{"status", "uuid"}``;
2. ``GET <same path>?uuid=...`` answers ``"In progress"`` until the job is ``"Complete"``,
   then the first page of results and an absolute ``next`` link (which keeps the uuid).

Polling sleeps through an injectable ``sleep``: the first look comes soon, so a small job costs
one GET, and later looks spread out so a slow one costs few of the 500 hourly calls; after
about ``MAX_JOB_WAIT_S`` the call gives up with ``UpstreamTimeoutError``, which the sync takes
as "retry on the next step" (with a new job). A job that reports failure is
``UpstreamUnavailableError`` for the same reason.

**The POST is a write to the transport.** It has no effect upstream besides creating a job, yet
it is sent with ``EHRTransport.write``, so it is never re-sent once bytes may have left (RL-02):
re-sending would start a second job and spend another call. An unclear outcome (a read timeout
or a 5xx after sending) at most leaves an unused job upstream, so it is reported as
``UpstreamUnavailableError``, not ``WriteOutcomeUnknownError``: the sync stops the step cleanly
and the next step starts a fresh job. Nothing there needs checking upstream.

**Cursors** are ``endpoints.encode_cursor`` of the job's ``next`` URL, with the index of the
window's part: an appointment window longer than DrChrono's 190-day ``date_range`` limit is
split (``quirks.split_date_range``) into parts listed one after another, one job each; the
cursor after a part's last page names the next part's start (its path without a uuid). A
cursor for another batch path is a ``ValueError``, a job upstream no longer knows (expired) a
``NotFoundError``: either way the sync fetches the window again from its start. The page cap
(``max_pages``) ends a walk with ``truncated=True`` and a cursor to go on with, as the
``iter_*`` listings do; ``next`` links get the same origin and loop checks (RL-03).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any, Final
from urllib.parse import parse_qs, urljoin, urlsplit

from ehr.drchrono import endpoints as ep
from ehr.drchrono import mapping as m
from ehr.drchrono import quirks
from ehr.drchrono.pages import Mapper
from ehr.errors import (
    PaginationLoopError,
    UnsafeRedirectError,
    UpstreamDataError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    WriteOutcomeUnknownError,
)
from ehr.models import DataQuality, Page, QualityIssue
from ehr.paging import origin_of
from ehr.transport import EHRTransport

__all__ = [
    "APPOINTMENTS_LIST",
    "BATCH_KINDS",
    "FIRST_POLL_DELAY_S",
    "LINE_ITEMS_LIST",
    "MAX_BATCH_PAGE_SIZE",
    "MAX_JOB_WAIT_S",
    "MAX_POLL_DELAY_S",
    "OPEN_END",
    "POLL_BACKOFF",
    "BatchLists",
]

LINE_ITEMS_LIST: Final = "/api/line_items_list"
APPOINTMENTS_LIST: Final = "/api/appointments_list"
# The mirror kinds a batch list can window (transactions and payments have no date window).
BATCH_KINDS: Final = frozenset({"line_item", "appointment"})
# DrChrono's largest batch page (drchrono.md §2.3): four times a plain list page, so a month of
# a busy clinic's line items is one or two calls instead of several.
MAX_BATCH_PAGE_SIZE: Final = 1000
# End of an open-ended line item window: ``service_date_range`` needs an end, and no visit is
# billed this far ahead (the counterpart of ``endpoints.EARLIEST``).
OPEN_END: Final = date(2100, 1, 1)
# Seconds before the first look at a new job. DrChrono does not say how long jobs take (the
# sandbox's take 0.2 s); each look is one of the 500 hourly calls, so none is made at once.
FIRST_POLL_DELAY_S: Final = 0.25
# Each later wait is this many times the last (capped below): a job that takes 5 s costs three
# looks, one that takes a minute seven, and giving up (below) comes after eleven.
POLL_BACKOFF: Final = 4.0
# Longest single wait between looks.
MAX_POLL_DELAY_S: Final = 15.0
# Total wait for one job before giving up (the sync retries on its next step): long enough for
# a year of a busy practice's export, short enough that a stuck job does not hold a sync worker.
MAX_JOB_WAIT_S: Final = 120.0
# Longest job uuid accepted from upstream (a UUID is 36 characters).
MAX_UUID_CHARS: Final = 64

_COMPLETE = "Complete"
_IN_PROGRESS = "In progress"
_FAILED = frozenset({"Error", "Failed"})
_TRUE = "true"


@dataclass(frozen=True, slots=True)
class _Listing:
    """What one window asks: the batch path, its mapper and the POST parameters per part."""

    path: str
    mapper: Mapper[Any]
    parts: tuple[dict[str, Any], ...]


def _status(body: Any) -> str:
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, str):
        raise UpstreamDataError(details={"field": "status", "problem": "missing"})
    if status in _FAILED:
        # The job's own ``detail`` text is not kept: it is upstream free text.
        raise UpstreamUnavailableError(details={"problem": "batch job failed", "status": status})
    if status not in (_COMPLETE, _IN_PROGRESS):
        raise UpstreamDataError(details={"field": "status", "problem": "unknown value"})
    return status


def _job_id(body: Any) -> str:
    job = body.get("uuid") if isinstance(body, dict) else None
    if not isinstance(job, str) or not job or len(job) > MAX_UUID_CHARS:
        raise UpstreamDataError(details={"field": "uuid", "problem": "missing or invalid"})
    return job


def _is_part_start(url: str) -> bool:
    """Whether a cursor URL names a part still to start (no job yet) rather than a job page."""
    return "uuid" not in parse_qs(urlsplit(url).query)


class BatchLists:
    """Windowed batch listings over one transport (see the module docstring).

    ``page_size`` is the batch page (1..``MAX_BATCH_PAGE_SIZE``); ``max_pages`` caps the pages
    one walk fetches; ``sleep`` waits between looks at a job (injectable for tests).
    """

    def __init__(
        self,
        transport: EHRTransport,
        tz: tzinfo,
        *,
        max_pages: int,
        page_size: int = MAX_BATCH_PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= page_size <= MAX_BATCH_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_BATCH_PAGE_SIZE}")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self._transport = transport
        self._tz = tz
        self._max_pages = max_pages
        self._page_size = page_size
        self._sleep = sleep
        self._origin = origin_of(transport.base_url)

    def iter_window(
        self, kind: str, start: date, end: date | None, *, cursor: str | None = None
    ) -> Iterator[Page[Any]]:
        """Records of ``kind`` dated ``start``..``end`` (inclusive; None: open-ended), a page
        at a time with resumable cursors.

        Line items are windowed by service date, appointments (deleted ones included) by
        scheduled date. Raises ``ValueError`` at the call, before anything is sent, for a kind
        not in ``BATCH_KINDS``, an ``end`` before ``start`` or a cursor of another listing.
        """
        listing = self._listing(kind, start, end)
        if cursor is None:
            return self._walk(listing, 0, None)
        url, part = ep.decode_cursor(cursor, self._transport.base_url, listing.path)
        if part >= len(listing.parts):
            raise ValueError("invalid cursor")
        return self._walk(listing, part, None if _is_part_start(url) else url)

    # --- what to ask --------------------------------------------------------------------------

    def _listing(self, kind: str, start: date, end: date | None) -> _Listing:
        if end is not None and end < start:
            raise ValueError("window ends before it starts")
        size = {"page_size": self._page_size}
        if kind == "line_item":
            window = _service_date_range(start, end or OPEN_END)
            params = {"service_date_range": window, "order_by": "id", **size}
            return _Listing(LINE_ITEMS_LIST, m.line_item_from_drchrono, (params,))
        if kind == "appointment":
            common = {
                "verbose": _TRUE,
                "show_archived": _TRUE,
                "order_by": "scheduled_time",
                **size,
            }
            if end is None:
                parts: tuple[dict[str, Any], ...] = (
                    {"occurred_since": start.isoformat(), **common},
                )
            else:
                parts = tuple(
                    {"date_range": quirks.date_range_param(lo, hi), **common}
                    for lo, hi in quirks.split_date_range(start, end)
                )
            return _Listing(APPOINTMENTS_LIST, m.appointment_from_drchrono, parts)
        raise ValueError(f"no batch list for kind {kind!r}")

    # --- the walk -----------------------------------------------------------------------------

    def _walk(self, listing: _Listing, part: int, url: str | None) -> Iterator[Page[Any]]:
        """Pages from ``url`` (a job page) or from the start of part ``part`` (``url`` None)."""
        part_start = f"{self._transport.base_url}{listing.path}"
        seen_urls: set[str] = set() if url is None else {url}
        seen_ids: set[str] = set()
        for number in range(1, self._max_pages + 1):
            if url is None:
                url, ready = self._start_job(listing.path, listing.parts[part])
                body = self._await(url, wait_first=not ready)
            else:
                body = self._await(url, wait_first=False)
            next_url = self._next_link(body, url)
            if next_url is not None and next_url in seen_urls:
                raise PaginationLoopError(details={"pages": number})
            if next_url is not None:
                seen_urls.add(next_url)
                cursor: str | None = ep.encode_cursor(next_url, part)
            elif part + 1 < len(listing.parts):
                part += 1
                cursor = ep.encode_cursor(part_start, part)
            else:
                cursor = None
            truncated = cursor is not None and number == self._max_pages
            yield self._page(listing.mapper, body, cursor, truncated, seen_ids)
            if cursor is None:
                return
            url = next_url

    def _start_job(self, path: str, params: Mapping[str, Any]) -> tuple[str, bool]:
        """POST the job (once, see the module docstring); its poll URL and whether it is done."""
        try:
            reply = self._transport.write("POST", path, params=params)
        except WriteOutcomeUnknownError as exc:
            raise UpstreamUnavailableError(
                details={"problem": "batch job not started", "cause": exc.code},
                correlation_id=exc.correlation_id,
            ) from None
        job = _job_id(reply.body)
        ready = _status(reply.body) == _COMPLETE
        return ep.list_url(self._transport.base_url, path, {"uuid": job}), ready

    def _await(self, url: str, *, wait_first: bool) -> Any:
        """The body at ``url`` once its job is complete, looking at most about
        ``MAX_JOB_WAIT_S`` seconds; ``UpstreamTimeoutError`` after that."""
        delay, waited = FIRST_POLL_DELAY_S, 0.0
        if wait_first:
            self._sleep(delay)
            waited, delay = delay, min(delay * POLL_BACKOFF, MAX_POLL_DELAY_S)
        while True:
            body = self._transport.get_json(url)
            if _status(body) == _COMPLETE:
                return body
            if waited >= MAX_JOB_WAIT_S:
                raise UpstreamTimeoutError(
                    details={"problem": "batch job not complete", "waited_s": round(waited)}
                )
            self._sleep(delay)
            waited += delay
            delay = min(delay * POLL_BACKOFF, MAX_POLL_DELAY_S)

    def _page(
        self,
        mapper: Mapper[Any],
        body: Any,
        cursor: str | None,
        truncated: bool,
        seen_ids: set[str],
    ) -> Page[Any]:
        """The mapped records of one complete job page; a record repeated in the walk is
        dropped and counted (as ``Pager`` does for plain lists)."""
        quality = DataQuality()
        items = []
        for record in quirks.list_key(body):
            raw_id = record.get("id") if isinstance(record, dict) else None
            key = None if raw_id is None else repr(raw_id)
            if key is not None and key in seen_ids:
                quality.note(QualityIssue.DUPLICATE_RECORD, "record.id")
                continue
            if key is not None:
                seen_ids.add(key)
            items.append(mapper(record, self._tz, quality))
        return Page(tuple(items), next_cursor=cursor, truncated=truncated, quality=quality)

    def _next_link(self, body: Any, current_url: str) -> str | None:
        raw = body.get("next") if isinstance(body, dict) else None
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise UpstreamDataError(details={"field": "next", "problem": "expected a URL"})
        next_url = urljoin(current_url, raw)
        if origin_of(next_url) != self._origin:
            raise UnsafeRedirectError(details={"field": "next"})
        return next_url


def _service_date_range(start: date, end: date) -> str:
    """A ``service_date_range`` value: spelt like ``date_range``, with no length limit."""
    return f"{start.isoformat()}/{end.isoformat()}"
