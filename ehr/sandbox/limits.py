"""Rate limits of the sandbox API, per application (OAuth ``client_id``).

DrChrono documents an hourly per-application limit, default 500 calls, in a FIXED window that
resets at the top of each hour, answered with 429 (drchrono.md §2.5). A third party also reports
a 10 calls/second burst throttle; the sandbox enforces it as a sliding one-second window. Either
limit can be switched off with 0. Only requests that pass go into the counts: a throttled call
does not use up budget. DrChrono sends no ``Retry-After``; the sandbox adds one only when asked.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# DrChrono's documented default hourly budget per application.
DEFAULT_PER_HOUR = 500
# The burst throttle reported for DrChrono (calls per second).
DEFAULT_PER_SECOND = 10
# Length of the fixed hourly window, aligned to the top of the hour.
HOUR_S = 3600
# Length of the sliding burst window.
BURST_WINDOW_S = 1.0

THROTTLED_DETAIL = "Request was throttled."


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one rate-limit check; ``retry_after_s`` is set when refused."""

    allowed: bool
    retry_after_s: int | None = None
    limit: str | None = None  # "hour" or "burst" when refused


class RateLimiter:
    """Hourly fixed-window and per-second sliding-window limits keyed by client id.

    ``clock`` returns epoch seconds (inject a fake one in tests). Limits may be changed at run
    time through the ``per_hour`` / ``per_second`` attributes; 0 disables a limit.
    """

    def __init__(
        self,
        per_hour: int = DEFAULT_PER_HOUR,
        per_second: int = DEFAULT_PER_SECOND,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if per_hour < 0 or per_second < 0:
            raise ValueError("rate limits must be >= 0 (0 disables a limit)")
        self.per_hour = per_hour
        self.per_second = per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._hourly: dict[str, tuple[int, int]] = {}  # client -> (hour index, calls)
        self._recent: dict[str, deque[float]] = {}

    def hit(self, client_id: str) -> Decision:
        """Count one call by ``client_id`` if both limits allow it, else refuse it."""
        now = self._clock()
        hour = int(now // HOUR_S)
        with self._lock:
            window_hour, calls = self._hourly.get(client_id, (hour, 0))
            if window_hour != hour:
                calls = 0
            if self.per_hour and calls >= self.per_hour:
                retry = max(1, math.ceil((hour + 1) * HOUR_S - now))
                return Decision(False, retry, "hour")
            recent = self._recent.setdefault(client_id, deque())
            while recent and recent[0] <= now - BURST_WINDOW_S:
                recent.popleft()
            if self.per_second and len(recent) >= self.per_second:
                retry = max(1, math.ceil(recent[0] + BURST_WINDOW_S - now))
                return Decision(False, retry, "burst")
            recent.append(now)
            self._hourly[client_id] = (hour, calls + 1)
            return Decision(True)

    def used_this_hour(self, client_id: str) -> int:
        """Calls counted for ``client_id`` in the current hourly window."""
        hour = int(self._clock() // HOUR_S)
        with self._lock:
            window_hour, calls = self._hourly.get(client_id, (hour, 0))
            return calls if window_hour == hour else 0

    def reset(self) -> None:
        """Forget every count (both windows, every client)."""
        with self._lock:
            self._hourly.clear()
            self._recent.clear()
