"""Billing in Chromium: sign up the first admin, connect the EHR, sync the mirror from the page,
then click a bar and see the line-item table narrow to it (what AppTest cannot do).

Screenshots go to artifacts/screenshots/billing-*.png for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN_PASSWORD, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SYNC_TIMEOUT_MS = 90_000
HOVER_SETTLE_MS = 400
_COUNT = re.compile(r"^([\d,]+) line items")


def _wait_for_app(page: Page) -> None:
    """Wait until the script run finished and no placeholder skeleton is left on screen."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        """() => {
            const status = document.querySelector('[data-testid="stStatusWidget"]');
            const running = status && status.innerText.includes('Running');
            return !running && !document.querySelector('[data-testid="stSkeleton"]');
        }""",
        timeout=SYNC_TIMEOUT_MS,
    )
    page.wait_for_timeout(800)  # let charts finish their first paint


def _line_item_count(page: Page) -> int:
    text = page.get_by_text(_COUNT).first.inner_text()
    match = _COUNT.match(text)
    assert match, text
    return int(match.group(1).replace(",", ""))


def _sign_up_and_connect(page: Page, app_url: str) -> None:
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_label("Repeat the password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Create administrator").click()
    expect(page.get_by_role("heading", name="Today")).to_be_visible()
    page.get_by_role("link", name="Connect the EHR").click()
    page.wait_for_url("**/o/authorize/**")
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url("**/settings")


def test_clicking_a_bar_filters_the_line_items(tab: Page, app_url: str, server_log: Path) -> None:
    page = tab
    _sign_up_and_connect(page, app_url)
    page.goto(f"{app_url}/billing")
    expect(page.get_by_role("heading", name="Billing")).to_be_visible()
    _wait_for_app(page)
    sync = page.get_by_role("button", name="Sync now")
    if page.get_by_text("No billing data has been synced yet").count():
        shot(page, "billing-01-empty")
        sync.click()
        expect(page.get_by_text(re.compile(r"^Sync "))).to_be_visible(timeout=SYNC_TIMEOUT_MS)
    expect(page.get_by_text("Days in A/R")).to_be_visible(timeout=SYNC_TIMEOUT_MS)
    _wait_for_app(page)
    expect(page.get_by_text(re.compile(r"^Data as of"))).to_be_visible()
    shot(page, "billing-02-dashboard")
    before = _line_item_count(page)

    # The payer-mix chart: click its longest "Charges" bar (the top one).
    chart = page.locator('[data-testid="stPlotlyChart"]').nth(3)
    chart.scroll_into_view_if_needed()
    expect(chart.get_by_text("Payer mix")).to_be_visible()
    bars = chart.locator("g.trace.bars").last.locator("g.point path")
    box = bars.last.bounding_box()
    assert box is not None
    # Plotly's drag layer sits over the bars: point at the bar (Plotly selects what is
    # hovered, and hovering is throttled), then click there, as a person would.
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_timeout(HOVER_SETTLE_MS)
    page.mouse.click(x, y)
    expect(page.get_by_text(re.compile(r"^Selected on the charts: payer "))).to_be_visible()
    _wait_for_app(page)
    after = _line_item_count(page)
    shot(page, "billing-03-drilldown")
    assert 0 < after < before

    page.get_by_role("button", name="Clear selection").click()
    expect(page.get_by_text(re.compile(r"^Selected on the charts"))).to_have_count(0)
    _wait_for_app(page)
    assert _line_item_count(page) == before
    assert "Traceback" not in server_log.read_text()
