"""Streamlit pieces of the Billing page: mirror loading, filters, KPI tiles, charts with
drill-down, the line-item detail with its export, and the sync panel.

**Caching.** ``billing_data`` joins the mirror's frames once; the result is kept in this
browser session's ``st.session_state`` (never ``st.cache_data``, which every session shares)
under ``billing.data``, tagged with the mirror's version, and rebuilt when a sync stores new
batches. Each view still calls ``mirror.billing_mirror_version``, which is audited, so a view
of kept data leaves its audit row. Sign-out and user changes drop the session state
(``ui.session``), taking the kept data with it.

**Server-side aggregation.** Charts get the KPI module's small aggregate tables (a month, a
payer, a code per point); only the detail table lists line items, and it shows ids, dates,
codes and amounts, no names.

The pure helpers (``detail_frame``, ``apply_selection``, ``status_label``, ``money``) carry
no Streamlit state and are unit-tested.
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
from ehr.analytics.billing_data import scoped
from ehr.errors import EHRError
from ehr.models import ClaimStatus
from ehr.services import billing_export, connection, mirror, practice
from ehr.services.billing_export import (
    BILLING_PURPOSE_CATEGORIES,
    EXPORT_COLUMNS,
    BillingExportPurpose,
    BillingPurposeCategory,
)
from ehr.services.gateway import Gateway
from ehr.services.mirror import MirrorVersion
from ui import billing_charts as charts
from ui import wiring
from ui.billing_charts import Selection
from ui.components import nav_link

__all__ = [
    "CLAIM_STATUS_LABELS",
    "DETAIL_ROWS_SHOWN",
    "LoadedBilling",
    "Names",
    "apply_selection",
    "chart_grid",
    "data_as_of",
    "default_range",
    "detail_frame",
    "detail_section",
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
# "Last 12 months" is the 365 days ending today (MGMA and AAFP quote 12-month figures).
DEFAULT_RANGE_DAYS: Final = 365
# A busy screen, not a report: the export holds every filtered row.
DETAIL_ROWS_SHOWN: Final = 1000
# "Sync now" runs small steps so the progress bar moves, and stops after a bounded total.
SYNC_STEP_REQUESTS: Final = 25
SYNC_NOW_STEPS: Final = 8
# The same bucket edges (days, inclusive) as ``ehr.analytics.billing``; a test checks the
# detail's buckets add up to the aging KPI.
_BUCKET_EDGES: Final = (30, 60, 90, 120)
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
    kept = st.session_state.get(_DATA_KEY)
    if isinstance(kept, LoadedBilling) and kept.key == version.key:
        return version, kept
    with st.spinner("Loading the billing mirror…"):
        frames = mirror.load_billing_frames(gw)
        visits = mirror.load_schedule_frame(gw).reset_index(drop=True)
        data = kpi.billing_data(
            frames.line_items, frames.transactions, frames.patient_payments, visits
        )
    loaded = LoadedBilling(version.key, data, np.asarray(visits["id"], dtype=object))
    st.session_state[_DATA_KEY] = loaded
    return version, loaded


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
    choices = _choices(loaded.data)
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


def has_activity(data: kpi.BillingData, filters: kpi.BillingFilters) -> bool:
    """True when anything was serviced, paid or adjusted in the range under the filters."""
    billed, paid = kpi.charges(data, filters), kpi.payments(data, filters)
    adjusted = kpi.adjustments(data, filters).total
    counted = (billed, paid.insurance, paid.patient, adjusted)
    return any(amount.rows or amount.skipped for amount in counted)


# ----------------------------------------------------------------------------- tiles


def _help(name: str, extra: str = "") -> str:
    formula = kpi.KPI_FORMULAS[name]
    return f"{formula.formula}. Date basis: {formula.date_basis}.{extra}"


def kpi_tiles(data: kpi.BillingData, filters: kpi.BillingFilters) -> None:
    """Seven tiles, each with its formula and date basis as help text."""
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
    # Two rows: money first, then the ratios; seven in a row truncate their values.
    for row in (tiles[:_TILES_PER_ROW], tiles[_TILES_PER_ROW:]):
        for column, (label, value, help_text) in zip(st.columns(_TILES_PER_ROW), row, strict=False):
            column.metric(label, value, help=help_text, border=True)
    skipped = billed.skipped + paid.skipped + adjusted.total.skipped
    if skipped:
        st.caption(f"{skipped} money rows had no amount and are left out of the sums.")
    if denials.unknown_statuses:
        st.warning(
            f"{denials.unknown_statuses} line items have a claim status this app does not "
            "recognise; they count as submitted, not denied."
        )


# ----------------------------------------------------------------------------- charts


def _generation() -> int:
    value = st.session_state.get(_SELECTION_GENERATION_KEY, 0)
    return value if isinstance(value, int) else 0


def _clear_selections() -> None:
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


def chart_grid(data: kpi.BillingData, filters: kpi.BillingFilters, names: Names) -> list[Selection]:
    """Every chart, two to a row; returns what is selected on each (empty when nothing)."""
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
    selections = [_chart(monthly, "monthly")]
    for index in range(0, len(figures), 2):
        for column, (name, build) in zip(st.columns(2), figures[index : index + 2], strict=True):
            with column:
                selections.append(_chart(build(), name))
    st.caption(
        f"A/R as of {filters.end:%d %b %Y}, aged from the first-billed date (else the service "
        "date). Click a bar, or drag a box, to list its line items below."
    )
    return selections


# ----------------------------------------------------------------------------- detail


def detail_frame(
    loaded: LoadedBilling, filters: kpi.BillingFilters, *, open_start: bool = False
) -> pd.DataFrame:
    """Line items under the filters with the columns of ``EXPORT_COLUMNS``.

    Serviced in the range, or (``open_start``) any time up to its end, as the A/R charts
    count them. ``ar_bucket`` is set for rows with an open (debit) balance, aged like
    ``ehr.analytics.billing.ar_aging``; money stays in integer cents.
    """
    columns = [
        "id", "visit", "service_date", "doctor_id", "office_id", "payer", "code", "quantity",
        "billed", "paid_total", "balance_ins", "balance_pt", "claim_status", "denied",
        "first_billed_date",
    ]  # fmt: skip
    rows = scoped(loaded.data.line_items, filters, "service_date", columns, open_start=open_start)
    visit = np.asarray(rows["visit"], dtype=np.intp)
    linked = visit >= 0
    visit_ids = np.full(len(rows), None, dtype=object)
    visit_ids[linked] = loaded.visit_ids[visit[linked]]
    insurer, patient = rows["balance_ins"], rows["balance_pt"]
    known = (insurer.notna() & patient.notna()).to_numpy()
    owing = known & ((insurer.fillna(0) > 0) | (patient.fillna(0) > 0)).to_numpy()
    since = rows["first_billed_date"].fillna(rows["service_date"])
    age = (pd.Timestamp(filters.end) - since).dt.days.to_numpy()
    codes = np.searchsorted(_BUCKET_EDGES, age, side="left")
    bucket = np.array(charts.AGING_BUCKETS, dtype=object)[np.minimum(codes, len(_BUCKET_EDGES))]
    frame = pd.DataFrame(
        {
            "line_item_id": rows["id"].to_numpy(),
            "visit_id": visit_ids,
            "service_date": rows["service_date"].to_numpy(),
            "provider_id": rows["doctor_id"].array,
            "office_id": rows["office_id"].array,
            "payer": rows["payer"].astype(str).to_numpy(),
            "cpt_code": rows["code"].astype("object").to_numpy(),
            "units": rows["quantity"].to_numpy(),
            "billed": rows["billed"].array,
            "paid": rows["paid_total"].array,
            "insurer_balance": insurer.array,
            "patient_balance": patient.array,
            "claim_status": rows["claim_status"].astype("object").to_numpy(),
            "denied": rows["denied"].to_numpy(),
            "ar_bucket": np.where(owing, bucket, None),
        }
    )
    return frame.sort_values(
        ["service_date", "line_item_id"], ascending=[False, True], ignore_index=True
    )


_FIELD_COLUMNS: Final[Mapping[str, str]] = {
    charts.PAYER: "payer",
    charts.BUCKET: "ar_bucket",
    charts.CODE: "cpt_code",
    charts.DOCTOR: "provider_id",
    charts.STATUS: "claim_status",
}


def _point_mask(detail: pd.DataFrame, point: Mapping[str, str]) -> pd.Series:
    mask = pd.Series(True, index=detail.index)
    for field, value in point.items():
        if field == charts.MONTH:
            mask &= detail["service_date"].dt.strftime("%Y-%m") == value
        elif field == charts.RESPONSIBILITY and value in {"insurer", "patient"}:
            column = "insurer_balance" if value == "insurer" else "patient_balance"
            mask &= (detail[column].fillna(0) > 0).astype(bool)
        elif field in _FIELD_COLUMNS:
            mask &= detail[_FIELD_COLUMNS[field]].astype(str) == value
        else:  # a field this table cannot match selects nothing, never everything
            mask &= False
    return mask


def apply_selection(detail: pd.DataFrame, selection: Selection) -> pd.DataFrame:
    """The rows matching any selected point (all rows when nothing is selected)."""
    if not selection:
        return detail
    mask = pd.Series(False, index=detail.index)
    for point in selection.points:
        mask |= _point_mask(detail, point)
    return detail[mask]


def _needs_open_start(selections: Sequence[Selection]) -> bool:
    aging_fields = {charts.BUCKET, charts.RESPONSIBILITY}
    return any(aging_fields & s.fields() for s in selections)


def _display(detail: pd.DataFrame, names: Names) -> pd.DataFrame:
    shown = detail.head(DETAIL_ROWS_SHOWN)
    dollars = {c: shown[c].astype("Float64") / _CENTS for c in billing_export.MONEY_COLUMNS}
    return pd.DataFrame(
        {
            "Line item": shown["line_item_id"],
            "Visit": shown["visit_id"],
            "Service date": shown["service_date"].dt.date,
            "Provider": [names.doctor(int(d)) if pd.notna(d) else "" for d in shown["provider_id"]],
            "Office": [names.office(int(o)) if pd.notna(o) else "" for o in shown["office_id"]],
            "Payer": shown["payer"],
            "CPT": shown["cpt_code"],
            "Units": shown["units"],
            "Billed": dollars["billed"],
            "Paid": dollars["paid"],
            "Insurer balance": dollars["insurer_balance"],
            "Patient balance": dollars["patient_balance"],
            "Claim status": [status_label(s) for s in shown["claim_status"]],
            "Denied": shown["denied"],
            "A/R age (days)": shown["ar_bucket"],
        }
    )


_MONEY_FORMAT: Final = st.column_config.NumberColumn(format="dollar")


def detail_section(
    gw: Gateway,
    loaded: LoadedBilling,
    filters: kpi.BillingFilters,
    selections: Sequence[Selection],
    names: Names,
) -> None:
    """The filtered (and chart-selected) line items, and their export with a purpose."""
    st.subheader("Line items")
    detail = detail_frame(loaded, filters, open_start=_needs_open_start(selections))
    chosen = [s for s in selections if s]
    for selection in chosen:
        detail = apply_selection(detail, selection)
    if chosen:
        labels = {charts.DOCTOR: {str(k): v for k, v in names.doctors.items()}}
        labels[charts.STATUS] = dict(CLAIM_STATUS_LABELS)
        described = " — and — ".join(s.describe(labels) for s in chosen)
        left, right = st.columns([5, 1])
        left.caption(f"Selected on the charts: {described}.")
        right.button("Clear selection", key="billing.clear_selection", on_click=_clear_selections)
    if detail.empty:
        st.info("No line items match these filters and selections.")
        return
    more = (
        f" (the {DETAIL_ROWS_SHOWN:,} most recent shown)" if len(detail) > DETAIL_ROWS_SHOWN else ""
    )
    st.caption(f"{len(detail):,} line items{more}. Ids, dates, codes and amounts only.")
    money_columns = ("Billed", "Paid", "Insurer balance", "Patient balance")
    st.dataframe(
        _display(detail, names),
        hide_index=True,
        column_config={c: _MONEY_FORMAT for c in money_columns},
        key="billing.detail",
    )
    _export(gw, detail, filters)


def _export(gw: Gateway, detail: pd.DataFrame, filters: kpi.BillingFilters) -> None:
    with st.expander("Export these line items (CSV)", icon=":material/download:"):
        st.caption(
            "An export is a disclosure and is recorded in the audit log with its purpose "
            "category and row count. The sentence is not stored (it may name a patient); only "
            "its length and a keyed fingerprint are."
        )
        with st.form("billing.export"):
            category = st.selectbox(
                "Purpose",
                list(BILLING_PURPOSE_CATEGORIES),
                index=None,
                placeholder="Choose a purpose",
                format_func=lambda c: BILLING_PURPOSE_CATEGORIES[BillingPurposeCategory(c)],
                key="billing.export.category",
            )
            statement = st.text_area(
                "Describe why this export is needed",
                max_chars=billing_export.MAX_PURPOSE_CHARS,
                key="billing.export.statement",
            )
            prepare = st.form_submit_button("Prepare CSV export", icon=":material/download:")
        if not prepare:
            return
        chosen = BillingPurposeCategory(category) if category is not None else None
        purpose = BillingExportPurpose(chosen, statement)
        problems = purpose.problems()
        if problems:
            for message in problems.values():
                st.error(message)
            return
        with st.spinner("Preparing the export…"):
            export = billing_export.export_billing_detail(
                gw, detail.loc[:, list(EXPORT_COLUMNS)], filters, purpose
            )
        st.download_button(
            f"Download {export.rows:,} rows (CSV)",
            export.text,
            file_name=export.file_name,
            mime="text/csv",
            on_click="ignore",
            type="primary",
            icon=":material/file_download:",
            key="billing.export.download",
        )
