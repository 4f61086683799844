"""The Settings page's audit log tab: filters, the matching rows (opening the view is itself
audited), the integrity check of the hash chain, and a purpose-stated CSV export."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Final

import pandas as pd
import streamlit as st

from ehr.services import audit_log
from ehr.services.audit_log import AuditFilter, ChainCheck, ExportPurpose, PurposeCategory
from ehr.services.gateway import Gateway
from ui.settings_view import local_time, show_problems

__all__ = ["audit_section"]

SORT_LABELS: Final = {
    "seq": "Sequence",
    "ts_utc": "Time",
    "username": "User",
    "role": "Role",
    "action": "Action",
    "outcome": "Outcome",
    "resource_type": "Resource type",
    "resource_id": "Resource id",
    "patient_id": "Patient id",
    "data_category": "Data category",
    "client_ip": "Client IP",
    "correlation_id": "Reference",
    "break_glass": "Break-glass",
    "user_id": "User id",
}
# The audit viewer opens on the last week: recent enough to be small, long enough to be useful.
DEFAULT_AUDIT_DAYS: Final = 7
ANY: Final = "Any"

_CHECK_KEY: Final = "settings.chain_check"


def _day_range(value: object, tz: tzinfo) -> tuple[datetime, datetime] | None:
    """``[first day 00:00, day after the last 00:00)`` in the practice time zone."""
    days = [d for d in (value if isinstance(value, tuple | list) else (value,)) if d]
    if not days or not all(isinstance(d, date) for d in days):
        return None
    first, last = days[0], days[-1]
    return (
        datetime.combine(first, time.min, tzinfo=tz),
        datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz),
    )


def _optional(value: str) -> str | None:
    return value.strip() or None


def _audit_filters(tz: tzinfo) -> tuple[AuditFilter, str, bool] | None:
    today = datetime.now(tz).date()
    with st.form("settings.audit_filters"):
        row1 = st.columns([2, 1, 1, 1])
        dates = row1[0].date_input(
            "Dates",
            value=(today - timedelta(days=DEFAULT_AUDIT_DAYS - 1), today),
            max_value=today,
            key="settings.audit.dates",
        )
        action = row1[1].selectbox("Action", [ANY, *audit_log.ACTIONS], key="settings.audit.action")
        outcome = row1[2].selectbox(
            "Outcome", [ANY, *audit_log.OUTCOMES], key="settings.audit.outcome"
        )
        username = row1[3].text_input("User", key="settings.audit.user", max_chars=64)
        row2 = st.columns([1, 1, 1, 1])
        resource_id = row2[0].text_input("Resource id", key="settings.audit.resource", max_chars=64)
        patient_id = row2[1].text_input("Patient id", key="settings.audit.patient", max_chars=64)
        order_by = row2[2].selectbox(
            "Sort by", list(audit_log.SORT_COLUMNS), format_func=lambda c: SORT_LABELS.get(c, c),
            key="settings.audit.sort",
        )  # fmt: skip
        descending = row2[3].toggle("Descending", value=True, key="settings.audit.desc")
        st.form_submit_button("Apply filters", icon=":material/filter_list:")
    span = _day_range(dates, tz)
    if span is None:
        st.error("Choose a start and an end date.")
        return None
    filters = AuditFilter(
        since=span[0],
        until=span[1],
        username=_optional(username),
        action=None if action == ANY else action,
        outcome=None if outcome == ANY else outcome,
        resource_id=_optional(resource_id),
        patient_id=_optional(patient_id),
    )
    problems = filters.problems()
    if problems:
        show_problems([f"{SORT_LABELS.get(k, k).capitalize()}: {v}" for k, v in problems.items()])
        return None
    return filters, str(order_by), bool(descending)


def _audit_frame(page: audit_log.AuditPage, tz: tzinfo) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Seq": e.seq,
                "Time": e.ts_utc.astimezone(tz).replace(tzinfo=None),
                "User": e.username or "",
                "Role": e.role or "",
                "Action": e.action,
                "Outcome": e.outcome,
                "Resource": "/".join(p for p in (e.resource_type, e.resource_id) if p),
                "Patient id": e.patient_id or "",
                "Category": e.data_category or "",
                "Client IP": e.client_ip or "",
                "Reference": e.correlation_id or "",
                "Details": e.details,
            }
            for e in page.items
        ]
    )


def _integrity(gw: Gateway, data_dir: Path, tz: tzinfo) -> None:
    st.subheader("Integrity")
    st.caption(
        "Checks every row's keyed MAC, the gap-free sequence and the last anchor, so an edited, "
        "deleted or cut-off row is named."
    )
    if st.button("Check integrity now", key="settings.verify", icon=":material/verified:"):
        with st.spinner("Checking the audit chain…"):
            st.session_state[_CHECK_KEY] = audit_log.verify_audit_chain(gw, data_dir)
    check = st.session_state.get(_CHECK_KEY)
    if not isinstance(check, ChainCheck):
        return
    when = local_time(check.checked_at, tz)
    if check.ok:
        st.success(
            f"OK: the audit log is intact ({check.checked} rows, up to seq {check.head_seq}). "
            f"Checked {when}."
        )
    else:
        where = f"seq {check.first_bad_seq}" if check.first_bad_seq is not None else "anchor file"
        st.error(
            f"Damaged: first problem at {where} ({check.kind}); {check.problem_count} problem(s) "
            f"in all. Checked {when}."
        )
        st.text(check.message)


def _export(gw: Gateway, since: datetime, until: datetime, tz: tzinfo) -> None:
    st.subheader("Export")
    last_day = until.astimezone(tz) - timedelta(days=1)
    st.caption(
        f"Exports every row from {since.astimezone(tz):%d %b %Y} to {last_day:%d %b %Y}, "
        "all columns and MACs (the other filters do not apply). The export is itself audited "
        "with its purpose category. The sentence below is not stored, since it may name a "
        "patient; only its length and a keyed fingerprint are."
    )
    categories = list(audit_log.PURPOSE_CATEGORIES)
    with st.form("settings.export"):
        category = st.selectbox(
            "Purpose",
            categories,
            format_func=lambda c: audit_log.PURPOSE_CATEGORIES[c],
            key="settings.export.category",
        )
        statement = st.text_area(
            "Describe why this export is needed",
            max_chars=audit_log.MAX_PURPOSE_CHARS,
            key="settings.export.statement",
        )
        prepare = st.form_submit_button("Prepare CSV export", icon=":material/download:")
    if not prepare:
        return
    purpose = ExportPurpose(PurposeCategory(str(category)), statement)
    problems = purpose.problems()
    if problems:
        show_problems(list(problems.values()))
        return
    with st.spinner("Preparing the export…"):
        export = audit_log.export_audit_csv(gw, since, until, purpose)
    st.download_button(
        f"Download {export.rows} rows (CSV)",
        export.text,
        file_name=export.file_name,
        mime="text/csv",
        on_click="ignore",
        type="primary",
        icon=":material/file_download:",
        key="settings.export.download",
    )


def audit_section(gw: Gateway, tz: tzinfo, data_dir: Path) -> None:
    """Filters, the matching rows (opening this view is audited), integrity check, export."""
    chosen = _audit_filters(tz)
    if chosen is None:
        return
    filters, order_by, descending = chosen
    with st.spinner("Reading the audit log…"):
        page = audit_log.search_audit_log(gw, filters, order_by=order_by, descending=descending)
    if not page.items:
        st.info("No audit rows match these filters.")
    else:
        st.dataframe(
            _audit_frame(page, tz),
            hide_index=True,
            column_config={"Time": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
        )
        more = " More rows match: narrow the filters." if page.truncated else ""
        st.caption(f"{len(page.items)} rows; times in {tz}. Click a column to sort.{more}")
    _integrity(gw, data_dir, tz)
    if filters.since is not None and filters.until is not None:
        _export(gw, filters.since, filters.until, tz)
