"""Safe paging (SECURITY.md RL-03): ``RecordStream`` alone, through the transport against the
recording stub, and against the embedded sandbox over real HTTP."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from ehr.drchrono.quirks import list_key
from ehr.errors import (
    PaginationLoopError,
    UnsafeRedirectError,
    UpstreamDataError,
)
from ehr.paging import MAX_PAGE_SIZE, RecordStream, origin_of
from ehr.retry import RetryPolicy
from ehr.sandbox.clinic import Clinic, ClinicConfig, generate_clinic
from ehr.sandbox.faults import FaultSettings
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.throttle import Throttle
from ehr.transport import EHRTransport
from tests.ehr.stub_server import FIXED_NOW, FakeTokens, Recorded, StubServer, json_answer

BASE = "https://ehr.example"
ORIGIN = origin_of(BASE)
assert ORIGIN is not None


def fake_pages(pages: int, per_page: int = 2) -> dict[str, dict[str, Any]]:
    """``pages`` linked pages of ``per_page`` records each, keyed by URL."""
    site = {}
    for n in range(1, pages + 1):
        records = [{"id": (n - 1) * per_page + i} for i in range(per_page)]
        nxt = f"{BASE}/api/patients?cursor={n + 1}" if n < pages else None
        site[f"{BASE}/api/patients?cursor={n}"] = {
            "previous": None,
            "results": records,
            "next": nxt,
        }
    return site


class FakeFetch:
    def __init__(self, site: dict[str, Any]) -> None:
        self.site = site
        self.urls: list[str] = []

    def __call__(self, url: str) -> Any:
        self.urls.append(url)
        return self.site[url]


def stream(fetch: FakeFetch, first: str | None = None, **kwargs: Any) -> RecordStream:
    return RecordStream(
        fetch,
        first or f"{BASE}/api/patients?cursor=1",
        base_origin=ORIGIN,
        list_key=list_key,
        correlation_id="abc123abc123",
        **kwargs,
    )


# -- RecordStream --------------------------------------------------------------------------------


def test_300_pages_with_cap_200_are_truncated_not_silent() -> None:
    fetch = FakeFetch(fake_pages(300))
    records = stream(fetch, max_pages=200)
    ids = [r["id"] for r in records]
    assert records.truncated is True
    assert records.pages == 200
    assert len(fetch.urls) == 200
    assert ids == list(range(400))


def test_exactly_cap_pages_is_not_truncated() -> None:
    records = stream(FakeFetch(fake_pages(5)), max_pages=5)
    assert len(list(records)) == 10
    assert records.truncated is False
    assert records.pages == 5


def test_default_cap_is_200() -> None:
    records = stream(FakeFetch(fake_pages(201, per_page=1)))
    assert len(list(records)) == 200
    assert records.truncated is True


def test_next_equal_to_current_url_is_a_loop_after_one_repeat() -> None:
    site = fake_pages(1)
    first = f"{BASE}/api/patients?cursor=1"
    site[first]["next"] = first
    fetch = FakeFetch(site)
    records = stream(fetch)
    assert next(records) == {"id": 0}
    assert next(records) == {"id": 1}
    with pytest.raises(PaginationLoopError) as caught:
        next(records)
    assert fetch.urls == [first]
    assert caught.value.correlation_id == "abc123abc123"


def test_longer_cycle_is_a_loop() -> None:
    site = fake_pages(3)
    site[f"{BASE}/api/patients?cursor=3"]["next"] = f"{BASE}/api/patients?cursor=2"
    fetch = FakeFetch(site)
    with pytest.raises(PaginationLoopError):
        list(stream(fetch))
    assert len(fetch.urls) == 3


@pytest.mark.parametrize(
    "foreign",
    [
        "https://evil.example/api/patients?page=2",
        "http://ehr.example/api/patients?cursor=2",  # scheme downgrade
        "https://ehr.example:8443/api/patients?cursor=2",  # another port
        "//evil.example/api/patients",
    ],
)
def test_next_to_another_origin_is_refused_without_fetching(foreign: str) -> None:
    site = fake_pages(2)
    site[f"{BASE}/api/patients?cursor=1"]["next"] = foreign
    fetch = FakeFetch(site)
    records = stream(fetch)
    with pytest.raises(UnsafeRedirectError):
        list(records)
    assert fetch.urls == [f"{BASE}/api/patients?cursor=1"]


def test_same_origin_spelled_differently_and_relative_next_are_followed() -> None:
    site = fake_pages(3)
    spelled = "https://EHR.example:443/api/patients?cursor=2"
    site[f"{BASE}/api/patients?cursor=1"]["next"] = spelled
    site[spelled] = site.pop(f"{BASE}/api/patients?cursor=2")
    site[spelled]["next"] = "/api/patients?cursor=3"  # resolved against the page it came on
    site["https://EHR.example:443/api/patients?cursor=3"] = site.pop(
        f"{BASE}/api/patients?cursor=3"
    )
    fetch = FakeFetch(site)
    assert len(list(stream(fetch))) == 6


def test_duplicates_across_pages_are_dropped_keeping_the_first() -> None:
    site = fake_pages(2)
    site[f"{BASE}/api/patients?cursor=2"]["results"] = [{"id": 1, "v": "late"}, {"id": 2}]
    site[f"{BASE}/api/patients?cursor=1"]["results"] = [{"id": 0}, {"id": 1, "v": "first"}]
    records = stream(FakeFetch(site))
    assert list(records) == [{"id": 0}, {"id": 1, "v": "first"}, {"id": 2}]
    assert records.duplicates_dropped == 1


def test_string_ids_and_data_envelope() -> None:
    first = f"{BASE}/api/appointments?cursor=1"
    site = {
        first: {"data": [{"id": "12"}, {"id": "12"}, {"id": "r-1"}, {"no_id": True}], "next": None}
    }
    assert list(stream(FakeFetch(site), first)) == [{"id": "12"}, {"id": "r-1"}, {"no_id": True}]


@pytest.mark.parametrize(
    "envelope",
    [
        {"results": {}, "next": None},
        {"results": None, "next": None},
        {"next": None},
        ["not", "an", "object"],
        {"results": [1, 2], "next": None},
        {"results": [], "next": 5},
    ],
)
def test_malformed_envelopes_are_data_errors(envelope: Any) -> None:
    first = f"{BASE}/api/patients?cursor=1"
    with pytest.raises(UpstreamDataError) as caught:
        list(stream(FakeFetch({first: envelope}), first))
    assert caught.value.correlation_id == "abc123abc123"


def test_stream_is_lazy() -> None:
    fetch = FakeFetch(fake_pages(3))
    records = stream(fetch)
    assert fetch.urls == []
    next(records)
    next(records)
    assert len(fetch.urls) == 1
    next(records)
    assert len(fetch.urls) == 2


# -- through the transport, against the stub ----------------------------------------------------


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def make(base_url: str, **kwargs: Any) -> EHRTransport:
    return EHRTransport(
        base_url,
        FakeTokens(),
        throttle=Throttle(rate_per_s=1e9, burst=10**9),
        sleep=lambda _s: None,
        clock=lambda: FIXED_NOW,
        **kwargs,
    )


def paged(stub: StubServer, pages: int, *, next_for: Any = None):
    """A route serving ``pages`` pages of 3 records; ``next_for(n, stub)`` may override links."""

    def handler(request: Recorded):
        query = parse_qs(request.query)
        n = int(query.get("cursor", ["1"])[0])
        nxt = f"{stub.base_url}/api/patients?{request.query.split('&cursor=')[0]}&cursor={n + 1}"
        if n >= pages:
            nxt = None
        if next_for is not None:
            nxt = next_for(n, nxt)
        return json_answer(
            {"previous": None, "results": [{"id": n * 10 + i} for i in range(3)], "next": nxt}
        )

    return handler


def test_transport_walks_pages_with_the_largest_page_size(stub: StubServer) -> None:
    stub.route("GET", "/api/patients", paged(stub, 4))
    client = make(stub.base_url)
    records = client.iter_records("/api/patients", {"doctor": 3})
    assert len(list(records)) == 12
    assert records.pages == 4
    assert records.truncated is False
    first = parse_qs(stub.requests[0].query)
    assert first == {"page_size": [str(MAX_PAGE_SIZE)], "doctor": ["3"]}
    # One correlation id for the whole walk, carried on every page.
    assert len({r.headers["X-Correlation-ID"] for r in stub.requests}) == 1


def test_caller_page_size_wins(stub: StubServer) -> None:
    stub.route("GET", "/api/appointments", lambda r: json_answer({"results": [], "next": None}))
    list(
        make(stub.base_url).iter_records(
            "/api/appointments", {"page_size": 20, "date": "2025-06-11"}
        )
    )
    assert parse_qs(stub.requests[0].query)["page_size"] == ["20"]


def test_transport_cap_truncates(stub: StubServer) -> None:
    stub.route("GET", "/api/patients", paged(stub, 10))
    records = make(stub.base_url).iter_records("/api/patients", max_pages=3)
    assert len(list(records)) == 9
    assert records.truncated is True
    assert stub.count("GET") == 3


def test_transport_refuses_next_to_another_host_and_sends_nothing_there(stub: StubServer) -> None:
    with StubServer() as other:
        stub.route(
            "GET",
            "/api/patients",
            paged(stub, 3, next_for=lambda n, nxt: f"{other.base_url}/api/patients?cursor=2"),
        )
        with pytest.raises(UnsafeRedirectError) as caught:
            list(make(stub.base_url).iter_records("/api/patients"))
        assert other.requests == []
    assert stub.count("GET") == 1
    assert caught.value.correlation_id == stub.requests[0].headers["X-Correlation-ID"]


def test_transport_detects_next_equal_to_the_current_url(stub: StubServer) -> None:
    first_url = f"{stub.base_url}/api/patients?page_size={MAX_PAGE_SIZE}"
    stub.route("GET", "/api/patients", paged(stub, 3, next_for=lambda n, nxt: first_url))
    with pytest.raises(PaginationLoopError):
        list(make(stub.base_url).iter_records("/api/patients"))
    assert stub.count("GET") == 1


# -- against the embedded sandbox ----------------------------------------------------------------

SANDBOX_CLINIC = ClinicConfig(
    seed=11, patients=520, months_back=1, months_ahead=0, today=dt.date(2025, 6, 11)
)


@pytest.fixture(scope="module")
def clinic() -> Clinic:
    return generate_clinic(SANDBOX_CLINIC)


def start_sandbox(clinic: Clinic, **overrides: Any) -> SandboxServer:
    config = SandboxConfig(
        clinic=SANDBOX_CLINIC, rate_limit_per_hour=0, burst_per_second=0, **overrides
    )
    return SandboxServer(config, clinic=clinic).start()


class SandboxTokens(FakeTokens):
    def __init__(self, server: SandboxServer) -> None:
        super().__init__()
        self.current = server.provider.issue_token(server.client_id, [])["access_token"]


def test_walking_all_sandbox_patients_returns_each_once(clinic: Clinic) -> None:
    server = start_sandbox(clinic)
    try:
        client = EHRTransport(
            server.base_url, SandboxTokens(server), throttle=Throttle(rate_per_s=1e9, burst=10**9)
        )
        records = client.iter_records("/api/patients")
        ids = [r["id"] for r in records]
        client.close()
        n = len(clinic.tables["patients"])
        assert n > 2 * MAX_PAGE_SIZE  # the walk really spans several pages
        assert sorted(ids) == sorted(clinic.tables["patients"])
        assert len(set(ids)) == len(ids)
        assert records.pages == math.ceil(n / MAX_PAGE_SIZE)
        assert server.request_log.count(method="GET", path_prefix="/api/patients") == records.pages
    finally:
        server.stop()


def test_reads_survive_the_sandbox_5xx_knob(clinic: Clinic) -> None:
    faults = FaultSettings(error_502_rate=0.15, error_503_rate=0.15, seed=5)
    server = start_sandbox(clinic, faults=faults)
    sleeps: list[float] = []
    try:
        client = EHRTransport(
            server.base_url,
            SandboxTokens(server),
            throttle=Throttle(rate_per_s=1e9, burst=10**9),
            sleep=sleeps.append,
            retry=RetryPolicy(),
        )
        for _ in range(3):
            ids = [r["id"] for r in client.iter_records("/api/patients", {"page_size": 50})]
            assert sorted(ids) == sorted(clinic.tables["patients"])
        client.close()
        failures = sum(server.request_log.count(status=s) for s in (502, 503))
        assert failures > 0  # the knob really fired, and every read still completed
        assert len(sleeps) == failures
    finally:
        server.stop()


def test_sandbox_body_faults_and_foreign_next_are_refused(clinic: Clinic) -> None:
    server = start_sandbox(clinic)
    try:
        client = EHRTransport(
            server.base_url, SandboxTokens(server), throttle=Throttle(rate_per_s=1e9, burst=10**9)
        )
        for knob in ("html_200_next", "truncated_json_next", "malformed_json_next"):
            server.faults.update(**{knob: 1})
            with pytest.raises(UpstreamDataError):
                list(client.iter_records("/api/patients"))
        server.faults.update(foreign_next_link=True)
        with pytest.raises(UnsafeRedirectError):
            list(client.iter_records("/api/patients"))
        client.close()
    finally:
        server.stop()


def test_default_throttle_keeps_under_the_sandbox_burst_limit(clinic: Clinic) -> None:
    server = start_sandbox(clinic)
    server.limiter.per_second = 10  # DrChrono's reported burst limit
    try:
        client = EHRTransport(server.base_url, SandboxTokens(server))  # default 8/s throttle
        for _ in range(20):
            client.get_json("/api/doctors")
        client.close()
        assert client.requests_made == 20  # no 429 was met and retried
        assert server.request_log.count(status=429) == 0
    finally:
        server.stop()
