"""Patients: find a patient, open their details and appointments, register, edit or delete."""

from datetime import datetime

import streamlit as st

from ehr.policy import Action, is_allowed
from ehr.services import appointments, connection, practice
from ui import patient_detail_view as detail
from ui import patients_forms as forms
from ui import patients_view as view
from ui import session, shell, wiring
from ui.errors import guarded

caller = session.current_caller_or_stop()
gw = session.require_page(caller, Action.PATIENT_READ, "patients")
tz = wiring.app_settings().practice_timezone
now = datetime.now(tz)
admin = shell.is_admin(caller)
# Showing the buttons is a convenience; the services refuse these roles regardless.
can_write = is_allowed(caller.principal, Action.PATIENT_WRITE)
can_delete = is_allowed(caller.principal, Action.PATIENT_DELETE)

st.title("Patients")
connected = connection.connection_summary(wiring.connector()).state == "connected"
view.require_connection(connected, is_admin=admin)
view.show_flash()
patient_id = view.selected_patient_id()

with guarded(tz=tz, is_admin=admin):
    doctors = view.doctor_names(practice.list_doctors(gw).items)
    if patient_id is None:
        sections = ["Find a patient", "Register a patient"] if can_write else ["Find a patient"]
        find, *register = st.tabs(sections, key="patients.section", on_change="rerun")
        if find.open is not False:
            with find:
                view.search_section(gw, doctors, today=now.date())
        if register and register[0].open:
            with register[0]:
                forms.register_section(gw, doctors, today=now.date(), tz=tz)
    else:
        st.button(
            "Back to the search",
            icon=":material/arrow_back:",
            key="patients.back",
            on_click=view.close_patient,
        )
        patient = view.opened_patient(gw, patient_id)
        detail.patient_heading(patient, now.date())
        labels = ["Overview", *(["Edit details"] if can_write else [])]
        labels += ["Delete"] if can_delete else []
        overview, *more = st.tabs(labels, key="patients.detail_tab", on_change="rerun")
        if overview.open is not False:
            with overview:
                detail.demographics(patient, doctors.names)
                window = detail.appointment_window(now.date())
                with st.spinner("Loading appointments…"):
                    visits = appointments.list_appointments(
                        gw, window[0], window[1], patient_id=patient.id
                    )
                detail.appointments_overview(visits, doctors.names, tz=tz, now=now, window=window)
        if can_write and more[0].open:
            with more[0]:
                forms.edit_section(gw, patient, doctors, today=now.date(), tz=tz)
        if can_delete and more[-1].open:
            with more[-1]:
                forms.delete_section(gw, patient)
