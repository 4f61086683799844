"""Keeps the analytics mirror fresh in the background: one bounded sync step every interval.

The step runs as the system, not as a user: it copies data into the encrypted mirror, it shows
nothing to anyone (reading the mirror is a user's access, audited by ``ehr.services.mirror``).
Each step writes one audit row (``READ`` of ``mirror_sync`` by ``system``) with what it
fetched, so the audit log accounts for every upstream call. A step that fails is logged by
error code and tried again next interval; the thread never dies of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from sqlalchemy import Engine

from ehr.backend import EHRBackend
from ehr.errors import EHRError
from ehr.sync import BudgetProbe, MirrorSync, StepResult
from storage import audit, tokens
from storage.crypto import Cipher

__all__ = ["SYSTEM_USERNAME", "SyncScheduler", "run_background_step"]

log = logging.getLogger(__name__)

SYSTEM_USERNAME: Final = "system"
# Upstream requests one background step may use; the budget share bounds the hour as well.
BACKGROUND_STEP_REQUESTS: Final = 40
# The first step waits a little after start-up, so the app answers its first page loads first.
FIRST_STEP_DELAY_S: Final = 30.0


def budget_probe(engine: Engine, connection_id: int, calls_per_hour: int) -> BudgetProbe:
    """Calls used this hour and the limit, read from the shared budget counter."""

    def probe() -> tuple[int, int]:
        return tokens.budget_state(engine, connection_id, calls_per_hour).calls, calls_per_hour

    return probe


def run_background_step(
    backend: EHRBackend,
    engine: Engine,
    cipher: Cipher,
    audit_key: bytes,
    *,
    connection_id: int,
    calls_per_hour: int,
    share: float,
    max_requests: int = BACKGROUND_STEP_REQUESTS,
) -> StepResult | None:
    """One sync step for the connection, audited as the system.

    Returns None when the step raised (e.g. the connection needs reauthorisation); an upstream
    outage the sync absorbed comes back as a result with ``error`` set, audited as ERROR.
    """
    sync = MirrorSync(
        backend,
        engine,
        cipher,
        budget_probe(engine, connection_id, calls_per_hour),
        share=share,
        calls_per_hour=calls_per_hour,
    )
    try:
        result = sync.step(max_requests=max_requests)
    except EHRError as exc:
        log.warning("background mirror sync failed (ref %s): %s", exc.correlation_id, exc.code)
        _record(engine, audit_key, audit.AuditOutcome.ERROR, {"error": exc.code})
        return None
    details: dict[str, object] = {
        "requests": result.requests,
        "records": result.records,
        "stopped": result.stopped,
    }
    if result.error:
        details["error"] = result.error
        log.warning("background mirror sync stopped on an upstream error: %s", result.error)
    outcome = audit.AuditOutcome.ERROR if result.error else audit.AuditOutcome.SUCCESS
    _record(engine, audit_key, outcome, details)
    return result


def _record(
    engine: Engine, key: bytes, outcome: audit.AuditOutcome, details: dict[str, object]
) -> None:
    audit.append(
        engine,
        key,
        audit.AuditRecord(
            action=audit.AuditAction.READ,
            outcome=outcome,
            username=SYSTEM_USERNAME,
            role=SYSTEM_USERNAME,
            resource_type="mirror_sync",
            data_category="billing",
            details=details,
        ),
    )


class SyncScheduler:
    """A daemon thread calling ``step`` every ``interval_s`` seconds until ``stop()``."""

    def __init__(
        self,
        step: Callable[[], object],
        interval_s: float,
        *,
        first_delay_s: float = FIRST_STEP_DELAY_S,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._step = step
        self._interval_s = interval_s
        self._first_delay_s = first_delay_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mirror-sync", daemon=True)

    def start(self) -> SyncScheduler:
        """Start the thread (once)."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to finish and wait for it a little."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread.is_alive()

    def _run(self) -> None:
        delay = self._first_delay_s
        while not self._stop.wait(delay):
            try:
                self._step()
            except Exception as exc:  # a failed step must not end the schedule
                log.error("background mirror sync step crashed: %s", type(exc).__name__)
            delay = self._interval_s
