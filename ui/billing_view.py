"""Streamlit pieces of the Billing page: mirror loading, filters, KPI tiles, charts with
drill-down, and the sync panel (the line-item detail and its export: ``ui.billing_detail``).

**Caching.** ``billing_data`` joins the mirror's frames once; the result is kept in this
browser session's ``st.session_state`` (never ``st.cache_data``, which every session shares)
under ``billing.data``, tagged with the mirror's version, and rebuilt when a sync stores new
batches. So are the filter choices, the tiles' values and the built figures, each keyed by the
version and what else it depends on (filters, names), so a rerun that changes none of them (a
chart selection, the export form) redraws without recomputing (``ui.mirror_cache``). Each view
still calls ``mirror.billing_mirror_version``, which is audited, so a view of kept data leaves
its audit row. Sign-out and user changes drop the session state (``ui.session``), taking the
kept data with it.

**Server-side aggregation.** Charts get the KPI module's small aggregate tables (a month, a
payer, a code per point); only the detail table lists line items, and it shows ids, dates,
codes and amounts, no names.

The pure helpers (``status_label``, ``money``) carry no Streamlit state and are unit-tested.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ehr.analytics import billing as kpi
from ehr.errors import EHRError
from ehr.models import ClaimStatus
from ehr.services import connection, mirror, practice
from ehr.services.gateway import Gateway
from ehr.services.mirror import MirrorVersion
from ui import billing_charts as charts
from ui import wiring
from ui.billing_charts import Selection
from ui.components import nav_link
from ui.mirror_cache import kept

__all__ = [
    "CLAIM_STATUS_LABELS",
    "LoadedBilling",
    "Names",
    "chart_grid",
    "clear_selections",
    "data_as_of",
    "default_range",
    "filter_sidebar",
    "has_activity",
    "kpi_tiles",
    "load",
    "money",
    "provider_names",
    "show_sync_message",
    "status_label",
    "sync_panel",
]

_DATA_KEY: Final = "billing.data"
_NAMES_KEY: Final = "billing.names"
_SELECTION_GENERATION_KEY: Final = "billing.selection_generation"
_SYNC_MESSAGE_KEY: Final = "billing.sync_message"
_CHOICES_KEY: Final = "billing.choices"
_ACTIVITY_KEY: Final = "billing.activity"
_TILES_KEY: Final = "billing.tiles"
_FIGURES_KEY: Final = "billing.figures"
# "Last 12 months" is the 365 days ending today (MGMA and AAFP quote 12-month figures).
DEFAULT_RANGE_DAYS: Final = 365
# "Sync now" runs small steps so the progress bar moves, and stops after a bounded total.
SYNC_STEP_REQUESTS: Final = 25
SYNC_NOW_STEPS: Final = 8
_CENTS: Final = 100
_TILES_PER_ROW: Final = 4

CLAIM_STATUS_LABELS: Final[Mapping[str, str]] = {
    ClaimStatus.INCOMPLETE_INFORMATION.value: "Incomplete information",
    ClaimStatus.IN_PROCESS_CLEARINGHOUSE.value: "In process (clearinghouse)",
    ClaimStatus.REJECTED_CLEARINGHOUSE.value: "Rejected by clearinghouse",
    ClaimStatus.FORM_SENT.value: "Form sent",
    ClaimStatus.IN_PROCESS_PAYER.value: "In process (payer)",
    ClaimStatus.PAYER_ACKNOWLEDGED.value: "Acknowledged by payer",
    ClaimStatus.REJECTED_PAYER.value: "Rejected by payer",
    ClaimStatus.PAID_IN_FULL.value: "Paid in full",
    ClaimStatus.PARTIALLY_PAID.value: "Partially paid",
    ClaimStatus.COORDINATION_OF_BENEFITS.value: "Coordination of benefits",
    ClaimStatus.ERA_RECEIVED.value: "ERA received",
    ClaimStatus.ERA_DENIED.value: "ERA denied",
}


def status_label(value: object) -> str:
    """A claim status in words; a status this app does not know is shown as sent upstream."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "Not billed"
    text = str(value)
    return CLAIM_STATUS_LABELS.get(text, f"{text} (unrecognised)")


def money(cents: float | None, *, whole: bool = False) -> str:
    """Cents as dollars for a tile or caption: ``$1,234.50`` (``$1,235`` when ``whole``)."""
    if cents is None or pd.isna(cents):
        return "—"
    return f"${cents / _CENTS:,.0f}" if whole else f"${cents / _CENTS:,.2f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def default_range(today: date) -> tuple[date, date]:
    """The last 12 months: the 365 days ending ``today``."""
    return today - timedelta(days=DEFAULT_RANGE_DAYS - 1), today


# ----------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedBilling:
    """The joined billing data of one mirror version, kept for the session."""

    key: tuple[tuple[str, int, int], ...]
    data: kpi.BillingData
    visit_ids: npt.NDArray[np.object_]  # appointment id per visit position (detail's visit)


def load(gw: Gateway) -> tuple[MirrorVersion, LoadedBilling | None]:
    """The mirror's version and, unless it is empty, the joined data (kept per version)."""
    version = mirror.billing_mirror_version(gw)
    if version.is_empty():
        return version, None

    def build() -> LoadedBilling:
        with st.spinner("Loading the billing mirror…"):
            frames = mirror.load_billing_frames(gw)
            visits = mirror.load_schedule_frame(gw).reset_index(drop=True)
            data = kpi.billing_data(
                frames.line_items, frames.transactions, frames.patient_payments, visits
            )
        return LoadedBilling(version.key, data, np.asarray(visits["id"], dtype=object))

    return version, kept(_DATA_KEY, version.key, build)


@dataclass(frozen=True)
class Names:
    """Provider and office names from the EHR (not PHI); empty when it cannot be reached."""

    doctors: Mapping[int, str]
    offices: Mapping[int, str]

    def doctor(self, doctor_id: int) -> str:
        """The provider's name, else "Provider <id>"."""
        return self.doctors.get(doctor_id, f"Provider {doctor_id}")

    def office(self, office_id: int) -> str:
        """The office's name, else "Office <id>"."""
        return self.offices.get(office_id, f"Office {office_id}")


def provider_names(gw: Gateway) -> Names:
    """Names for the provider and office filters, fetched once per session.

    Labels only: when the EHR cannot be reached the page falls back to ids, so this is the
    one place an ``EHRError`` is not shown as an error (the analytics come from the mirror).
    """
    kept = st.session_state.get(_NAMES_KEY)
    if isinstance(kept, Names):
        return kept
    try:
        doctors = {d.id: d.display_name for d in practice.list_doctors(gw).items}
        offices = {o.id: o.name or f"Office {o.id}" for o in practice.list_offices(gw).items}
    except EHRError:
        return Names({}, {})  # not kept: the next view tries again
    names = Names(doctors, offices)
    st.session_state[_NAMES_KEY] = names
    return names


# ----------------------------------------------------------------------------- sync


def sync_panel(gw: Gateway, *, is_admin: bool, connected: bool, empty: bool) -> None:
    """The mirror's sync state: an empty-state explanation, and "Sync now" for admins."""
    if empty:
        st.info(
            "No billing data has been synced yet. Billing analytics read a local encrypted "
            "copy of the EHR's billing records, filled by a background sync within the "
            "hourly request budget."
        )
    if not is_admin:
        if empty:
            st.caption("Ask an administrator to run the first sync from this page.")
        return
    if not connected:
        st.caption("Connect the EHR before syncing.")
        nav_link("Connect the EHR", "/ehr-auth/connect")
        return
    summary = connection.connection_summary(wiring.connector())
    share = gw.sync_budget_share
    left = max(0, summary.calls_per_hour - summary.calls_this_hour)
    st.caption(
        f"The EHR allows {summary.calls_per_hour} requests an hour. The sync uses at most "
        f"{share:.0%} of them and pauses until the next hour once that share is spent, so "
        f"patient search and the schedule keep working. One click runs at most "
        f"{SYNC_STEP_REQUESTS * SYNC_NOW_STEPS} requests; {left} are left this hour."
    )
    if st.button("Sync now", icon=":material/sync:", key="billing.sync_now", type="primary"):
        st.session_state[_SYNC_MESSAGE_KEY] = _run_sync(gw)
        st.rerun()


def show_sync_message() -> None:
    """The outcome of the "Sync now" run just before this rerun, once."""
    message = st.session_state.pop(_SYNC_MESSAGE_KEY, None)
    if isinstance(message, str):
        st.success(message)


def _run_sync(gw: Gateway) -> str:
    """Bounded sync steps with a progress bar; returns the outcome line for the next view."""
    bar = st.progress(0.0, text="Starting the sync…")
    result = None
    for _ in range(SYNC_NOW_STEPS):
        result = mirror.run_sync_step(gw, max_requests=SYNC_STEP_REQUESTS)
        status = mirror.sync_status(gw)
        bar.progress(min(1.0, status.fraction), text=_progress_text(status))
        if result.stopped != "max_requests":
            break
    status = mirror.sync_status(gw)
    outcome = result.message if result is not None else "not run"
    return f"Sync {outcome}: {status.records} records, {status.requests} requests used so far."


def _progress_text(status: Any) -> str:
    eta = status.estimated_time_left
    if eta is None:
        left = "time left unknown"
    elif eta <= timedelta(0):
        left = "done"
    else:
        left = f"about {max(1, round(eta.total_seconds() / 60))} min of budget left to go"
    return f"{status.records} records · {status.requests} requests used · {left}"


def data_as_of(version: MirrorVersion, tz: tzinfo) -> str:
    """ "Data as of …" for the analytics, in the practice's time zone."""
    if version.synced_at is None:
        return "Data as of: the sync has not finished every record type yet."
    local = version.synced_at.astimezone(tz)
    return f"Data as of {local:%H:%M} on {local:%d %b %Y} (local mirror of the EHR)."


# ----------------------------------------------------------------------------- filters


def _choices(data: kpi.BillingData) -> dict[str, list[Any]]:
    lines = data.line_items
    statuses = lines["claim_status"].dropna().astype(str).unique()
    return {
        "doctors": sorted(int(d) for d in lines["doctor_id"].dropna().unique()),
        "offices": sorted(int(o) for o in lines["office_id"].dropna().unique()),
        "payers": sorted(str(p) for p in lines["payer"].dropna().unique()),
        "codes": sorted(str(c) for c in lines["code"].dropna().unique()),
        "statuses": sorted(statuses, key=status_label),
    }


def filter_sidebar(loaded: LoadedBilling, names: Names, today: date) -> kpi.BillingFilters | None:
    """Date range and dimension filters in the sidebar; None while the range is incomplete."""
    choices = kept(_CHOICES_KEY, loaded.key, lambda: _choices(loaded.data))
    with st.sidebar:
        st.subheader("Billing filters")
        period = st.date_input(
            "Date range",
            value=default_range(today),
            key="billing.range",
            help="Charges count by service date, payments and adjustments by posted date.",
        )
        doctors = st.multiselect(
            "Provider", choices["doctors"], format_func=names.doctor, key="billing.doctors",
            placeholder="All providers",
        )  # fmt: skip
        offices = st.multiselect(
            "Office", choices["offices"], format_func=names.office, key="billing.offices",
            placeholder="All offices",
        )  # fmt: skip
        payers = st.multiselect(
            "Payer", choices["payers"], key="billing.payers", placeholder="All payers"
        )
        codes = st.multiselect(
            "CPT code", choices["codes"], key="billing.codes", placeholder="All codes"
        )
        statuses = st.multiselect(
            "Billing status", choices["statuses"], format_func=status_label,
            key="billing.statuses", placeholder="All statuses",
        )  # fmt: skip
    if not isinstance(period, Sequence) or len(period) != 2:
        st.info("Choose the end of the date range in the sidebar.")
        return None
    start, end = period
    return kpi.BillingFilters(
        start=start,
        end=end,
        doctor_ids=frozenset(doctors),
        office_ids=frozenset(offices),
        payers=frozenset(payers),
        cpt_codes=frozenset(codes),
        claim_statuses=frozenset(statuses),
    )


def has_activity(loaded: LoadedBilling, filters: kpi.BillingFilters) -> bool:
    """True when anything was serviced, paid or adjusted in the range under the filters."""
    return kept(_ACTIVITY_KEY, (loaded.key, filters), lambda: _active(loaded.data, filters))


def _active(data: kpi.BillingData, filters: kpi.BillingFilters) -> bool:
    billed, paid = kpi.charges(data, filters), kpi.payments(data, filters)
    adjusted = kpi.adjustments(data, filters).total
    counted = (billed, paid.insurance, paid.patient, adjusted)
    return any(amount.rows or amount.skipped for amount in counted)


# ----------------------------------------------------------------------------- tiles


def _help(name: str, extra: str = "") -> str:
    formula = kpi.KPI_FORMULAS[name]
    return f"{formula.formula}. Date basis: {formula.date_basis}.{extra}"


@dataclass(frozen=True)
class _Tiles:
    """The tiles as shown (label, value, help) and the notes under them."""

    tiles: tuple[tuple[str, str, str], ...]
    skipped: int
    unknown_statuses: int


def kpi_tiles(loaded: LoadedBilling, filters: kpi.BillingFilters) -> None:
    """Seven tiles, each with its formula and date basis as help text."""
    shown = kept(_TILES_KEY, (loaded.key, filters), lambda: _tiles(loaded.data, filters))
    # Two rows: money first, then the ratios; seven in a row truncate their values.
    for row in (shown.tiles[:_TILES_PER_ROW], shown.tiles[_TILES_PER_ROW:]):
        for column, (label, value, help_text) in zip(st.columns(_TILES_PER_ROW), row, strict=False):
            column.metric(label, value, help=help_text, border=True)
    if shown.skipped:
        st.caption(f"{shown.skipped} money rows had no amount and are left out of the sums.")
    if shown.unknown_statuses:
        st.warning(
            f"{shown.unknown_statuses} line items have a claim status this app does not "
            "recognise; they count as submitted, not denied."
        )


def _tiles(data: kpi.BillingData, filters: kpi.BillingFilters) -> _Tiles:
    billed = kpi.charges(data, filters)
    paid = kpi.payments(data, filters)
    adjusted = kpi.adjustments(data, filters)
    net = kpi.net_collection_rate(data, filters)
    days = kpi.days_in_ar(data, filters)
    denials = kpi.denial_rate(data, filters)
    aged = kpi.ar_over_90(data, filters)
    tiles = [
        ("Charges", money(billed.cents, whole=True), _help("charges")),
        ("Payments", money(paid.total_cents, whole=True), _help("payments")),
        (
            "Adjustments",
            money(adjusted.total.cents, whole=True),
            _help("adjustments", f" Contractual: {money(adjusted.contractual.cents)}."),
        ),
        (
            "Net collection rate",
            _percent(net.value),
            _help("net_collection_rate", f" Window: {net.start:%d %b %Y} – {net.end:%d %b %Y}."),
        ),
        (
            "Days in A/R",
            "—" if days.days is None else f"{days.days:.1f}",
            _help(
                "days_in_ar", f" A/R {money(days.ar_cents)}, credits {money(days.credit_cents)}."
            ),
        ),
        (
            "Denial rate",
            _percent(denials.by_count.value),
            _help("denial_rate", f" By dollars: {_percent(denials.by_dollars.value)}."),
        ),
        ("A/R over 90 days", _percent(aged.value), _help("ar_over_90")),
    ]
    skipped = billed.skipped + paid.skipped + adjusted.total.skipped
    return _Tiles(tuple(tiles), skipped, denials.unknown_statuses)


# ----------------------------------------------------------------------------- charts


def _generation() -> int:
    value = st.session_state.get(_SELECTION_GENERATION_KEY, 0)
    return value if isinstance(value, int) else 0


def clear_selections() -> None:
    """Drop every chart's selection (its widget key changes); an ``on_click`` callback."""
    st.session_state[_SELECTION_GENERATION_KEY] = _generation() + 1


def _chart(fig: go.Figure, name: str) -> Selection:
    event = st.plotly_chart(
        fig,
        key=f"billing.chart.{name}.{_generation()}",
        on_select="rerun",
        selection_mode=("points", "box"),
        config={"displaylogo": False},
    )
    return charts.selection_from_event(charts.select_fields(fig), event)


def chart_grid(loaded: LoadedBilling, filters: kpi.BillingFilters, names: Names) -> list[Selection]:
    """Every chart, two to a row; returns what is selected on each (empty when nothing)."""
    figures = kept(
        _FIGURES_KEY, (loaded.key, filters, names), lambda: _figures(loaded.data, filters, names)
    )
    selections = [_chart(figures[0][1], figures[0][0])]
    pairs = figures[1:]
    for index in range(0, len(pairs), 2):
        for column, (name, fig) in zip(st.columns(2), pairs[index : index + 2], strict=True):
            with column:
                selections.append(_chart(fig, name))
    st.caption(
        f"A/R as of {filters.end:%d %b %Y}, aged from the first-billed date (else the service "
        "date). Click a bar, or drag a box, to list its line items below."
    )
    return selections


def _figures(
    data: kpi.BillingData, filters: kpi.BillingFilters, names: Names
) -> list[tuple[str, go.Figure]]:
    """The monthly chart first, then the grid's charts in order."""
    aging = kpi.ar_aging(data, filters).frame
    figures: list[tuple[str, Callable[[], go.Figure]]] = [
        ("aging", lambda: charts.ar_aging_chart(aging)),
        ("aging_by_payer", lambda: charts.ar_by_payer_chart(aging)),
        ("payer_mix", lambda: charts.payer_mix_chart(kpi.payer_mix(data, filters).frame)),
        ("cpt", lambda: charts.top_cpt_chart(kpi.top_cpt_codes(data, filters).frame)),
        (
            "denials",
            lambda: charts.denials_chart(
                kpi.denials_by_month(data, filters).frame, CLAIM_STATUS_LABELS
            ),
        ),
        (
            "providers",
            lambda: charts.provider_chart(
                kpi.provider_productivity(data, filters).frame, names.doctors
            ),
        ),
    ]
    monthly = charts.monthly_totals_chart(kpi.monthly_totals(data, filters).frame)
    return [("monthly", monthly), *((name, build()) for name, build in figures)]
