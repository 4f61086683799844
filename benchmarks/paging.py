"""Paging overhead: every line item of a ~50k-line clinic, through our client and without it.

The sandbox (in its own process) generates the clinic; its line-item pages (250 records each)
are recorded once and served back byte for byte by ``benchmarks.replay``, because the sandbox
spends 0.1-1 s of CPU building each page of so large a listing and would hide any client cost.
Four ways to fetch those pages, timed in interleaved rounds:

- ``transport``: ``EHRTransport.iter_records``, our paging layer with its checks (origin, loop,
  page cap, size cap, JSON depth, retries, correlation ids), its throttle set so it never binds;
- ``typed``: ``DrChronoBackend.iter_line_items``, the same walk mapped into ``LineItem`` models;
- ``bare_session``: a ``requests.Session`` loop following ``next``: the practical limit;
- ``new_connection``: ``requests.get`` per page, a new TCP connection each time (on loopback a
  connection costs ~0.1 ms, so this baseline flatters nobody; over TLS to a remote host the gap
  would be far wider).

Then the real-world floor, against the live sandbox at DrChrono's documented 500 calls/hour: how
many calls loading the same line items takes through normal lists (page size 250) and through
the async batch list endpoint (page size 1000, ``/api/line_items_list``), and the hours that
implies.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

import requests

from benchmarks.harness import Record, RunContext, WithPeakRss, exact_record, interleaved
from benchmarks.harness import make_record as rec
from benchmarks.sandbox import SandboxProcess
from ehr.drchrono import endpoints as ep
from ehr.drchrono.backend import DrChronoBackend
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.limits import DEFAULT_PER_HOUR
from ehr.throttle import Throttle
from ehr.transport import EHRTransport

# Clinic sizes: ``line_items_target`` overshoots because ~16% of the target is not produced
# (measured with seed 7 and 1,500 patients: 60,000 -> 49,777 line items; 10,700 -> 10,234).
FULL_CLINIC = ClinicConfig(
    seed=7, patients=1500, today=dt.date(2025, 6, 11), line_items_target=60_000
)
QUICK_CLINIC = ClinicConfig(
    seed=7, patients=1500, today=dt.date(2025, 6, 11), line_items_target=10_700
)
# DrChrono's list page size (the transport's default) and the batch list's largest page.
LIST_PAGE_SIZE = 250
BATCH_PAGE_SIZE = 1000
FIRST_PAGE = f"{ep.LINE_ITEMS}?page_size={LIST_PAGE_SIZE}"
# Page cap high enough never to truncate the benchmark clinic (200 pages at full size).
MAX_PAGES = 10_000
# A throttle that never binds: the benchmark measures the paging layer, not the pacing.
UNBOUND_RATE_PER_S = 1e12
UNBOUND_BURST = 1_000_000
# Timeouts of the baseline loops (the transport uses its own named ones).
BASELINE_TIMEOUT_S = (5.0, 30.0)
# How often the batch job is polled; the sandbox finishes a job after 0.2 s, DrChrono later.
BATCH_POLL_S = 0.25
# Upper bounds on the transport's overhead against the bare session loop.
TRANSPORT_TARGET = 1.15
TYPED_TARGET = 2.0
PRACTICE_TZ = ZoneInfo("America/New_York")


class _StaticTokens:
    """A ``TokenSource`` holding the one token the sandbox issued."""

    def __init__(self, token: str) -> None:
        self._token = token

    def access_token(self) -> str:
        return self._token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self._token


def _transport(base_url: str, token: str) -> EHRTransport:
    throttle = Throttle(UNBOUND_RATE_PER_S, UNBOUND_BURST)
    return EHRTransport(base_url, _StaticTokens(token), throttle=throttle)


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def _bare_session_loop(session: requests.Session, first_url: str, token: str) -> int:
    records, url = 0, first_url
    while url:
        response = session.get(url, headers=_headers(token), timeout=BASELINE_TIMEOUT_S)
        response.raise_for_status()
        body = response.json()
        records += len(body["results"])
        url = body["next"]
    return records


def _new_connection_loop(first_url: str, token: str) -> int:
    records, url = 0, first_url
    while url:
        response = requests.get(url, headers=_headers(token), timeout=BASELINE_TIMEOUT_S)
        response.raise_for_status()
        body = response.json()
        records += len(body["results"])
        url = body["next"]
    return records


def _expect(count: int, expected: int, what: str) -> int:
    if count != expected:
        raise RuntimeError(f"{what} fetched {count} line items, the clinic has {expected}")
    return count


def _timed_fetches(ctx: RunContext, sandbox: SandboxProcess, expected: int) -> list[Record]:
    ctx.progress("paging: recording the line-item pages for the replay")
    base_url, pages, recorded = sandbox.replay(FIRST_PAGE)
    _expect(recorded, expected, "recording")
    token = sandbox.token
    transport = _transport(base_url, token)
    backend = DrChronoBackend(transport, practice_tz=PRACTICE_TZ, max_pages=MAX_PAGES)
    session = requests.Session()
    first_url = f"{base_url}{FIRST_PAGE}"
    try:

        def via_transport() -> int:
            stream = transport.iter_records(ep.LINE_ITEMS, max_pages=MAX_PAGES)
            return _expect(sum(1 for _ in stream), expected, "transport")

        def via_backend() -> int:
            pages = backend.iter_line_items()
            return _expect(sum(len(p.items) for p in pages), expected, "typed")

        typed = WithPeakRss(via_backend)
        ours = WithPeakRss(via_transport)
        ctx.progress(f"paging: {ctx.runs} interleaved rounds of 4 fetches of {expected} lines")
        times = interleaved(
            {
                "transport": ours,
                "typed": typed,
                "bare_session": lambda: _expect(
                    _bare_session_loop(session, first_url, token), expected, "bare"
                ),
                "new_connection": lambda: _expect(
                    _new_connection_loop(first_url, token), expected, "naive"
                ),
            },
            ctx.runs,
        )
    finally:
        session.close()
        transport.close()
    bare = ("paging.bare_session", times["bare_session"])
    lines = f"{expected:,} line items in {pages} pages of {LIST_PAGE_SIZE}, replayed (see module)"
    records = [
        rec("paging.bare_session", times["bare_session"], "s", note=lines),
        rec("paging.new_connection", times["new_connection"], "s"),
        rec("paging.transport", times["transport"], "s", baseline=bare, target=TRANSPORT_TARGET),
        rec(
            "paging.transport_vs_new_connection",
            times["transport"],
            "s",
            baseline=("paging.new_connection", times["new_connection"]),
            note="on loopback a new connection is cheap (no TLS, ~0.1 ms connect), so this "
            "baseline is close to the session's; remote over TLS it would be much slower",
        ),
        rec("paging.typed", times["typed"], "s", baseline=bare, target=TYPED_TARGET),
    ]
    for name, probe in (("transport", ours), ("typed", typed)):
        peaks = probe.timed(ctx.runs)
        if peaks:
            records.append(rec(f"paging.{name}.peak_rss", peaks, "MiB"))
    return records


# --- the rate-limit floor ----------------------------------------------------------------------


def _batch_fetch(transport: EHRTransport) -> int:
    """Every line item through the async batch list: start a job, poll it, walk its pages."""
    started = transport.write(
        "POST", f"{ep.LINE_ITEMS}_list", json={"page_size": BATCH_PAGE_SIZE}
    ).body
    url = f"{ep.LINE_ITEMS}_list?uuid={started['uuid']}"
    body: Any = transport.get_json(url)
    while body["status"] != "Complete":
        time.sleep(BATCH_POLL_S)
        body = transport.get_json(url)
    records = len(body["results"])
    while body["next"]:
        body = transport.get_json(body["next"])
        records += len(body["results"])
    return records


def _floor(ctx: RunContext, sandbox: SandboxProcess, expected: int) -> list[Record]:
    # Only the hourly limit is switched on: the burst limit paces calls but never changes
    # their number, and waiting it out for real would only make the benchmark slower.
    ctx.progress(f"paging: call counts with the sandbox at {DEFAULT_PER_HOUR} calls/hour")
    sandbox.set_limits(DEFAULT_PER_HOUR, 0)
    try:
        transport = _transport(sandbox.base_url, sandbox.token)
        try:
            started = time.perf_counter()
            listed = sum(1 for _ in transport.iter_records(ep.LINE_ITEMS, max_pages=MAX_PAGES))
            walk_s = time.perf_counter() - started
            _expect(listed, expected, "normal list")
            list_calls = transport.requests_made
            _expect(_batch_fetch(transport), expected, "batch list")
            batch_calls = transport.requests_made - list_calls
        finally:
            transport.close()
        counted = sandbox.calls_this_hour()
    finally:
        sandbox.set_limits(0, 0)
    per_hour = float(DEFAULT_PER_HOUR)
    checked = (
        f"the sandbox counted {counted} calls for both (we sent {list_calls + batch_calls}); "
        f"the live list walk took {walk_s:.1f} s, nearly all of it the sandbox building pages"
    )
    return [
        exact_record("paging.floor.list_calls", list_calls, "calls", note=checked),
        exact_record("paging.floor.list_hours", list_calls / per_hour, "h"),
        rec(
            "paging.floor.batch_calls",
            [batch_calls],
            "calls",
            baseline=("paging.floor.list_calls", [list_calls]),
            note=f"1 POST, polls every {BATCH_POLL_S} s until the job is done (the sandbox "
            f"takes 0.2 s; DrChrono longer, so more polls), then pages of {BATCH_PAGE_SIZE}",
        ),
        exact_record("paging.floor.batch_hours", batch_calls / per_hour, "h"),
    ]


def run(ctx: RunContext) -> list[Record]:
    """Timed fetches, then the call counts, against one sandbox in a child process."""
    clinic = QUICK_CLINIC if ctx.quick else FULL_CLINIC
    ctx.progress("paging: generating the clinic in the sandbox process")
    with SandboxProcess(clinic) as sandbox:
        expected = sandbox.records["line_items"]
        return _timed_fetches(ctx, sandbox, expected) + _floor(ctx, sandbox, expected)
