"""Scheduling analytics on the Appointments page: no-shows, cancellations, utilisation, lead
time and visit cycle time per provider (issue 6 item 4), from the encrypted mirror.

The numbers come from ``ehr.analytics.scheduling`` (plain functions, tested against hand-worked
examples); this module only picks the range and shows the tables with their definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Final

import pandas as pd
import streamlit as st

from ehr.analytics import scheduling
from ehr.services import mirror
from ehr.services.gateway import Gateway

__all__ = ["scheduling_analytics"]

DEFAULT_DAYS: Final = 90

_DEFINITIONS: Final = (
    "**No-show rate** = no-shows ÷ scheduled; **cancellation rate** = cancelled ÷ scheduled; "
    f"**late** = cancelled less than {scheduling.LATE_CANCEL_HOURS} h before the slot "
    "(rescheduled visits are left out). **Utilisation** = booked ÷ available minutes "
    "(8 h on weekdays per provider). **Lead time** = median days from booking to a new "
    "patient's first visit. **Cycle times** = median minutes between status changes."
)


def _percent(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    shown = frame.copy()
    for column in columns:
        if column in shown:
            shown[column] = (shown[column] * 100).round(1)
    return shown


def _named(frame: pd.DataFrame, doctors: Mapping[int, str]) -> pd.DataFrame:
    if "doctor_id" not in frame:
        return frame
    named = frame.copy()
    named.insert(0, "provider", [doctors.get(int(i), f"Provider {i}") for i in named["doctor_id"]])
    return named.drop(columns=["doctor_id"])


def scheduling_analytics(
    gw: Gateway, doctors: Mapping[int, str], today: date, tz_name: str
) -> None:
    """The analytics section: a date range, then one table per KPI family, by provider."""
    left, right = st.columns(2)
    start = left.date_input(
        "From", value=today - timedelta(days=DEFAULT_DAYS), key="schedule_analytics.start"
    )
    end = right.date_input("To", value=today, key="schedule_analytics.end")
    if not isinstance(start, date) or not isinstance(end, date) or start > end:
        st.error("Choose a start date on or before the end date.")
        return
    with st.spinner("Reading the mirror…"):
        data = mirror.load_schedule_analytics(gw)
    if data.appointments.empty:
        st.info(
            "The analytics mirror holds no appointments yet. It fills in the background after "
            "the EHR is connected; an administrator can sync it now from the Billing page."
        )
        return
    filters = scheduling.ScheduleFilters(start=start, end=end, timezone=tz_name)
    by: tuple[scheduling.Group, ...] = ("doctor_id",)
    attendance = scheduling.attendance(data.appointments, data.transitions, filters, by)
    use = scheduling.utilisation(data.appointments, filters, by)
    lead = scheduling.new_patient_lead_time(data.appointments, filters, by)
    cycle = scheduling.visit_cycle_times(data.appointments, data.transitions, filters, by)
    st.caption(_DEFINITIONS)
    st.markdown("**Attendance** (rates in %)")
    st.dataframe(
        _named(
            _percent(
                attendance.frame,
                ("no_show_rate", "cancellation_rate", "late_cancellation_rate"),
            ),
            doctors,
        ),
        hide_index=True,
    )
    columns = st.columns(3)
    for column, title, table in (
        (columns[0], "Utilisation (%)", _percent(use.frame, ("utilisation",))),
        (columns[1], "New-patient lead time (days)", lead.frame),
        (columns[2], "Visit cycle times (minutes)", cycle.frame),
    ):
        with column:
            st.markdown(f"**{title}**")
            st.dataframe(_named(table, doctors), hide_index=True)
    skipped = attendance.skipped + use.skipped + lead.skipped + cycle.skipped
    if skipped:
        st.caption(f"{skipped} records had missing or inconsistent times and were left out.")
