"""Cold start: ``streamlit run Home.py`` until ``GET /api/health`` answers 200.

Each run is a new process on a free loopback port with a new, empty data directory in demo mode
(no DrChrono client id, so the embedded sandbox and generated keys; SQLite under DATA_DIR), the
way a first start on a fresh machine goes: interpreter and Streamlit start-up, importing the
app, migrating the new database and generating the demo keys. The demo clinic (1,500 patients)
is generated in the background from the app's lifespan, so health answers (EHR "starting")
before it is ready; that generation takes about 20 s more on this machine. Disk caches are warm after the first run; the full mode's warm-up round keeps
that out of the figure (--quick skips it to save a start).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.harness import Record, RunContext, interleaved
from benchmarks.harness import make_record as rec

ROOT = Path(__file__).resolve().parents[1]
# Longest a start may take before the run is abandoned as failed.
START_TIMEOUT_S = 120.0
# How often the health route is polled, and how long one poll may take.
POLL_INTERVAL_S = 0.05
POLL_TIMEOUT_S = 2.0
# How long the app gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 15.0
# Environment that would take the app out of demo mode, point it at another database or change
# the demo clinic's size: every start gets the defaults.
_DROPPED_ENV = frozenset(
    {
        "DATABASE_URL",
        "DRCHRONO_CLIENT_ID",
        "DRCHRONO_CLIENT_SECRET",
        "TOKEN_KEYS",
        "AUDIT_HMAC_KEY",
        "SANDBOX_SEED",
        "SANDBOX_PATIENTS",
    }
)


class ColdStartError(RuntimeError):
    """The app did not answer its health route in time (the tail of its log is attached)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", "Home.py",
        "--server.headless", "true", "--server.address", "127.0.0.1",
        "--server.port", str(port), "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/health", timeout=POLL_TIMEOUT_S).status_code == 200
    except requests.RequestException:
        return False


def start_once() -> None:
    """Start the app in a fresh data directory, wait for a healthy answer, stop it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as folder:
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env |= {"DATA_DIR": folder, "APP_BASE_URL": url}
        log_path = Path(folder) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                _command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                deadline = time.monotonic() + START_TIMEOUT_S
                while not _healthy(url):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        tail = log_path.read_text(errors="replace")[-2000:]
                        raise ColdStartError(f"the app did not become healthy:\n{tail}")
                    time.sleep(POLL_INTERVAL_S)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def run(ctx: RunContext) -> list[Record]:
    """Median time from ``streamlit run`` to a 200 from the health route."""
    ctx.progress(f"cold start: {ctx.runs} starts of the app in demo mode")
    warmup = 0 if ctx.quick else 1
    times = interleaved({"start": start_once}, ctx.runs, warmup=warmup)["start"]
    return [
        rec(
            "cold_start.health_200",
            times,
            "s",
            note="fresh DATA_DIR each start, demo mode (the demo clinic is generated in the "
            f"background; health answers meanwhile), SQLite; polled every {POLL_INTERVAL_S} s",
        )
    ]
