"""The client-side token bucket (SECURITY.md RL-01), with a fake clock whose sleep advances it."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from ehr.throttle import DEFAULT_BURST, DEFAULT_RATE_PER_S, Throttle


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds


def make(fake: FakeTime, rate: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST) -> Throttle:
    return Throttle(rate, burst, clock=fake.clock, sleep=fake.sleep)


def test_burst_passes_then_calls_are_spaced_at_the_rate() -> None:
    fake = FakeTime()
    throttle = make(fake, rate=8, burst=8)
    waits = [throttle.acquire() for _ in range(12)]
    assert waits[:8] == [0.0] * 8
    assert waits[8:] == pytest.approx([0.125] * 4)
    assert fake.now == pytest.approx(0.5)


def test_default_throttle_spacing() -> None:
    fake = FakeTime()
    throttle = make(fake)
    start_times = []
    for _ in range(17):
        throttle.acquire()
        start_times.append(fake.now)
    gaps = [b - a for a, b in itertools.pairwise(start_times)]
    assert gaps[0] == pytest.approx(0.125)
    assert all(g == pytest.approx(1 / DEFAULT_RATE_PER_S) for g in gaps)


@pytest.mark.parametrize(("rate", "burst"), [(DEFAULT_RATE_PER_S, DEFAULT_BURST), (8.0, 2)])
def test_no_one_second_window_exceeds_drchronos_burst_limit(rate: float, burst: int) -> None:
    fake = FakeTime()
    throttle = make(fake, rate, burst)
    times = []
    for _ in range(100):
        throttle.acquire()
        times.append(fake.now)
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert worst <= burst + rate
    assert worst <= 10  # drchrono.md §2.5: ~10 calls/second


def test_idle_time_refills_up_to_the_burst_only() -> None:
    fake = FakeTime()
    throttle = make(fake, rate=4, burst=3)
    for _ in range(3):
        throttle.acquire()
    fake.now += 100.0  # a long idle spell saves at most `burst` tokens
    waits = [throttle.acquire() for _ in range(5)]
    assert waits[:3] == [0.0] * 3
    assert waits[3] == pytest.approx(0.25)


def test_clock_stepping_backwards_does_not_grant_or_drain_tokens() -> None:
    fake = FakeTime()
    throttle = make(fake, rate=1, burst=1)
    throttle.acquire()
    fake.now -= 50.0
    assert throttle.acquire() == pytest.approx(1.0)


def test_concurrent_callers_are_paced_together() -> None:
    throttle = Throttle(rate_per_s=100.0, burst=1)  # real clock: 40 calls need >= 0.39 s
    started = time.monotonic()
    threads = [
        threading.Thread(target=lambda: [throttle.acquire() for _ in range(10)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 0.39 - 0.01


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        Throttle(rate_per_s=0)
    with pytest.raises(ValueError, match="burst"):
        Throttle(burst=0)
