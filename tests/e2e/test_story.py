"""The clinic's story in Chromium: first admin, connect the EHR through OAuth, use the app.

One browser walks the whole flow against the real app and its embedded sandbox, taking a
screenshot at each step (artifacts/screenshots/, looked at by a person; never committed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ehr.sandbox.clinic import ClinicConfig, generate_clinic
from tests.e2e.conftest import ADMIN_PASSWORD, DEMO_PATIENTS, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _wait_for_app(page: Page) -> None:
    """Wait until the script run finished and no placeholder skeleton is left on screen."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        """() => {
            const status = document.querySelector('[data-testid="stStatusWidget"]');
            const running = status && status.innerText.includes('Running');
            return !running && !document.querySelector('[data-testid="stSkeleton"]');
        }""",
        timeout=30_000,
    )
    page.wait_for_timeout(500)  # let charts finish their first paint


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

    # Settings shows the connection (the OAuth callback landed there).
    consent.get_by_role("link", name="Settings").click()
    expect(consent.get_by_role("heading", name="Settings")).to_be_visible()
    expect(consent.get_by_text("Refresh token now")).to_be_visible()
    _wait_for_app(consent)
    shot(consent, "05-settings")

    # Appointments: the day view of the demo clinic.
    consent.get_by_role("link", name="Appointments").click()
    expect(consent.get_by_role("heading", name="Appointments")).to_be_visible()
    expect(consent.get_by_text("Data as of")).to_be_visible()
    _wait_for_app(consent)
    shot(consent, "06-appointments")

    # Patients: search a surname that the demo clinic (same seed and size) contains.
    surname = _a_demo_surname()
    consent.get_by_role("link", name="Patients").click()
    expect(consent.get_by_role("heading", name="Patients")).to_be_visible()
    consent.get_by_label("Name", exact=True).fill(surname)
    consent.get_by_role("button", name="Search").click()
    expect(consent.locator('[data-testid="stDataFrame"]')).to_be_visible()
    _wait_for_app(consent)
    shot(consent, "07-patient-search")

    consent.get_by_role("link", name="Clinical").click()
    expect(consent.get_by_role("heading", name="Clinical")).to_be_visible()
    _wait_for_app(consent)
    shot(consent, "08-clinical")

    consent.get_by_role("button", name="Sign out").click()
    expect(consent.get_by_text("You are not signed in.")).to_be_visible()

    log_text = server_log.read_text()
    assert "Traceback" not in log_text
    assert surname not in log_text  # a searched name never reaches the server log
    assert "Bearer " not in log_text


def _a_demo_surname() -> str:
    """A last name from the demo clinic the app generated (same seed, size and day)."""
    clinic = generate_clinic(ClinicConfig(seed=7, patients=DEMO_PATIENTS))
    names = sorted(str(p["last_name"]) for p in clinic.tables["patients"].values())
    return names[len(names) // 2]
