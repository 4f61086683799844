"""Clinic EHR Dashboard: entry point (`streamlit run Home.py`).

Until the app issues land this page only proves the foundation starts: settings load, the database
schema is upgraded, demo keys are generated. It says plainly what is not built yet.
"""

import streamlit as st

from ui.wiring import SettingsError, app_engine, app_settings

st.set_page_config(page_title="Clinic EHR Dashboard", page_icon="🩺", layout="wide")
st.title("Clinic EHR Dashboard")

try:
    settings = app_settings()
except SettingsError as exc:
    st.error(f"The app cannot start: {exc}. Fix the configuration and restart.")
    st.stop()

engine = app_engine()

if settings.demo_mode:
    st.info(
        "**Demo mode** — no DrChrono client is configured, so the app will use the embedded "
        "DrChrono sandbox with a synthetic clinic (connecting to it arrives with the next issues). "
        "**Demo keys**: encryption and audit keys were generated on this machine under "
        "`data/keys/`; do not use them for real patient data."
    )

st.subheader("What works today")
st.markdown(
    "- Settings, encrypted token storage, tamper-evident audit log, users, roles and sessions "
    f"(database: **{engine.dialect.name}**).\n"
    "- The embedded DrChrono sandbox (`python -m ehr.sandbox`) and the EHR client's transport.\n"
    "- The admin command line: `python -m storage --help`."
)
st.subheader("Not built yet")
st.markdown(
    "Sign-in, connecting the EHR, Settings, Patients, Appointments, Clinical and Billing pages "
    "are the next issues. Nothing on this page reads or shows patient data."
)
