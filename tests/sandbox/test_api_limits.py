"""Sandbox rate limits: hourly fixed window per application, per-second burst, Retry-After."""

from __future__ import annotations

from ehr.sandbox.limits import RateLimiter
from tests.sandbox.conftest import Api, FakeClock

HOUR = 3600.0


def _top_of_hour_clock() -> FakeClock:
    return FakeClock(start=1_750_000_000.0 - 1_750_000_000.0 % HOUR + 10.0)


def test_hourly_limit_answers_429_on_call_n_plus_1_and_resets_at_the_hour(start_sandbox) -> None:
    clock = _top_of_hour_clock()
    api: Api = start_sandbox(clock=clock, rate_limit_per_hour=5)
    for _ in range(5):
        assert api.get("/api/doctors").status_code == 200
    refused = api.get("/api/doctors")
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Request was throttled."}
    assert "Retry-After" not in refused.headers  # DrChrono documents no header
    # A different application has its own budget; OAuth endpoints never count.
    assert api.post("/o/token/", data={"grant_type": "refresh_token"}).status_code != 429
    clock.advance(HOUR - 20)  # still the same clock hour
    assert api.get("/api/doctors").status_code == 429
    clock.advance(15)  # past the top of the hour
    assert api.get("/api/doctors").status_code == 200


def test_retry_after_when_configured(start_sandbox) -> None:
    clock = _top_of_hour_clock()
    api: Api = start_sandbox(clock=clock, rate_limit_per_hour=1, send_retry_after=True)
    assert api.get("/api/doctors").status_code == 200
    refused = api.get("/api/doctors")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == int(HOUR - 10)


def test_burst_limit_per_second(start_sandbox) -> None:
    clock = _top_of_hour_clock()
    api: Api = start_sandbox(clock=clock, rate_limit_per_hour=0, burst_per_second=3)
    assert [api.get("/api/doctors").status_code for _ in range(4)] == [200, 200, 200, 429]
    clock.advance(1.0)
    assert api.get("/api/doctors").status_code == 200


def test_limits_are_per_application_and_unit_rules() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(per_hour=2, per_second=0, clock=clock)
    assert limiter.hit("a").allowed
    assert limiter.hit("a").allowed
    refused = limiter.hit("a")
    assert not refused.allowed
    assert refused.limit == "hour"
    assert refused.retry_after_s == 3600
    assert limiter.hit("b").allowed
    assert limiter.used_this_hour("a") == 2
    off = RateLimiter(per_hour=0, per_second=0, clock=clock)
    assert all(off.hit("a").allowed for _ in range(1000))
