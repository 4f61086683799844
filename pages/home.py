"""Home: today at a glance for the signed-in role."""

from datetime import datetime

import streamlit as st

from ehr.policy import Action
from ehr.services import appointments, connection, patients, practice
from ui import session, shell, wiring
from ui.components import IN_CLINIC, in_clinic_rows, nav_link, status_counts
from ui.errors import guarded

caller = session.current_caller_or_stop()
gw = session.require_page(caller, Action.APPOINTMENT_READ, "home")
tz = wiring.app_settings().practice_timezone
today = datetime.now(tz).date()

st.title("Today")
st.caption(f"{today:%A %d %B %Y} · practice time zone {tz.key}")

summary = connection.connection_summary(wiring.connector())
if summary.state != "connected":
    if shell.is_admin(caller):
        st.info("Connect the EHR to see today's schedule.")
        nav_link("Connect the EHR", "/ehr-auth/connect")
    else:
        st.info("The EHR is not connected yet. Ask an administrator to connect it in Settings.")
    st.stop()

with guarded(tz=tz, is_admin=shell.is_admin(caller)):
    with st.spinner("Loading today's schedule…"):
        day = appointments.list_appointments(gw, today, today)
    fetched_at = datetime.now(tz)
    counts = status_counts(day.items)
    total = sum(counts.values())
    in_clinic = sum(1 for a in day.items if a.status in IN_CLINIC and not a.is_break)
    cols = st.columns(4)
    cols[0].metric("Appointments today", total)
    cols[1].metric("In the clinic now", in_clinic)
    cols[2].metric("Completed", counts.get("Complete", 0))
    cols[3].metric(
        "No-shows and cancellations", counts.get("No show", 0) + counts.get("Cancelled", 0)
    )
    if total:
        chart, waiting = st.columns([3, 2])
        chart.bar_chart(counts, horizontal=True, x_label="appointments", y_label="status")
        here = [a for a in day.items if a.status in IN_CLINIC and not a.is_break]
        with waiting:
            st.markdown("**In the clinic now**")
            if here:
                # One cached walk of the patient list and one doctor list: no per-row calls.
                names = patients.patient_directory(gw).by_id
                doctors = {d.id: d.display_name for d in practice.list_doctors(gw).items}
                st.dataframe(
                    in_clinic_rows(here, names, doctors, tz), hide_index=True, width="stretch"
                )
            else:
                st.caption("Nobody is checked in right now.")
    else:
        st.info("No appointments are booked for today.")
    if day.truncated:
        st.warning("Only part of today's schedule was loaded; open Appointments for the full day.")
    st.caption(f"Data as of {fetched_at:%H:%M}.")

left = summary.calls_per_hour - summary.calls_this_hour
resets = (
    f" (resets {summary.budget_resets_at.astimezone(tz):%H:%M})" if summary.budget_resets_at else ""
)
st.caption(f"EHR requests left this hour: {left} of {summary.calls_per_hour}{resets}.")
