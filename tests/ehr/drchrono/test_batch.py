"""``DrChronoBackend.iter_window`` (``ehr.drchrono.batch``) against the real sandbox's batch lists.

The sandbox here runs on a fake clock that only the tests' injected sleep moves, so a job's
"In progress" time passes without any real waiting, and the number of looks at a job is exact.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ehr.drchrono import batch
from ehr.drchrono.backend import DrChronoBackend
from ehr.drchrono.quirks import MAX_DATE_RANGE_DAYS
from ehr.errors import (
    NotFoundError,
    RateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from ehr.models import Appointment, Page
from ehr.paging import MAX_PAGE_SIZE
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.transport import EHRTransport
from tests.ehr.drchrono.conftest import PRACTICE_TZ, StaticTokens, issue_token

# Enough line items (about 1,700) that a window takes more than one 1,000-record batch page.
CLINIC = ClinicConfig(
    seed=7,
    patients=80,
    months_back=4,
    months_ahead=1,
    doctors=2,
    offices=1,
    today=dt.date(2025, 6, 11),
    line_items_target=2600,
)
MAY = (dt.date(2025, 5, 1), dt.date(2025, 5, 31))
# Smaller pages where a window must span several pages.
SMALL_PAGE = 100
# Longest wait for the sandbox to log a request it has answered.
LOG_WAIT_S = 2.0


@dataclass
class FakeClock:
    """Epoch seconds for the sandbox; moved only by ``sleep`` (which records each wait)."""

    now: float = field(default_factory=time.time)
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[SandboxServer]:
    config = SandboxConfig(clinic=CLINIC, rate_limit_per_hour=0, burst_per_second=0)
    started = SandboxServer(config, clock=clock).start()
    yield started
    started.stop()


@pytest.fixture
def sandbox(server: SandboxServer, clock: FakeClock) -> Iterator[SandboxServer]:
    """Jobs complete at once unless a test says otherwise; log, faults and sleeps start empty."""
    server.sandbox.batch_jobs.delay_s = 0.0
    server.faults.reset()
    server.request_log.reset()
    clock.sleeps.clear()
    yield server
    server.faults.reset()
    server.sandbox.batch_jobs.delay_s = 0.0


@pytest.fixture
def transport(sandbox: SandboxServer) -> Iterator[EHRTransport]:
    http = EHRTransport(sandbox.base_url, StaticTokens(issue_token(sandbox)), sleep=lambda _s: None)
    yield http
    http.close()


@pytest.fixture
def log(sandbox: SandboxServer, transport: EHRTransport) -> Log:
    return Log(sandbox, transport)


def _backend(transport: EHRTransport, clock: FakeClock, **kwargs: Any) -> DrChronoBackend:
    return DrChronoBackend(transport, practice_tz=PRACTICE_TZ, batch_sleep=clock.sleep, **kwargs)


def _items(pages: Iterator[Page[Any]]) -> list[Any]:
    return [item for page in pages for item in page.items]


class Log:
    """The sandbox's request log, read once it holds every request the transport sent since
    the last ``reset`` (the sandbox logs a request just after answering it)."""

    def __init__(self, server: SandboxServer, transport: EHRTransport) -> None:
        self._log = server.request_log
        self._transport = transport
        self.reset()

    def reset(self) -> None:
        self._sent = self._transport.requests_made
        self._log.reset()

    def entries(self) -> list[Any]:
        deadline = time.monotonic() + LOG_WAIT_S
        while len(self._log.entries()) < self._transport.requests_made - self._sent:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        return self._log.entries()

    def count(self, method: str | None = None, path_prefix: str = "/") -> int:
        return sum(
            1
            for e in self.entries()
            if (method is None or e.method == method) and e.path.startswith(path_prefix)
        )


def _day(appointment: Appointment) -> dt.date:
    assert appointment.scheduled_time is not None
    return appointment.scheduled_time.astimezone(PRACTICE_TZ).date()


def _service_dates(server: SandboxServer) -> dict[int, dt.date]:
    return {
        int(k): dt.date.fromisoformat(rec["service_date"])
        for k, rec, _s in server.store.scan("line_items")
    }


def test_a_line_item_window_equals_the_same_records_from_the_plain_list(
    sandbox: SandboxServer, transport: EHRTransport, clock: FakeClock, log: Log
) -> None:
    backend = _backend(transport, clock, batch_page_size=SMALL_PAGE)
    plain = _items(backend.iter_line_items())
    start, end = MAY
    expected = sorted(
        (li for li in plain if li.service_date and start <= li.service_date <= end),
        key=lambda li: li.id,
    )

    pages = list(backend.iter_window("line_item", start, end))

    assert SMALL_PAGE < len(expected) < len(plain)  # several pages, and the window filters
    assert sorted((li for p in pages for li in p.items), key=lambda li: li.id) == expected
    assert len(pages) == math.ceil(len(expected) / SMALL_PAGE)
    assert [p.next_cursor is None for p in pages] == [False] * (len(pages) - 1) + [True]
    assert log.count("POST", batch.LINE_ITEMS_LIST) == 1


def test_an_open_window_resumes_from_its_cursor_without_repeats(
    sandbox: SandboxServer, transport: EHRTransport, clock: FakeClock, log: Log
) -> None:
    backend = _backend(transport, clock, batch_page_size=SMALL_PAGE)
    start = MAY[0]
    walk = backend.iter_window("line_item", start, None)
    first = [next(walk), next(walk)]
    cursor = first[-1].next_cursor
    assert cursor is not None

    rest = list(backend.iter_window("line_item", start, None, cursor=cursor))

    ids = [li.id for page in first + rest for li in page.items]
    assert len(ids) == len(set(ids))
    assert set(ids) == {k for k, day in _service_dates(sandbox).items() if day >= start}
    # One job for the whole window: the resumed walk reads its next pages, no new POST.
    assert log.count("POST") == 1


def test_an_appointment_window_longer_than_190_days_is_split_and_lists_deleted_ones(
    sandbox: SandboxServer, transport: EHRTransport, clock: FakeClock, log: Log
) -> None:
    backend = _backend(transport, clock, batch_page_size=500)
    start, end = dt.date(2025, 1, 1), dt.date(2025, 12, 31)  # 365 days: two parts
    first_part_end = start + dt.timedelta(days=MAX_DATE_RANGE_DAYS - 1)
    upstream = sorted(str(k) for k, _rec, _s in sandbox.store.scan("appointments"))
    gone = upstream[0]
    transport.write("DELETE", f"/api/appointments/{gone}")
    try:
        log.reset()
        pages = list(backend.iter_window("appointment", start, end))
        # The last page of the first part carries a cursor that starts the second part.
        last_of_first = max(
            i for i, p in enumerate(pages) if all(_day(a) <= first_part_end for a in p.items)
        )
        cursor = pages[last_of_first].next_cursor
        log.reset()
        resumed = _items(backend.iter_window("appointment", start, end, cursor=cursor))
        resume_posts = log.count("POST")
    finally:
        sandbox.sandbox.reset_data()

    appointments: list[Appointment] = [a for p in pages for a in p.items]
    # The sandbox answers 400 to a date_range over 190 days: two jobs that succeeded are two
    # windows within the limit, and together they hold every appointment, the deleted one too.
    assert sorted(a.id for a in appointments) == upstream  # the clinic's are all in 2025
    assert [a.id for a in appointments if a.is_deleted] == [gone]
    assert len(pages) > 2
    assert cursor is not None
    assert resume_posts == 1
    later = [a.id for p in pages[last_of_first + 1 :] for a in p.items]
    assert later
    assert [a.id for a in resumed] == later


def test_polling_waits_with_the_injected_sleep_until_the_job_is_complete(
    sandbox: SandboxServer, transport: EHRTransport, clock: FakeClock, log: Log
) -> None:
    job_seconds = 5.0
    sandbox.sandbox.batch_jobs.delay_s = job_seconds
    backend = _backend(transport, clock)
    started = time.monotonic()

    pages = list(backend.iter_window("line_item", *MAY))

    expected_waits: list[float] = []
    delay = batch.FIRST_POLL_DELAY_S
    while sum(expected_waits) < job_seconds:
        expected_waits.append(delay)
        delay = min(delay * batch.POLL_BACKOFF, batch.MAX_POLL_DELAY_S)
    assert clock.sleeps == expected_waits
    assert len(pages) == 1
    assert pages[0].items
    gets = log.count("GET", batch.LINE_ITEMS_LIST)
    assert gets == len(expected_waits)  # one look after each wait, the last one Complete
    assert time.monotonic() - started < 2.0  # the waits were the fake clock's, not real


def test_a_job_that_never_completes_is_given_up_after_the_bounded_wait(
    sandbox: SandboxServer, transport: EHRTransport, clock: FakeClock, log: Log
) -> None:
    sandbox.sandbox.batch_jobs.delay_s = 10 * batch.MAX_JOB_WAIT_S
    backend = _backend(transport, clock)

    with pytest.raises(UpstreamTimeoutError):
        next(backend.iter_window("line_item", *MAY))

    assert batch.MAX_JOB_WAIT_S <= sum(clock.sleeps) < batch.MAX_JOB_WAIT_S + max(clock.sleeps)
    assert max(clock.sleeps) == batch.MAX_POLL_DELAY_S
    assert log.count("GET") == len(clock.sleeps)
    assert log.count("POST") == 1


def test_an_expired_job_and_a_foreign_cursor_are_refused(
    sandbox: SandboxServer, transport: EHRTransport, clock: FakeClock, log: Log
) -> None:
    backend = _backend(transport, clock, batch_page_size=SMALL_PAGE)
    cursor = next(backend.iter_window("line_item", *MAY)).next_cursor
    assert cursor is not None
    sandbox.sandbox.batch_jobs.clear()  # upstream forgot the job

    with pytest.raises(NotFoundError):
        next(backend.iter_window("line_item", *MAY, cursor=cursor))
    log.reset()
    with pytest.raises(ValueError, match="cursor"):
        backend.iter_window("appointment", *MAY, cursor=cursor)
    with pytest.raises(ValueError, match="no batch list"):
        backend.iter_window("transaction", *MAY)
    with pytest.raises(ValueError, match="ends before"):
        backend.iter_window("line_item", MAY[1], MAY[0])
    assert log.entries() == []  # refused before anything was sent


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"error_500_rate": 1.0}, UpstreamUnavailableError),  # outcome unclear: retry later
        ({"html_200_next": 1}, UpstreamUnavailableError),  # unreadable answer: the same
        ({"throttle_next": 1}, RateLimitedError),
    ],
)
def test_a_job_that_cannot_be_started_fails_after_one_post(
    sandbox: SandboxServer,
    transport: EHRTransport,
    clock: FakeClock,
    log: Log,
    fault: dict[str, Any],
    error: type[Exception],
) -> None:
    backend = _backend(transport, clock)
    sandbox.faults.update(**fault)

    with pytest.raises(error):
        next(backend.iter_window("line_item", *MAY))

    assert log.count("POST") == 1  # never re-sent (RL-02)
    assert log.count("GET") == 0


def test_batch_windows_load_line_items_in_a_quarter_of_the_calls(
    sandbox: SandboxServer, transport: EHRTransport, clock: FakeClock, log: Log
) -> None:
    backend = _backend(transport, clock)
    total = len(_service_dates(sandbox))
    assert total > batch.MAX_BATCH_PAGE_SIZE

    windowed = _items(backend.iter_window("line_item", dt.date(1900, 1, 1), None))
    batch_calls = len(log.entries())
    log.reset()
    plain = _items(backend.iter_line_items())
    plain_calls = len(log.entries())

    assert len(windowed) == len(plain) == total
    polls = len(clock.sleeps)  # looks at the job before it was Complete, plus the final one
    assert polls == 1
    assert batch_calls == 1 + polls + math.ceil(total / batch.MAX_BATCH_PAGE_SIZE) - 1
    assert plain_calls == math.ceil(total / MAX_PAGE_SIZE)
    assert batch_calls < plain_calls
