"""Clinical: a patient's chart for clinicians: problems, medications, allergies, vitals, labs
and notes. Every list read is audited against the patient by ``ehr.services.clinical``."""

from datetime import datetime
from functools import partial

import streamlit as st

from ehr.policy import Action, PermissionDenied
from ehr.services import connection, practice
from ui import clinical_view as view
from ui import session, shell, wiring
from ui.clinical_labs_notes import labs_tab, notes_tab
from ui.clinical_summary import doctor_choices, summary_tab
from ui.clinical_vitals import vitals_tab
from ui.errors import guarded, show_error

caller = session.current_caller_or_stop()
try:
    gw = session.require_page(caller, Action.CLINICAL_READ, "clinical")
except PermissionDenied as denied:  # audited DENIED by require_page; say so and stop
    st.title("Clinical")
    show_error(denied)
    st.stop()

tz = wiring.app_settings().practice_timezone
today = datetime.now(tz).date()
admin = shell.is_admin(caller)
errors = partial(guarded, tz=tz, is_admin=admin)  # a fresh guard per block

st.title("Clinical")
connected = connection.connection_summary(wiring.connector()).state == "connected"
view.require_connection(connected, is_admin=admin)

patient = None
with errors():
    patient = view.patient_picker(gw, today=today)
if patient is None:
    st.stop()

view.chart_heading(patient, today)
summary, vitals, labs, notes = st.tabs(
    ["Summary", "Vitals", "Labs", "Notes"], key="clinical.tab", on_change="rerun"
)
if summary.open is not False:  # the default tab: open unless the user chose another
    with summary, errors():
        doctors = doctor_choices(practice.list_doctors(gw).items)
        summary_tab(gw, patient, doctors, today=today)
if vitals.open:
    with vitals, errors():
        vitals_tab(gw, patient.id, tz)
if labs.open:
    with labs, errors():
        labs_tab(gw, patient.id)
if notes.open:
    with notes, errors():
        notes_tab(gw, patient.id, tz)
