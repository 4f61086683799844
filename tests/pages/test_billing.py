"""The Billing page against the demo clinic: KPI tiles and charts from the synced mirror for
admin and billing, refusal (audited) for the other roles, empty states, the admin's "Sync now",
and the purpose-stated export that writes an EXPORT audit row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ehr.analytics import billing as kpi
from ehr.services import accounts, mirror
from ehr.services.accounts import SignedInSession
from ehr.services.billing_export import BILLING_PURPOSE_CATEGORIES
from ehr.services.gateway import Gateway
from storage import audit_report
from storage import mirror as stored
from tests.pages.conftest import PASSWORD, ROLES, caller_of, connect_demo_ehr, sign_in
from ui import billing_view, wiring
from ui.session import TEST_TOKEN_KEY

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/billing.py"
# The 60-patient demo clinic syncs in well under 100 requests (newest-first windows).
SYNC_REQUESTS = 300
TILES = {
    "Charges",
    "Payments",
    "Adjustments",
    "Net collection rate",
    "Days in A/R",
    "Denial rate",
    "A/R over 90 days",
}
CHARTS = 7
EXPORT_FORM = "FormSubmitter:billing.export-Prepare CSV export"
STATEMENT = "Month-end reconciliation with the Aetna remittances"


def _environment(data_dir: Path, env: pytest.MonkeyPatch) -> dict[str, SignedInSession]:
    env.setenv("DATA_DIR", str(data_dir))
    env.setenv("SANDBOX_PATIENTS", "60")
    env.setenv("SYNC_INTERVAL_MINUTES", "0")
    for name in ("DATABASE_URL", "DRCHRONO_CLIENT_ID", "DRCHRONO_CLIENT_SECRET"):
        env.delenv(name, raising=False)
    wiring.reset()
    store = wiring.account_store()
    accounts.create_first_admin(store, "admin", PASSWORD)
    admin = caller_of(sign_in("admin"))
    for role in ROLES[1:]:
        accounts.create_user(store, admin, role.replace("_", ""), PASSWORD, role)
    sessions = {r: sign_in("admin" if r == "admin" else r.replace("_", "")) for r in ROLES}
    connect_demo_ehr(sessions["admin"])
    return sessions


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SignedInSession]]:
    """A demo app, one session per role, the EHR connected and the billing mirror synced."""
    with pytest.MonkeyPatch.context() as env:
        sessions = _environment(tmp_path_factory.mktemp("billing") / "data", env)
        try:
            result = mirror.run_sync_step(reader_of(sessions), max_requests=SYNC_REQUESTS)
            assert result.stopped == "done", result
            yield sessions
        finally:
            wiring.reset()


@pytest.fixture
def unsynced(tmp_path: Path) -> Iterator[dict[str, SignedInSession]]:
    """A fresh demo app with the EHR connected and nothing synced yet."""
    with pytest.MonkeyPatch.context() as env:
        try:
            yield _environment(tmp_path / "data", env)
        finally:
            wiring.reset()


def reader_of(sessions: dict[str, SignedInSession]) -> Gateway:
    """A separate admin gateway: what the mirror holds, not what the page kept."""
    return wiring.new_gateway(caller_of(sessions["admin"]))


def open_billing(session: SignedInSession) -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.session_state[TEST_TOKEN_KEY] = session.token
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def rows(**filters) -> list:
    return audit_report.query(wiring.app_engine(), limit=5000, **filters)


def tiles(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def expected_filters(today: date, **dimensions) -> kpi.BillingFilters:
    start, end = billing_view.default_range(today)
    return kpi.BillingFilters(start, end, **dimensions)


def practice_today() -> date:
    return datetime.now(wiring.app_settings().practice_timezone).date()


def kpi_data(sessions) -> kpi.BillingData:
    gw = reader_of(sessions)
    frames = mirror.load_billing_frames(gw)
    visits = mirror.load_schedule_frame(gw)
    return kpi.billing_data(frames.line_items, frames.transactions, frames.patient_payments, visits)


# --- who may see it -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "billing"])
def test_billing_roles_see_tiles_charts_and_line_items(clinic, role):
    at = open_billing(clinic[role])
    assert at.title[0].value == "Billing"
    shown = tiles(at)
    assert set(shown) == TILES
    expected = kpi.charges(kpi_data(clinic), expected_filters(practice_today()))
    assert expected.cents > 0
    assert shown["Charges"] == billing_view.money(expected.cents, whole=True)
    for label in TILES - {"Charges", "Payments", "Adjustments"}:
        assert shown[label] != "—", label  # the demo clinic has enough data for every ratio
    helps = {m.label: m.help for m in at.metric}
    assert "Date basis: service date" in helps["Charges"]
    assert "÷" in helps["Days in A/R"]
    assert any(c.value.startswith("Data as of") for c in at.caption)
    assert len(at.get("plotly_chart")) == CHARTS
    detail = next(df.value for df in at.dataframe if "Line item" in df.value.columns)
    assert len(detail) > 0
    assert not {"patient_id", "Patient", "name"} & set(detail.columns)


@pytest.mark.parametrize("role", ["clinician", "front_desk"])
def test_other_roles_are_refused_and_the_refusal_is_audited(clinic, role):
    at = open_billing(clinic[role])
    assert any("does not allow" in e.value for e in at.error)
    assert not at.metric
    username = role.replace("_", "")
    denied = rows(user=username, outcome="DENIED", resource_id="billing")
    assert [(r.role, r.resource_type) for r in denied] == [(role, "page")]
    assert not [r for r in rows(user=username) if r.data_category == "billing"]


def test_kept_data_is_reused_until_the_mirror_changes_and_every_view_is_audited(clinic):
    before = len(rows(user="billing"))
    at = open_billing(clinic["billing"])
    at.run()
    seen = [r.resource_type for r in rows(user="billing")[before:]]
    assert seen.count("billing_mirror") == 1, "the joined data is built once per mirror version"
    assert seen.count("schedule_mirror") == 1
    assert seen.count("billing_mirror_version") == 2, "each view is audited"


def _charge_line_today(amount: int) -> None:
    """Store one more line item, serviced today, as a sync would (a copy under a new id)."""
    engine, cipher = wiring.app_engine(), wiring.cipher()
    line = dict(next(r for r in stored.load_rows(engine, cipher, "line_item") if r.get("billed")))
    today = practice_today().isoformat()
    line.update(id=type(line["id"])(987_654_321), service_date=today, posted_date=today)
    line.update(billed=amount, price=amount)
    state = stored.load_state(engine, cipher, "line_item")
    stored.commit_page(engine, cipher, state, rows=[line], now=datetime.now(UTC))


def _monthly_chart(at: AppTest) -> str:
    return str(at.get("plotly_chart")[0].proto.spec)


def test_kept_views_are_per_session_and_rebuilt_when_a_sync_changes_the_mirror(unsynced):
    result = mirror.run_sync_step(reader_of(unsynced), max_requests=SYNC_REQUESTS)
    assert result.stopped == "done", result
    first = open_billing(unsynced["billing"])
    charges, chart = tiles(first)["Charges"], _monthly_chart(first)
    loads = [r.resource_type for r in rows(user="billing")].count("billing_mirror")

    # A second browser session builds its own (audited) copy rather than reading the first's.
    admin_loads = [r.resource_type for r in rows(user="admin")].count("billing_mirror")
    second = open_billing(unsynced["admin"])
    assert [r.resource_type for r in rows(user="admin")].count("billing_mirror") == admin_loads + 1
    assert tiles(second)["Charges"] == charges

    _charge_line_today(1_234_567)
    expected = kpi.charges(kpi_data(unsynced), expected_filters(practice_today()))
    for at in (first, second):
        at.run()
        assert not at.exception, at.exception
        assert tiles(at)["Charges"] == billing_view.money(expected.cents, whole=True) != charges
        assert _monthly_chart(at) != chart, "the kept figures were rebuilt"
    assert [r.resource_type for r in rows(user="billing")].count("billing_mirror") == loads + 1


# --- filters and empty states ---------------------------------------------------------------


def test_a_payer_filter_narrows_the_tiles(clinic):
    data = kpi_data(clinic)
    today = practice_today()
    payer = str(kpi.payer_mix(data, expected_filters(today)).frame["payer"].iloc[0])
    at = open_billing(clinic["billing"])
    at.sidebar.multiselect(key="billing.payers").select(payer).run()
    assert not at.exception, at.exception
    narrowed = kpi.charges(data, expected_filters(today, payers=frozenset({payer})))
    assert tiles(at)["Charges"] == billing_view.money(narrowed.cents, whole=True)
    detail = next(df.value for df in at.dataframe if "Line item" in df.value.columns)
    assert set(detail["Payer"]) == {payer}


def test_an_empty_date_range_shows_the_empty_state(clinic):
    at = open_billing(clinic["admin"])
    # Years before the demo clinic's history (and within the picker's ten-year reach).
    start = practice_today() - timedelta(days=4 * 365)
    at.sidebar.date_input(key="billing.range").set_value((start, start + timedelta(days=30)))
    at.run()
    assert not at.exception, at.exception
    assert any("No billing activity" in i.value for i in at.info)
    assert not at.metric
    assert not at.get("plotly_chart")


def test_an_empty_mirror_is_explained_and_an_admin_can_sync_it(unsynced):
    at = open_billing(unsynced["billing"])
    assert any("No billing data has been synced yet" in i.value for i in at.info)
    assert any("Ask an administrator" in c.value for c in at.caption)
    assert "billing.sync_now" not in _keys(at)

    at = open_billing(unsynced["admin"])
    assert any("No billing data has been synced yet" in i.value for i in at.info)
    assert any("requests an hour" in c.value for c in at.caption)
    at.button(key="billing.sync_now").click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Sync up to date") for s in at.success), texts(at.success)
    assert set(tiles(at)) == TILES
    steps = [r for r in rows(user="admin") if r.resource_type == "mirror_sync"]
    assert any(json.loads(r.details).get("max_requests") == billing_view.SYNC_STEP_REQUESTS
               for r in steps)  # fmt: skip


def _keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


# --- export ---------------------------------------------------------------------------------


def test_export_needs_a_purpose_and_writes_an_export_row(clinic):
    at = open_billing(clinic["billing"])
    at.button(key=EXPORT_FORM).click().run()
    assert any("Choose a purpose" in e.value for e in at.error)
    assert any("at least 10 characters" in e.value for e in at.error)
    assert not rows(user="billing", action="EXPORT")

    category = next(iter(BILLING_PURPOSE_CATEGORIES))
    at.selectbox(key="billing.export.category").set_value(category)
    at.text_area(key="billing.export.statement").input("too short")
    at.button(key=EXPORT_FORM).click().run()
    assert any("at least 10 characters" in e.value for e in at.error)
    assert not rows(user="billing", action="EXPORT")

    at.text_area(key="billing.export.statement").input(STATEMENT)
    at.button(key=EXPORT_FORM).click().run()
    assert not at.exception, at.exception
    assert not at.error
    shown = next(df.value for df in at.dataframe if "Line item" in df.value.columns)
    (export,) = rows(user="billing", action="EXPORT")
    details = json.loads(export.details)
    assert export.outcome == "SUCCESS"
    assert export.resource_type == "billing_detail"
    assert details["purpose_category"] == category.value
    assert details["rows"] == len(shown)
    assert len(details["purpose_digest"]) == 32
    assert STATEMENT not in export.details
    assert any(b.label.startswith("Download") for b in at.get("download_button"))
