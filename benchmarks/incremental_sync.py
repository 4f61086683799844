"""Incremental sync: a ``since`` refresh of the mirror after 1% of line items changed upstream.

Each round: a full sync of the analytics mirror (``ehr.sync.MirrorSync`` with the DrChrono
backend, every kind walked from the start, into a fresh SQLite mirror), then 1% of the line
items changed upstream (written through the sandbox store, which stamps each write so
``since`` finds it, as DrChrono's ``updated_at`` moves), then the incremental refresh of every
kind. Requests are counted in the sandbox's request log.

Targets (issue 7): the refresh takes about the pages the changes fill plus a small constant
(one request per kind at least, and whatever changed since yesterday anyway: the watermark
keeps a day's margin, ``ehr.sync.SINCE_MARGIN``), and at most 5% of the full sync's time.

The sandbox runs in this process (the benchmark writes to its store), so its time building
pages is in both figures; the client's pacing is off (a throttle that never binds), so the
times are work, not waiting.
"""

from __future__ import annotations

import math
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet

from benchmarks.harness import Record, RunContext, exact_record
from benchmarks.harness import make_record as rec
from ehr.drchrono.backend import DrChronoBackend
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.sync import MirrorSync, StepResult
from ehr.throttle import Throttle
from ehr.transport import EHRTransport
from storage.crypto import Cipher
from storage.database import create_schema, make_engine

PATIENTS: Final = 1500  # the demo clinic's default size
QUICK_PATIENTS: Final = 300
CHANGED_SHARE: Final = 0.01
# Line items per upstream list page (DrChrono's and the sandbox's largest page).
LINE_ITEMS_PAGE: Final = 250
# Requests beyond the changed pages the refresh may take: one per other kind, and a few pages
# of what changed since yesterday in the generated clinic anyway.
CONSTANT_REQUESTS: Final = 10
TARGET_TIME_RATIO: Final = 0.05
# Rounds at most: a full sync of the default clinic takes ~50 s here (the in-process sandbox
# builds ~400 pages), so the full run keeps to three rounds.
MAX_ROUNDS: Final = 3
# A budget and pace that never bind: the benchmark measures the sync, not the waiting.
UNBOUNDED_CALLS: Final = 10_000_000
UNBOUND_RATE_PER_S: Final = 1e12
UNBOUND_BURST: Final = 1_000_000


class _StaticTokens:
    """A ``TokenSource`` holding the one token the sandbox issued."""

    def __init__(self, token: str) -> None:
        self._token = token

    def access_token(self) -> str:
        return self._token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self._token


def _change_line_items(server: SandboxServer, share: float, round_number: int) -> int:
    """Write ``share`` of the line items again with a changed adjustment; returns how many."""
    rows = sorted(server.store.scan("line_items"), key=lambda row: str(row[0]))
    step = max(1, round(1 / share))
    changed = 0
    for key, record, _stamp in rows[round_number % step :: step]:
        updated = dict(record)
        updated["adjustment"] = round(float(updated.get("adjustment") or 0) + 1.0, 2)
        server.store.put("line_items", key, updated)
        changed += 1
    return changed


class _Round:
    """One full sync into a fresh mirror, then one refresh after the changes."""

    def __init__(self, server: SandboxServer, backend: DrChronoBackend, folder: Path) -> None:
        self.server = server
        self.backend = backend
        self.folder = folder

    def run(self, round_number: int) -> tuple[float, int, float, int, StepResult, int]:
        engine = make_engine(f"sqlite:///{self.folder / f'mirror{round_number}.db'}")
        create_schema(engine)
        sync = MirrorSync(
            self.backend,
            engine,
            Cipher([Fernet.generate_key()]),
            lambda: (0, UNBOUNDED_CALLS),
            share=1.0,
            calls_per_hour=UNBOUNDED_CALLS,
            refresh_interval=timedelta(0),  # refresh every kind on the next step
        )
        log = self.server.request_log
        try:
            before, started = len(log.entries()), time.perf_counter()
            full = sync.step()
            full_s, full_calls = time.perf_counter() - started, len(log.entries()) - before
            if full.stopped != "done":
                raise RuntimeError(f"the full sync stopped early: {full.stopped}")
            changed = _change_line_items(self.server, CHANGED_SHARE, round_number)
            before, started = len(log.entries()), time.perf_counter()
            refresh = sync.step()
            inc_s, inc_calls = time.perf_counter() - started, len(log.entries()) - before
        finally:
            engine.dispose()
        return full_s, full_calls, inc_s, inc_calls, refresh, changed


def run(ctx: RunContext) -> list[Record]:
    """Up to ``MAX_ROUNDS`` rounds (plus one warm-up) against one in-process sandbox."""
    patients = QUICK_PATIENTS if ctx.quick else PATIENTS
    ctx.progress(f"incremental_sync: sandbox with {patients} patients")
    config = SandboxConfig(
        clinic=ClinicConfig(patients=patients), rate_limit_per_hour=0, burst_per_second=0
    )
    server = SandboxServer(config).start()
    throttle = Throttle(UNBOUND_RATE_PER_S, UNBOUND_BURST)
    token = str(server.provider.issue_token(server.client_id, [])["access_token"])
    transport = EHRTransport(server.base_url, _StaticTokens(token), throttle=throttle)
    backend = DrChronoBackend(transport, practice_tz=ZoneInfo(server.store.timezone.key))
    line_items = server.store.count("line_items")
    rounds = min(ctx.runs, MAX_ROUNDS)
    full_s, full_calls, inc_s, inc_calls = [], [], [], []
    read, changed = 0, 0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sync-") as folder:
            one = _Round(server, backend, Path(folder))
            for number in range(1 + rounds):
                ctx.progress(f"incremental_sync: round {number + 1} of {1 + rounds}")
                f_s, f_calls, i_s, i_calls, refresh, changed = one.run(number)
                if number == 0:
                    continue  # warm-up: imports, connection pool, the sandbox's first pages
                full_s.append(f_s)
                full_calls.append(float(f_calls))
                inc_s.append(i_s)
                inc_calls.append(float(i_calls))
                read = refresh.records
    finally:
        transport.close()
        server.stop()
    changed_pages = math.ceil(changed / LINE_ITEMS_PAGE)
    note = (
        f"{patients} patients, {line_items:,} line items, {changed} changed per round "
        f"({changed_pages} pages of {LINE_ITEMS_PAGE}); the refresh read {read:,} records "
        "of all four kinds (what changed since yesterday)"
    )
    return [
        rec("incremental_sync.full.requests", full_calls, "calls", note=note),
        rec("incremental_sync.full.time", full_s, "s"),
        rec(
            "incremental_sync.refresh.requests",
            inc_calls,
            "calls",
            target=changed_pages + CONSTANT_REQUESTS,
            note=f"target: the {changed_pages} changed pages + {CONSTANT_REQUESTS}",
        ),
        exact_record("incremental_sync.changed_pages", changed_pages, "pages"),
        rec(
            "incremental_sync.refresh.time",
            inc_s,
            "s",
            baseline=("incremental_sync.full.time", full_s),
            target=TARGET_TIME_RATIO,
        ),
    ]
