"""Read retries (SECURITY.md RL-01): Retry-After in every form, backoff, bounds, what is retried.

Against the recording stub with an injected ``sleep`` (recorded, never slept) and a fixed clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests

from ehr.errors import (
    RateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from ehr.retry import RetryPolicy, backoff_seconds, never_sent, retry_after_seconds
from ehr.throttle import Throttle
from ehr.transport import EHRTransport
from tests.ehr.stub_server import (
    FIXED_NOW,
    Answer,
    FakeTokens,
    StubServer,
    json_answer,
    unused_port,
)

OK = json_answer({"results": [], "next": None})


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make(base_url: str, sleeps: list[float], **kwargs) -> EHRTransport:
    return EHRTransport(
        base_url,
        FakeTokens(),
        throttle=Throttle(rate_per_s=1e9, burst=10**9),
        sleep=sleeps.append,
        clock=lambda: FIXED_NOW,
        **kwargs,
    )


@pytest.fixture
def client(stub: StubServer, sleeps: list[float]) -> Iterator[EHRTransport]:
    transport = make(stub.base_url, sleeps)
    yield transport
    transport.close()


def throttled(retry_after: str | None = None) -> Answer:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Answer(429, {"detail": "Request was throttled."}, headers)


# -- RL-01 acceptance -----------------------------------------------------------------------------


def test_429_with_retry_after_2_then_200(stub: StubServer, client: EHRTransport, sleeps) -> None:
    stub.add("GET", "/api/patients", throttled("2"), OK)
    assert client.get_json("/api/patients") == {"results": [], "next": None}
    assert sum(sleeps) >= 2.0
    assert sleeps == [2.0]
    assert stub.count("GET") == 2


def test_always_429_gives_exactly_4_gets_then_rate_limited(
    stub: StubServer, client: EHRTransport, sleeps
) -> None:
    stub.add("GET", "/api/patients", throttled())
    with pytest.raises(RateLimitedError) as caught:
        client.get_json("/api/patients")
    assert stub.count("GET") == 4
    assert len(sleeps) == 3
    assert caught.value.retry_at is None  # DrChrono names no time
    assert caught.value.correlation_id == stub.requests[0].headers["X-Correlation-ID"]


def test_retry_after_86400_fails_at_once_naming_the_time(
    stub: StubServer, client: EHRTransport, sleeps
) -> None:
    stub.add("GET", "/api/patients", throttled("86400"))
    with pytest.raises(RateLimitedError) as caught:
        client.get_json("/api/patients")
    assert stub.count("GET") == 1
    assert sleeps == []
    assert caught.value.retry_at == FIXED_NOW + timedelta(days=1)
    assert caught.value.to_dict()["details"]["retry_at"] == "2026-10-22T07:00:00+00:00"


def test_retry_after_http_date_is_parsed(stub: StubServer, client: EHRTransport, sleeps) -> None:
    # FIXED_NOW is 07:00:00 GMT on that day.
    stub.add("GET", "/api/patients", throttled("Wed, 21 Oct 2026 07:00:04 GMT"), OK)
    client.get_json("/api/patients")
    assert sleeps == [4.0]
    assert stub.count("GET") == 2


def test_far_http_date_fails_at_once(stub: StubServer, client: EHRTransport, sleeps) -> None:
    stub.add("GET", "/x", throttled("Wed, 21 Oct 2026 07:28:00 GMT"))
    with pytest.raises(RateLimitedError) as caught:
        client.get_json("/x")
    assert sleeps == []
    assert caught.value.retry_at == FIXED_NOW.replace(minute=28)


def test_garbage_retry_after_falls_back_to_backoff(
    stub: StubServer, client: EHRTransport, sleeps
) -> None:
    stub.add("GET", "/api/patients", throttled("soon"), throttled("soon"), OK)
    client.get_json("/api/patients")
    assert stub.count("GET") == 3
    assert len(sleeps) == 2
    assert 0.0 <= sleeps[0] <= 1.0  # full jitter below base * 2**0
    assert 0.0 <= sleeps[1] <= 2.0


def test_negative_retry_after_means_no_wait(stub: StubServer, client: EHRTransport, sleeps) -> None:
    stub.add("GET", "/x", throttled("-5"), OK)
    client.get_json("/x")
    assert sleeps == [0.0]


def test_huge_retry_after_number_fails_at_once(
    stub: StubServer, client: EHRTransport, sleeps
) -> None:
    stub.add("GET", "/x", throttled("9" * 40))
    with pytest.raises(RateLimitedError) as caught:
        client.get_json("/x")
    assert stub.count("GET") == 1
    assert sleeps == []
    assert caught.value.retry_at is None  # absurd: no time is named


def test_retry_after_beyond_the_total_wait_budget_stops_without_sleeping(
    stub: StubServer, client: EHRTransport, sleeps
) -> None:
    stub.add("GET", "/x", throttled("120"))  # under 300 s but over the 90 s total budget
    with pytest.raises(RateLimitedError) as caught:
        client.get_json("/x")
    assert stub.count("GET") == 1
    assert sleeps == []
    assert caught.value.retry_at == FIXED_NOW + timedelta(seconds=120)


def test_retry_after_just_inside_the_bounds_is_honoured(stub: StubServer, sleeps) -> None:
    policy = RetryPolicy(max_total_wait_s=600.0)
    transport = make(stub.base_url, sleeps, retry=policy)
    stub.add("GET", "/x", throttled("300"), throttled("301"))
    with pytest.raises(RateLimitedError):
        transport.get_json("/x")
    assert sleeps == [300.0]  # 300 waited, 301 is over max_retry_after_s
    assert stub.count("GET") == 2


def test_total_backoff_is_bounded(stub: StubServer, sleeps) -> None:
    policy = RetryPolicy(max_attempts=10, backoff_base_s=10.0, max_total_wait_s=5.0)
    transport = make(stub.base_url, sleeps, retry=policy)
    stub.add("GET", "/x", Answer(503, {"detail": "down"}))
    with pytest.raises(UpstreamUnavailableError):
        transport.get_json("/x")
    assert sum(sleeps) <= 5.0 + 1e-9
    assert stub.count("GET") == 10


# -- what is and is not retried ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(502, UpstreamUnavailableError), (503, UpstreamUnavailableError), (504, UpstreamTimeoutError)],
)
def test_gateway_errors_retry_4_times_then_map(
    stub: StubServer, client: EHRTransport, status: int, error: type[Exception]
) -> None:
    stub.add("GET", "/x", Answer(status, {"detail": "down"}))
    with pytest.raises(error) as caught:
        client.get_json("/x")
    assert stub.count("GET") == 4
    assert caught.value.details["status"] == status


@pytest.mark.parametrize("status", [502, 503, 504])
def test_one_gateway_error_then_success(
    stub: StubServer, client: EHRTransport, status: int
) -> None:
    stub.add("GET", "/x", Answer(status), json_answer([1]))
    assert client.get_json("/x") == [1]


def test_503_retry_after_is_honoured(stub: StubServer, client: EHRTransport, sleeps) -> None:
    stub.add("GET", "/x", Answer(503, headers={"Retry-After": "3"}), json_answer([]))
    client.get_json("/x")
    assert sleeps == [3.0]


def test_500_is_not_retried(stub: StubServer, client: EHRTransport, sleeps) -> None:
    stub.add("GET", "/x", Answer(500, {"detail": "bug"}))
    with pytest.raises(UpstreamUnavailableError):
        client.get_json("/x")
    assert stub.count("GET") == 1
    assert sleeps == []


def test_connection_reset_mid_body_on_a_get_is_retried(
    stub: StubServer, client: EHRTransport
) -> None:
    stub.add(
        "GET", "/x", Answer(200, {"pad": "x" * 5000}, action="reset_mid_body"), json_answer([7])
    )
    assert client.get_json("/x") == [7]
    assert stub.count("GET") == 2


def test_refused_connection_on_a_get_is_retried_then_unavailable(sleeps) -> None:
    transport = make(f"http://127.0.0.1:{unused_port()}", sleeps)
    with pytest.raises(UpstreamUnavailableError) as caught:
        transport.get_json("/x")
    assert transport.requests_made == 4
    assert len(sleeps) == 3
    assert caught.value.details["cause"] == "ConnectionError"


def test_read_timeout_on_a_get_is_retried_then_timeout(
    stub: StubServer, sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ehr.transport as transport_module

    monkeypatch.setattr(transport_module, "READ_TIMEOUT_S", 0.2)
    transport = make(stub.base_url, sleeps, retry=RetryPolicy(max_attempts=2))
    stub.add("GET", "/x", Answer(200, [], action="stall_after_processing", stall_s=1.0))
    with pytest.raises(UpstreamTimeoutError):
        transport.get_json("/x")
    assert stub.count("GET") == 2


# -- units ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("2", 2.0),
        (" 120 ", 120.0),
        ("+3", 3.0),
        ("-5", 0.0),
        ("0", 0.0),
        ("9" * 40, math.inf),
        ("-" + "9" * 40, 0.0),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 1680.0),
        ("Wed, 21 Oct 2026 06:00:00 GMT", 0.0),  # in the past: now
        ("Wed, 21 Oct 2026 07:00:10 -0000", 10.0),  # naive HTTP-date is GMT
        ("Wed, 32 Oct 2026 07:28:00 GMT", None),
        ("1.5", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, FIXED_NOW) == expected


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (30, 60.0)]:
        draws = [backoff_seconds(attempt, policy, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # spread over the whole range, not a fixed delay


def test_never_sent_classification() -> None:
    assert never_sent(requests.exceptions.ConnectTimeout())
    assert never_sent(requests.exceptions.SSLError())
    assert not never_sent(requests.exceptions.ReadTimeout())
    assert not never_sent(requests.exceptions.ConnectionError())  # e.g. reset after sending
    assert not never_sent(requests.exceptions.ChunkedEncodingError())
