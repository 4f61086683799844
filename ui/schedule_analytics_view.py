"""Scheduling analytics on the Appointments page: no-shows, cancellations, utilisation, lead
time and visit cycle time per provider (issue 6 item 4), from the encrypted mirror.

The numbers come from ``ehr.analytics.scheduling`` (plain functions, tested against hand-worked
examples); this module only picks the range and shows the tables with their definitions.

The page runs the section only while its expander is open (``SECTION_KEY``, ``on_change=
"rerun"``), and the decrypted frames and the tables are kept for the session per mirror version
(``ui.mirror_cache``): a rerun for anything else on the page costs nothing here, and one with
the section open costs an audited version read, not a decrypt and every KPI again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import pandas as pd
import streamlit as st

from ehr.analytics import scheduling
from ehr.services import mirror
from ehr.services.gateway import Gateway
from ui.mirror_cache import kept

__all__ = ["SECTION_KEY", "scheduling_analytics"]

DEFAULT_DAYS: Final = 90
# The expander's key: its open state is what the page checks before running the section.
SECTION_KEY: Final = "schedule_analytics.open"
_DATA_KEY: Final = "schedule_analytics.data"
_TABLES_KEY: Final = "schedule_analytics.tables"

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
    version = mirror.schedule_mirror_version(gw)

    def load() -> mirror.ScheduleFrames:
        with st.spinner("Reading the mirror…"):
            return mirror.load_schedule_analytics(gw)

    data = kept(_DATA_KEY, version.key, load)
    if data.appointments.empty:
        st.info(
            "The analytics mirror holds no appointments yet. It fills in the background after "
            "the EHR is connected; an administrator can sync it now from the Billing page."
        )
        return
    filters = scheduling.ScheduleFilters(start=start, end=end, timezone=tz_name)
    key = (version.key, filters, tuple(sorted(doctors.items())))
    tables = kept(_TABLES_KEY, key, lambda: _tables(data, filters, doctors))
    st.caption(_DEFINITIONS)
    st.markdown("**Attendance** (rates in %)")
    st.dataframe(tables.attendance, hide_index=True)
    columns = st.columns(3)
    for column, title, table in (
        (columns[0], "Utilisation (%)", tables.utilisation),
        (columns[1], "New-patient lead time (days)", tables.lead_time),
        (columns[2], "Visit cycle times (minutes)", tables.cycle_times),
    ):
        with column:
            st.markdown(f"**{title}**")
            st.dataframe(table, hide_index=True)
    if tables.skipped:
        st.caption(f"{tables.skipped} records had missing or inconsistent times and were left out.")


@dataclass(frozen=True)
class _Tables:
    """The section's four tables as shown (provider names, rates in %), and rows left out."""

    attendance: pd.DataFrame
    utilisation: pd.DataFrame
    lead_time: pd.DataFrame
    cycle_times: pd.DataFrame
    skipped: int


def _tables(
    data: mirror.ScheduleFrames, filters: scheduling.ScheduleFilters, doctors: Mapping[int, str]
) -> _Tables:
    by: tuple[scheduling.Group, ...] = ("doctor_id",)
    attendance = scheduling.attendance(data.appointments, data.transitions, filters, by)
    use = scheduling.utilisation(data.appointments, filters, by)
    lead = scheduling.new_patient_lead_time(data.appointments, filters, by)
    cycle = scheduling.visit_cycle_times(data.appointments, data.transitions, filters, by)
    rates = ("no_show_rate", "cancellation_rate", "late_cancellation_rate")
    return _Tables(
        attendance=_named(_percent(attendance.frame, rates), doctors),
        utilisation=_named(_percent(use.frame, ("utilisation",)), doctors),
        lead_time=_named(lead.frame, doctors),
        cycle_times=_named(cycle.frame, doctors),
        skipped=attendance.skipped + use.skipped + lead.skipped + cycle.skipped,
    )
