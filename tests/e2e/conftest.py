"""End-to-end fixtures: the real app (``streamlit run Home.py``) and Debian's Chromium.

Each module gets a fresh app process on a free loopback port with its own data directory, in
demo mode (embedded sandbox EHR). Screenshots go to ``artifacts/screenshots/`` (git-ignored:
the clinic is synthetic, but screenshots of patient screens are never committed).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 90.0
ADMIN_PASSWORD = "correct horse battery staple 9"
DEMO_PATIENTS = 80


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running app in demo mode; yields its base URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path_factory.mktemp("app-data")
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "APP_BASE_URL": url,
        "SANDBOX_PATIENTS": str(DEMO_PATIENTS),
        "LOG_LEVEL": "DEBUG",
    }
    for name in ("DATABASE_URL", "DRCHRONO_CLIENT_ID", "DRCHRONO_CLIENT_SECRET"):
        env.pop(name, None)
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "Home.py",
                "--server.headless", "true", "--server.address", "127.0.0.1",
                "--server.port", str(port), "--browser.gatherUsageStats", "false",
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    if requests.get(f"{url}/api/health", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server_log(app_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's combined stdout/stderr log file."""
    candidates = sorted(tmp_path_factory.getbasetemp().glob("app-data*/server.log"))
    return candidates[-1]


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(chromium_browser: Browser) -> Iterator[Page]:
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot for a human to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
