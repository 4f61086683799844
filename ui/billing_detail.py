"""The Billing page's line-item detail: the rows behind the filters and chart selections, shown
as a table and exported with a stated purpose (an audited disclosure).

``detail_frame`` and ``apply_selection`` are pure (unit-tested); ``detail_section`` keeps the
filtered and display frames for the session per (mirror version, filters, selections, names)
through ``ui.mirror_cache``, so a rerun that changes none of them (opening the export form,
typing its purpose) does not filter and format the line items again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import pandas as pd
import streamlit as st

from ehr.analytics import billing as kpi
from ehr.analytics.billing_data import scoped
from ehr.services import billing_export
from ehr.services.billing_export import (
    BILLING_PURPOSE_CATEGORIES,
    EXPORT_COLUMNS,
    BillingExportPurpose,
    BillingPurposeCategory,
)
from ehr.services.gateway import Gateway
from ui import billing_charts as charts
from ui.billing_charts import Selection
from ui.billing_view import (
    CLAIM_STATUS_LABELS,
    LoadedBilling,
    Names,
    clear_selections,
    status_label,
)
from ui.mirror_cache import kept

__all__ = ["DETAIL_ROWS_SHOWN", "apply_selection", "detail_frame", "detail_section"]

# A busy screen, not a report: the export holds every filtered row.
DETAIL_ROWS_SHOWN: Final = 1000
# The same bucket edges (days, inclusive) as ``ehr.analytics.billing``; a test checks the
# detail's buckets add up to the aging KPI.
_BUCKET_EDGES: Final = (30, 60, 90, 120)
_CENTS: Final = 100
_DETAIL_KEY: Final = "billing.detail_frames"


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


def _frames(
    loaded: LoadedBilling,
    filters: kpi.BillingFilters,
    open_start: bool,
    chosen: Sequence[Selection],
    names: Names,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The matching line items (export columns) and the table shown of them."""
    detail = detail_frame(loaded, filters, open_start=open_start)
    for selection in chosen:
        detail = apply_selection(detail, selection)
    return detail, _display(detail, names)


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
    chosen = [s for s in selections if s]
    open_start = _needs_open_start(selections)
    detail, shown = kept(
        _DETAIL_KEY,
        (loaded.key, filters, open_start, chosen, names),
        lambda: _frames(loaded, filters, open_start, chosen, names),
    )
    if chosen:
        labels = {charts.DOCTOR: {str(k): v for k, v in names.doctors.items()}}
        labels[charts.STATUS] = dict(CLAIM_STATUS_LABELS)
        described = " — and — ".join(s.describe(labels) for s in chosen)
        left, right = st.columns([5, 1])
        left.caption(f"Selected on the charts: {described}.")
        right.button("Clear selection", key="billing.clear_selection", on_click=clear_selections)
    if detail.empty:
        st.info("No line items match these filters and selections.")
        return
    more = (
        f" (the {DETAIL_ROWS_SHOWN:,} most recent shown)" if len(detail) > DETAIL_ROWS_SHOWN else ""
    )
    st.caption(f"{len(detail):,} line items{more}. Ids, dates, codes and amounts only.")
    money_columns = ("Billed", "Paid", "Insurer balance", "Patient balance")
    st.dataframe(
        shown,
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
