"""The Appointments page's week and list views: one row per appointment, each status cell in
the colour of its badge on the day grid."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta, tzinfo
from typing import Final

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from ehr.models import Appointment
from ui.appointments_filters import Filters
from ui.appointments_view import DASH, Practice, time_range, visible
from ui.components import STATUS_COLOURS, STATUS_LABELS, status_label

__all__ = ["list_table", "schedule_frame", "week_tables"]

# Table cells get the badge colours of the day grid (Streamlit's light badge palette).
_CELL_STYLE: Final = {
    "blue": "background-color:#e4eefc;color:#1c4f9c",
    "gray": "background-color:#eef0f2;color:#4b5563",
    "orange": "background-color:#fdf0e1;color:#9a4d00",
    "violet": "background-color:#f0e9fb;color:#5b2f9c",
    "green": "background-color:#e3f4e8;color:#1d6b34",
    "red": "background-color:#fde7e7;color:#a11c1c",
}
_COLOUR_OF_LABEL: Final = {STATUS_LABELS[s]: c for s, c in STATUS_COLOURS.items()}


def schedule_frame(items: Sequence[Appointment], ref: Practice, tz: tzinfo) -> pd.DataFrame:
    """One row per appointment for ``st.dataframe``; a withheld reason shows as a dash."""
    rows = [
        {
            "Date": a.scheduled_time.astimezone(tz).date() if a.scheduled_time else None,
            "Time": time_range(a, tz),
            "Patient": ref.patient(a),
            "Doctor": ref.doctor(a.doctor_id),
            "Office": ref.office(a.office_id),
            "Room": ref.room(a.office_id, a.exam_room),
            "Status": "Break" if a.is_break else status_label(a.status),
            "Reason": a.reason or DASH,
        }
        for a in visible(items)
    ]
    columns = ["Date", "Time", "Patient", "Doctor", "Office", "Room", "Status", "Reason"]
    return pd.DataFrame(rows, columns=columns)


def _styled(frame: pd.DataFrame) -> Styler:
    """The frame with each status cell in its badge colour (a custom status stays grey)."""
    return frame.style.map(
        lambda label: _CELL_STYLE[_COLOUR_OF_LABEL.get(str(label), "gray")], subset=["Status"]
    )


def list_table(items: Sequence[Appointment], ref: Practice, tz: tzinfo, chosen: Filters) -> None:
    """The list view: every appointment in the range matching the status filter."""
    wanted = [a for a in items if not chosen.statuses or status_label(a.status) in chosen.statuses]
    frame = schedule_frame(wanted, ref, tz)
    if frame.empty:
        st.info("No appointments match these filters.")
        return
    st.caption(f"{len(frame)} appointments")
    st.dataframe(
        _styled(frame),
        hide_index=True,
        column_config={"Date": st.column_config.DateColumn("Date", format="ddd D MMM")},
    )


def week_tables(items: Sequence[Appointment], ref: Practice, tz: tzinfo, chosen: Filters) -> None:
    """The week view: a compact table per day, Monday to Sunday."""
    frame = schedule_frame(items, ref, tz)
    for offset in range((chosen.end - chosen.start).days + 1):
        day = chosen.start + timedelta(days=offset)
        rows = frame[frame["Date"] == day].drop(columns=["Date"])
        st.markdown(f"**{day:%A %d %B}** · {len(rows)} appointments")
        if rows.empty:
            st.caption("No appointments.")
            continue
        st.dataframe(_styled(rows), hide_index=True)
