"""Appointments: the day grid, the week, a filtered list, booking and rescheduling."""

from datetime import datetime

import streamlit as st

from ehr.policy import Action, is_allowed
from ehr.services import appointments, connection
from ui import appointments_forms as forms
from ui import appointments_view as view
from ui import session, shell, wiring
from ui.appointments_filters import filters, parse_query, selected_day
from ui.appointments_grid import day_grid
from ui.appointments_tables import list_table, week_tables
from ui.components import nav_link
from ui.errors import guarded
from ui.schedule_analytics_view import SECTION_KEY, scheduling_analytics

caller = session.current_caller_or_stop()
gw = session.require_page(caller, Action.APPOINTMENT_READ, "appointments")
tz = wiring.app_settings().practice_timezone
now = datetime.now(tz)
can_write = is_allowed(caller.principal, Action.APPOINTMENT_WRITE)
admin = shell.is_admin(caller)

st.title("Appointments")
st.caption(f"All times are in the practice time zone, {tz.key}.")
query, problems = parse_query(st.query_params.to_dict())
for problem in problems:
    st.error(f"This link could not be used as it is: {problem}. Showing the defaults instead.")

if connection.connection_summary(wiring.connector()).state != "connected":
    if admin:
        st.info("Connect the EHR to see the schedule.")
        nav_link("Connect the EHR", "/ehr-auth/connect")
    else:
        st.info("The EHR is not connected yet. Ask an administrator to connect it in Settings.")
    st.stop()
view.show_flash()

with guarded(tz=tz, is_admin=admin):
    with st.spinner("Loading doctors, offices and patients…"):
        ref = view.load_practice(gw)
    if can_write:
        # Built only while open: its patient list holds every patient of the practice.
        booking = st.expander(
            "Book an appointment",
            icon=":material/event_available:",
            key=forms.BOOKING_PANEL_KEY,
            on_change="rerun",
        )
        with booking:
            if booking.open:
                forms.booking_panel(gw, ref, tz, selected_day(query, now.date()), now)
    chosen = filters(ref, query, now.date())
    if chosen is None:
        st.stop()
    with st.spinner("Loading appointments…"):
        listing = appointments.list_appointments(
            gw, chosen.start, chosen.end, doctor_id=chosen.doctor_id, office_id=chosen.office_id
        )
    fetched_at = datetime.now(tz)
    if listing.truncated or ref.directory_truncated:
        st.warning("Only part of the data could be loaded; narrow the filters to see it all.")
    if chosen.view == "Day":
        more = (lambda a: forms.reschedule_form(gw, a, ref, tz)) if can_write else None
        day_grid(gw, listing.items, ref, tz, chosen, more=more)
    elif chosen.view == "Week":
        week_tables(listing.items, ref, tz, chosen)
    else:
        list_table(listing.items, ref, tz, chosen)
    st.caption(f"Data as of {fetched_at:%H:%M}.")

if is_allowed(caller.principal, Action.SCHEDULE_ANALYTICS):
    # Runs only while open: the closed section must not cost every rerun of the schedule.
    section = st.expander(
        "Scheduling analytics", icon=":material/monitoring:", key=SECTION_KEY, on_change="rerun"
    )
    with guarded(tz=tz, is_admin=admin), section:
        if section.open:
            names = {i: d.display_name for i, d in ref.doctors.items()}
            scheduling_analytics(gw, names, now.date(), tz.key)
