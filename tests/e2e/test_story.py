"""The clinic's story in Chromium: first admin, connect the EHR through OAuth, use the app.

One browser walks the whole flow against the real app and its embedded sandbox, taking a
screenshot at each step (artifacts/screenshots/, looked at by a person; never committed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN_PASSWORD, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _wait_for_app(page: Page) -> None:
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')"
    )


def test_first_run_connect_and_today(tab: Page, app_url: str, server_log: Path) -> None:
    page = tab
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    shot(page, "01-first-run")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_label("Repeat the password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Create administrator").click()

    expect(page.get_by_role("heading", name="Today")).to_be_visible()
    expect(page.get_by_text("Connect the EHR to see today's schedule.")).to_be_visible()
    shot(page, "02-home-not-connected")

    page.get_by_role("link", name="Connect the EHR").click()
    consent = page  # same tab: the OAuth round trip comes back where it started
    consent.wait_for_url("**/o/authorize/**")
    shot(consent, "03-sandbox-consent")
    consent.get_by_label("Username").fill("demo")
    consent.get_by_label("Password").fill("demo")
    consent.get_by_role("button", name="Allow").click()
    consent.wait_for_url("**/settings")
    consent.goto(app_url)
    _wait_for_app(consent)
    expect(consent.get_by_text("Appointments today")).to_be_visible()
    expect(consent.get_by_text("Data as of")).to_be_visible()
    expect(consent.get_by_text("EHR connected")).to_be_visible()
    shot(consent, "04-home-connected")

    log_text = server_log.read_text()
    assert "Traceback" not in log_text
