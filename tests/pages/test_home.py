"""Home.py: configuration check, sign-in, role navigation, today at a glance."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ehr.models import AppointmentDraft, AppointmentStatus
from ehr.services import accounts, appointments, patients, practice
from tests.pages.conftest import caller_of
from ui import wiring

ROOT = Path(__file__).resolve().parents[2]


def test_a_signed_out_visitor_sees_only_the_sign_in_link(demo_env, open_app):
    at = open_app(None)
    assert not at.exception
    assert any("not signed in" in info.value for info in at.info)
    assert (demo_env / "dashboard.db").exists()


def test_home_refuses_to_start_with_example_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRCHRONO_CLIENT_ID", "real-client-id")
    monkeypatch.setenv("DRCHRONO_CLIENT_SECRET", "your-drchrono-client-secret")
    wiring.reset()
    try:
        at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
        at.run()
    finally:
        wiring.reset()
    assert not at.exception
    assert any("DRCHRONO" in err.value for err in at.error)


@pytest.mark.parametrize("role", ["admin", "clinician", "front_desk", "billing"])
def test_every_role_lands_on_home_with_a_demo_notice(users, open_app, role):
    at = open_app(users[role])
    assert not at.exception
    assert at.title[0].value == "Today"
    assert any("Demo mode" in c.value for c in at.sidebar.caption)


def test_admin_without_an_ehr_is_offered_to_connect(users, open_app):
    at = open_app(users["admin"])
    assert any("Connect the EHR" in info.value for info in at.info)


def test_home_shows_todays_schedule_once_connected(connected, open_app):
    at = open_app(connected["front_desk"])
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "Appointments today" in labels
    assert any("Data as of" in c.value for c in at.caption)


def test_sign_out_drops_everything_the_session_kept(users, open_app):
    at = open_app(users["front_desk"])
    at.session_state["patients.opened"] = "phi kept by a page"
    at.sidebar.button(key="sign_out").click().run()
    assert not at.exception
    assert "patients.opened" not in at.session_state
    shown = [m.value for m in [*at.info, *at.warning]]
    assert any("not signed in" in text or "session has ended" in text for text in shown)
    assert accounts.resume_session(wiring.account_store(), users["front_desk"].token) == (
        accounts.SessionEnded(timed_out=False)
    )


def test_an_expired_session_drops_page_state(users, open_app):
    at = open_app(users["clinician"])
    at.session_state["patients.opened"] = "phi kept by a page"
    accounts.sign_out(wiring.account_store(), users["clinician"].token)
    at.run()
    assert "patients.opened" not in at.session_state


def test_home_lists_who_is_in_the_clinic_with_names(connected, open_app):
    gw = wiring.new_gateway(caller_of(connected["front_desk"]))
    tz = wiring.app_settings().practice_timezone
    now = datetime.now(tz)
    office = practice.list_offices(gw).items[0]
    doctor = practice.list_doctors(gw).items[0]
    patient = patients.search_patients(gw).items[0]
    booked = appointments.create_appointment(
        gw,
        AppointmentDraft(
            patient_id=patient.id,
            doctor_id=doctor.id,
            office_id=office.id,
            exam_room=office.exam_rooms[0].index,
            scheduled_time=datetime.combine(now.date(), time(0, 5), tz) + timedelta(minutes=1),
            duration_minutes=15,
        ),
        allow_overlap=True,
    )
    appointments.set_appointment_status(gw, booked.id, AppointmentStatus.ARRIVED)

    at = open_app(connected["front_desk"])
    assert not at.exception
    assert any("In the clinic now" in m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert patient.last_name in " ".join(table["Patient"])
    assert "Arrived" in set(table["Status"])
