"""Client-side request pacing: a token-bucket ``Throttle`` and the hourly ``BudgetGate`` seam.

DrChrono throttles bursts (about 10 calls/second, drchrono.md §2.5) and caps each application at
500 calls an hour in a fixed window (SECURITY.md RL-01). The transport waits on the ``Throttle``
before every request so one process never bursts past the per-second limit, and then spends one
call from the ``BudgetGate``, a counter shared by every process of the connection (implemented in
storage), which fails fast with ``RateLimitedError`` when the hour's budget is gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE_PER_S", "BudgetGate", "Throttle"]

# Steady rate kept below DrChrono's reported 10 calls/second burst throttle (SECURITY.md RL-01:
# "stays under 8 req/s").
DEFAULT_RATE_PER_S = 8.0
# Calls allowed back to back after an idle spell. A bucket lets through burst + rate x T calls in
# any window of T seconds, so against a sliding one-second limit of 10 the burst must stay small:
# 1 + 8 = 9 leaves one call of headroom for network jitter (a burst of 8 allowed 16 and was
# measured to draw a 429 from the sandbox's 10/s limiter).
DEFAULT_BURST = 1


class BudgetGate(Protocol):
    """The hourly call budget shared by every process using one EHR connection."""

    def spend(self, calls: int = 1) -> None:
        """Count ``calls`` against this hour; raise ``RateLimitedError`` when the budget is spent."""
        ...


class Throttle:
    """A thread-safe token bucket: ``rate_per_s`` tokens a second, at most ``burst`` saved up.

    ``acquire()`` takes one token, sleeping until it is available. A caller that has to wait
    reserves its token first (the balance goes negative) and sleeps outside the lock, so
    concurrent callers queue fairly instead of all waking at once. ``clock`` is monotonic seconds
    and ``sleep`` is injectable so tests can run with a fake clock.
    """

    def __init__(
        self,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: int = DEFAULT_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()

    def acquire(self) -> float:
        """Take one token, sleeping first if none is available; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            # max(): a clock that steps backwards must not drain the bucket.
            elapsed = max(0.0, now - self._last)
            self._last = max(self._last, now)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s
        if wait > 0:
            self._sleep(wait)
        return wait
