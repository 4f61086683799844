"""The benchmarks' own DrChrono sandbox, served from a child process on a loopback port.

The sandbox is the "remote" EHR of the benchmarks, so it gets a process (and, on a 2-core
machine, a core) of its own: served from a thread of the measuring process it would share the
GIL with the client being measured, and the server's JSON encoding would be charged to whichever
client variant happened to wait on it. The child generates the clinic, starts ``SandboxServer``
with both rate limits off, issues one all-scope token and answers a few commands over a pipe
(set the rate limits, read its call count, record a listing and replay it (``benchmarks.replay``),
stop). The token only travels over that pipe.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from types import TracebackType
from typing import Any

from benchmarks.replay import ReplayServer, record_pages
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer

# Seconds to wait for the child to generate a ~50k-line clinic and start serving; generation
# takes ~15 s on the 2-core reference machine.
START_TIMEOUT_S = 180.0
# Seconds a command (or the shutdown) may take before the child is considered stuck; recording
# a 200-page listing from the sandbox takes the longest.
COMMAND_TIMEOUT_S = 600.0
# Seconds the child gets to shut down before it is terminated.
STOP_TIMEOUT_S = 30.0


class SandboxProcessError(RuntimeError):
    """The child sandbox did not start or did not answer."""


@dataclass(frozen=True)
class _Ready:
    base_url: str
    token: str
    records: dict[str, int]


def _serve(conn: Connection, clinic: ClinicConfig) -> None:
    """The child's main: serve until told to stop (runs in the spawned process)."""
    config = SandboxConfig(clinic=clinic, rate_limit_per_hour=0, burst_per_second=0)
    server = SandboxServer(config).start()
    # The clinic is millions of long-lived objects: left to the cyclic collector, every full
    # collection rescans them all and stalls a request for up to seconds.
    gc.collect()
    gc.freeze()
    replay: ReplayServer | None = None
    try:
        token = str(server.provider.issue_token(server.client_id, [])["access_token"])
        counts = {name: server.store.count(name) for name in server.store.resources()}
        conn.send(_Ready(server.base_url, token, counts))
        while True:
            command, *args = conn.recv()
            if command == "limits":
                server.limiter.per_hour, server.limiter.per_second = args
                server.limiter.reset()
                conn.send(True)
            elif command == "used":
                conn.send(server.limiter.used_this_hour(server.client_id))
            elif command == "replay" and replay is None:
                pages, records = record_pages(server.base_url, args[0], token)
                replay = ReplayServer(pages, server.base_url, token).start()
                conn.send((replay.base_url, len(pages), records))
            else:
                break
    finally:
        if replay is not None:
            replay.stop()
        server.stop()
        conn.close()


class SandboxProcess:
    """A sandbox serving ``clinic`` from a child process; a context manager.

    After ``start()``: ``base_url``, ``token`` (all scopes) and ``records`` (rows per resource).
    """

    def __init__(self, clinic: ClinicConfig) -> None:
        self._clinic = clinic
        self._conn: Connection | None = None
        self._process: SpawnProcess | None = None
        self.base_url = ""
        self.token = ""
        self.records: dict[str, int] = {}

    def start(self) -> SandboxProcess:
        """Spawn the child and wait until it serves (``SandboxProcessError`` otherwise)."""
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, self._clinic), name="benchmark-sandbox", daemon=True
        )
        self._process.start()
        child.close()
        self._conn = parent
        if not parent.poll(START_TIMEOUT_S):
            self.stop()
            raise SandboxProcessError("the sandbox process did not start in time")
        ready = parent.recv()
        self.base_url, self.token, self.records = ready.base_url, ready.token, ready.records
        return self

    def _ask(self, *command: object) -> Any:
        if self._conn is None:
            raise SandboxProcessError("the sandbox process is not running")
        self._conn.send(command)
        if not self._conn.poll(COMMAND_TIMEOUT_S):
            raise SandboxProcessError("the sandbox process did not answer")
        return self._conn.recv()

    def set_limits(self, per_hour: int, per_second: int) -> None:
        """Set the sandbox's rate limits (0 = off) and forget the calls counted so far."""
        self._ask("limits", per_hour, per_second)

    def calls_this_hour(self) -> int:
        """API calls the sandbox counted for our client in the current hourly window."""
        return int(self._ask("used"))

    def replay(self, first_path: str) -> tuple[str, int, int]:
        """Record every page of the listing at ``first_path`` and serve the recording.

        Returns the replay's base URL (same token), the pages and the records recorded.
        """
        base_url, pages, records = self._ask("replay", first_path)
        return str(base_url), int(pages), int(records)

    def stop(self) -> None:
        """Tell the child to stop and wait for it (terminating it if it hangs)."""
        if self._conn is not None:
            with contextlib.suppress(OSError):  # the child may be gone already
                self._conn.send(("stop",))
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(STOP_TIMEOUT_S)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(STOP_TIMEOUT_S)
            self._process = None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
