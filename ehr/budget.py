"""The shared hourly call budget as the transport's ``BudgetGate`` (DESIGN.md §4, SECURITY.md RL-01).

DrChrono allows each application 500 calls an hour. ``StoredBudget`` spends from the counter row
in the database (``storage.tokens.spend_budget``), which every session, process and replica of
the connection shares, so together they stay under the limit. The transport spends before it
sends, so a refused spend raises ``RateLimitedError`` (with the instant the window resets) and
no request is made. One warning is logged when the hour's spend crosses 90 %, so operators see
the budget running out before users do; it names the connection id and counts, nothing else.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from ehr.errors import RateLimitedError
from storage.tokens import DEFAULT_CALLS_PER_HOUR, spend_budget, utc_now

__all__ = ["BUDGET_SOURCE", "WARN_FRACTION", "StoredBudget"]

logger = logging.getLogger(__name__)

# Share of the hourly limit at which one warning is logged (450 of DrChrono's 500).
WARN_FRACTION = 0.9
# ``details["source"]`` of the RateLimitedError raised here, telling it apart from upstream 429s.
BUDGET_SOURCE = "hourly_budget"


class StoredBudget:
    """The hourly budget of one connection, kept in the database (implements ``BudgetGate``).

    ``limit`` is the calls allowed per clock hour; ``clock`` (aware UTC) picks the window.
    """

    def __init__(
        self,
        engine: Engine,
        connection_id: int,
        *,
        limit: int = DEFAULT_CALLS_PER_HOUR,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if limit < 1:
            raise ValueError("the hourly limit must be at least one call")
        self._engine = engine
        self._connection_id = connection_id
        self._limit = limit
        self._clock = clock
        self._warn_at = math.ceil(limit * WARN_FRACTION)

    def spend(self, calls: int = 1) -> None:
        """Count ``calls`` against this hour, or raise ``RateLimitedError`` taking nothing.

        ``retry_at`` is the start of the next window; ``details["source"]`` is
        ``hourly_budget``.
        """
        state = spend_budget(self._engine, self._connection_id, calls, self._limit, self._clock())
        if not state.granted:
            logger.warning(
                "hourly EHR call budget spent (connection_id=%s calls=%d limit=%d resets_at=%s)",
                self._connection_id,
                state.calls,
                state.limit,
                state.resets_at.isoformat(),
            )
            raise RateLimitedError(retry_at=state.resets_at, details={"source": BUDGET_SOURCE})
        if state.calls - calls < self._warn_at <= state.calls:  # only the spend that crosses it
            logger.warning(
                "hourly EHR call budget at %d of %d (connection_id=%s resets_at=%s)",
                state.calls,
                state.limit,
                self._connection_id,
                state.resets_at.isoformat(),
            )
