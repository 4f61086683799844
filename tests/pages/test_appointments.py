"""The Appointments page: views per role, status changes, booking, links and request counts.

Runs against the embedded sandbox connected through the real OAuth flow (``connected``).
The demo clinic is generated around today's date, so each test first asks the service layer
which days have appointments instead of hard-coding one.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from streamlit.testing.v1 import AppTest

from ehr.models import Appointment, AppointmentDraft, AppointmentStatus, Other
from ehr.services import accounts, appointments, patients, practice
from ehr.services.accounts import SignedInSession
from ehr.services.gateway import Caller
from storage import audit_report
from ui import wiring
from ui.appointments_filters import parse_query
from ui.appointments_forms import BOOKING_PANEL_KEY, BookingForm, validate_booking
from ui.appointments_grid import more_key, status_actions
from ui.appointments_view import escape_md, patient_name
from ui.session import TEST_TOKEN_KEY

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("admin", "clinician", "front_desk", "billing")
PAGE = "pages/appointments.py"
# Far enough either side of today to always hold visits in the 60-patient demo clinic.
SEARCH_DAYS = 45
# A slot no generated visit uses (the clinic books 08:00-17:00).
FREE_HOUR = 19


def open_page(session: SignedInSession, **query: str) -> AppTest:
    """The Appointments page as ``session``, with ``query`` as the URL's query parameters."""
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.session_state[TEST_TOKEN_KEY] = session.token
    at.run()
    at.switch_page(PAGE)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def caller_of(session: SignedInSession) -> Caller:
    caller = accounts.resume_session(wiring.account_store(), session.token)
    assert isinstance(caller, Caller)
    return caller


def tz():
    return wiring.app_settings().practice_timezone


def upcoming(session: SignedInSession) -> list[Appointment]:
    """Patient visits from today on, as the service returns them (admin: unscoped)."""
    gw = wiring.new_gateway(caller_of(session))
    today = datetime.now(tz()).date()
    listing = appointments.list_appointments(gw, today, today + timedelta(days=SEARCH_DAYS))
    return [a for a in listing.items if a.patient_id and not a.is_break and not a.is_deleted]


def day_of(appointment: Appointment) -> date:
    assert appointment.scheduled_time is not None
    return appointment.scheduled_time.astimezone(tz()).date()


def waiting_visit(session: SignedInSession) -> Appointment:
    """A visit still to come (so it may be booked over) whose next step is "Arrived"."""
    waiting = {AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED}
    soon = datetime.now(tz()) + timedelta(hours=1)
    found = [
        a
        for a in upcoming(session)
        if a.status in waiting and a.scheduled_time is not None and a.scheduled_time > soon
    ]
    assert found, "the demo clinic has no upcoming booked visit"
    return found[0]


def texts(at: AppTest) -> str:
    """The page's Markdown with the escaping of upstream text undone."""
    return re.sub(r"\\(.)", r"\1", "\n".join(m.value for m in at.markdown))


def requests_made() -> int:
    sandbox = wiring.demo_sandbox()
    assert sandbox is not None
    return len(sandbox.request_log.entries())


def test_the_page_runs_for_every_role(connected):
    for role in ROLES:
        at = open_page(connected[role])
        assert at.title[0].value == "Appointments", role
        assert any("Data as of" in c.value for c in at.caption), role
        assert not at.error, role
        assert bool(at.expander) is (role != "billing"), role  # the booking form


def test_the_day_view_shows_the_patients_booked_that_day(connected):
    visit = waiting_visit(connected["admin"])
    day = day_of(visit)
    gw = wiring.new_gateway(caller_of(connected["admin"]))
    directory = patients.patient_directory(gw)
    expected = {
        patient_name(directory.by_id[a.patient_id])
        for a in upcoming(connected["admin"])
        if day_of(a) == day and a.patient_id in directory.by_id
    }

    at = open_page(connected["front_desk"], day=day.isoformat())

    shown = texts(at)
    assert expected
    for name in expected:
        assert name in shown
    assert at.button(key=f"appointments.status.{visit.id}.arrived").label == "Arrived"


def test_the_day_view_makes_no_request_per_appointment(connected):
    visit = waiting_visit(connected["admin"])
    day = day_of(visit)
    before = requests_made()
    open_page(connected["front_desk"], day=day.isoformat())
    with_few = requests_made() - before

    gw = wiring.new_gateway(caller_of(connected["admin"]))
    offices = practice.list_offices(gw).items
    office = next(o for o in offices if o.id == visit.office_id)
    others = [p for p in patients.patient_directory(gw).by_id if p != visit.patient_id][:3]
    for n, (patient_id, room) in enumerate(zip(others, office.exam_rooms, strict=False)):
        start = datetime.combine(day, time(FREE_HOUR), tz())
        appointments.create_appointment(
            gw,
            AppointmentDraft(
                patient_id=patient_id,
                doctor_id=visit.doctor_id,
                office_id=office.id,
                exam_room=room.index,
                scheduled_time=start + timedelta(minutes=30 * n),
                duration_minutes=15,
            ),
            allow_overlap=True,
        )
    listed = appointments.list_appointments(gw, day, day).items
    assert len(listed) <= 20  # still one upstream page: any growth would be per-row calls

    before = requests_made()
    at = open_page(connected["front_desk"], day=day.isoformat())
    with_more = requests_made() - before

    assert with_more == with_few
    assert sum(1 for b in at.button if b.key and b.key.startswith("appointments.status.")) > 3


def test_a_status_change_from_the_day_view_reaches_the_ehr(connected):
    visit = waiting_visit(connected["admin"])
    at = open_page(connected["front_desk"], day=day_of(visit).isoformat())

    at.button(key=f"appointments.status.{visit.id}.arrived").click().run()

    assert not at.exception, at.exception
    assert any("Arrived" in s.value for s in at.success)
    gw = wiring.new_gateway(caller_of(connected["admin"]))
    assert appointments.get_appointment(gw, visit.id).status is AppointmentStatus.ARRIVED
    assert at.button(key=f"appointments.status.{visit.id}.checked_in").label == "Check in"


def test_a_reschedule_is_refused_when_the_visit_changed_meanwhile_then_works(connected):
    visit = waiting_visit(connected["admin"])
    assert visit.scheduled_time is not None
    key = f"appointments.move.{visit.id}"
    at = open_page(connected["front_desk"], day=day_of(visit).isoformat())
    assert not [b for b in at.button if b.key == f"{key}.submit"], "built only when opened"
    at.session_state[more_key(visit)] = True  # open the card's "More" menu
    at.run()
    assert at.button(key=f"{key}.submit"), "the reschedule form is in the open menu"
    admin = wiring.new_gateway(caller_of(connected["admin"]))
    appointments.set_appointment_status(admin, visit.id, AppointmentStatus.NOT_CONFIRMED)
    patches = wiring.demo_sandbox().request_log.count(method="PATCH", path_prefix="/api/")
    # The next evening: free (visits end at 17:00) and always still to come.
    later = datetime.combine(day_of(visit) + timedelta(days=1), time(FREE_HOUR), tz())

    at.date_input(key=f"{key}.day").set_value(later.date())
    at.time_input(key=f"{key}.time").set_value(later.time())
    at.button(key=f"{key}.submit").click().run()

    assert not at.exception, at.exception
    assert any("changed in the EHR" in w.value and "reloaded" in w.value for w in at.warning)
    assert wiring.demo_sandbox().request_log.count(method="PATCH", path_prefix="/api/") == patches
    assert "Not confirmed" in texts(at)  # the reload shows the change made meanwhile

    at.date_input(key=f"{key}.day").set_value(later.date())
    at.time_input(key=f"{key}.time").set_value(later.time())
    at.button(key=f"{key}.submit").click().run()

    assert not at.exception, at.exception
    assert any("Moved to" in m.value for m in at.success)
    assert appointments.get_appointment(admin, visit.id).scheduled_time == later


def fill_booking(at: AppTest, visit: Appointment, *, time_of_day=None) -> None:
    """Fill the booking form for ``visit``'s doctor, office and room on its day."""
    at.session_state[BOOKING_PANEL_KEY] = True  # open "Book an appointment"
    at.run()
    at.selectbox(key="appointments.book.patient_id").set_value(visit.patient_id).run()
    at.selectbox(key="appointments.book.doctor_id").set_value(visit.doctor_id).run()
    at.selectbox(key="appointments.book.office_id").set_value(visit.office_id).run()
    at.selectbox(key="appointments.book.exam_room").set_value(visit.exam_room).run()
    at.date_input(key="appointments.book.day").set_value(day_of(visit)).run()
    if time_of_day is not None:
        at.time_input(key="appointments.book.time").set_value(time_of_day).run()
    at.number_input(key="appointments.book.duration_minutes").set_value(15).run()


def test_booking_without_a_time_shows_an_error_and_sends_nothing(connected):
    visit = waiting_visit(connected["admin"])
    at = open_page(connected["front_desk"])
    fill_booking(at, visit)
    posts = wiring.demo_sandbox().request_log.count(method="POST", path_prefix="/api/")

    at.button(key="appointments.book.submit").click().run()

    assert not at.exception, at.exception
    assert any(e.value == "Choose a time." for e in at.error)
    assert wiring.demo_sandbox().request_log.count(method="POST", path_prefix="/api/") == posts


def test_booking_an_overlapping_slot_shows_the_conflict_and_can_be_overridden(connected):
    visit = waiting_visit(connected["admin"])
    assert visit.scheduled_time is not None
    at = open_page(connected["front_desk"])
    fill_booking(at, visit, time_of_day=visit.scheduled_time.astimezone(tz()).time())

    at.button(key="appointments.book.submit").click().run()

    assert not at.exception, at.exception
    [conflict] = [w for w in at.warning if "overlaps another appointment" in w.value]
    assert visit.scheduled_time.astimezone(tz()).strftime("%H:%M") in conflict.value
    override = at.checkbox(key="appointments.book.override")
    assert override.label == "Double-book anyway"
    assert not override.value

    override.check().run()
    at.button(key="appointments.book.submit").click().run()

    assert not at.exception, at.exception
    assert any("double-booked" in s.value for s in at.success)
    gw = wiring.new_gateway(caller_of(connected["admin"]))
    day = day_of(visit)
    same_slot = [
        a
        for a in appointments.list_appointments(gw, day, day).items
        if a.scheduled_time == visit.scheduled_time and a.doctor_id == visit.doctor_id
    ]
    assert len(same_slot) == 2
    creates = [r for r in audit_report.query(wiring.app_engine()) if r.action == "CREATE"]
    assert [(r.outcome, json.loads(r.details)["overlap_override"]) for r in creates] == [
        ("SUCCESS", False),  # the intent row of the refused first try
        ("ERROR", False),
        ("SUCCESS", True),  # intent and outcome of the confirmed double booking
        ("SUCCESS", True),
    ]


def test_billing_sees_no_booking_form_no_status_buttons_and_no_reasons(connected):
    visit = waiting_visit(connected["admin"])
    assert visit.reason, "the demo visit should have a reason to withhold"
    at = open_page(connected["billing"], day=day_of(visit).isoformat())

    assert not at.expander
    assert not [b for b in at.button if b.key and b.key.startswith("appointments.status.")]
    assert not [w for w in at.selectbox if w.key and w.key.startswith("appointments.book.")]
    shown = texts(at) + "\n".join(c.value for c in at.caption)
    assert visit.reason.split()[0] not in shown

    at.segmented_control(key="appointments.view").set_value("List").run()
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    assert set(frame["Reason"]) == {"—"}
    # Billing may read the schedule: nothing the page did for it was refused.
    assert not [r for r in audit_report.query(wiring.app_engine()) if r.outcome == "DENIED"]


BAD_LINKS = [
    {"day": "2026-02-30"},
    {"day": "tomorrow"},
    {"doctor": "../../admin"},
    {"office": "-4"},
    {"doctor": "1e9"},
    {"view": "month"},
]


def test_a_bad_query_parameter_gives_a_clear_message(connected):
    for query in BAD_LINKS:
        at = open_page(connected["front_desk"], **query)
        assert any("This link could not be used" in e.value for e in at.error), query
        assert any("Data as of" in c.value for c in at.caption), query  # defaults still load

    at = open_page(connected["front_desk"], doctor="999999")
    assert any("not one of the practice's doctors" in e.value for e in at.error)
    assert not [r for r in audit_report.query(wiring.app_engine()) if r.outcome == "DENIED"]


# --- the pure helpers behind the page -------------------------------------------------------

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=NY)


def form(**changes) -> BookingForm:
    values = {
        "patient_id": 1,
        "doctor_id": 2,
        "office_id": 3,
        "exam_room": 1,
        "profile": None,
        "day": date(2026, 3, 3),
        "at": time(9, 30),
        "duration_minutes": 20,
        "reason": "Follow-up",
        "past_visit": False,
    }
    return BookingForm(**{**values, **changes})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"at": None}, "time"),
        ({"patient_id": None}, "patient_id"),
        ({"duration_minutes": 4}, "duration_minutes"),
        ({"duration_minutes": 481}, "duration_minutes"),
        ({"duration_minutes": None}, "duration_minutes"),
        ({"day": date(2026, 3, 1)}, "time"),  # in the past
        ({"day": date(2026, 3, 8), "at": time(2, 30)}, "time"),  # the DST gap in New York
        ({"reason": "x\x00y"}, "reason"),
        ({"reason": "x" * 201}, "reason"),
    ],
)
def test_booking_validation_names_the_field_and_builds_no_draft(changes, field):
    draft, errors = validate_booking(form(**changes), NOW, NY)
    assert draft is None
    assert field in errors


def test_a_valid_booking_becomes_an_aware_draft_and_a_past_visit_needs_the_tick():
    draft, errors = validate_booking(form(), NOW, NY)
    assert not errors
    assert draft is not None
    assert draft.scheduled_time == datetime(2026, 3, 3, 9, 30, tzinfo=NY)
    assert (draft.duration_minutes, draft.reason) == (20, "Follow-up")
    past, errors = validate_booking(form(day=date(2026, 3, 1), past_visit=True), NOW, NY)
    assert past is not None
    assert not errors


def test_upstream_text_is_escaped_before_it_reaches_markdown():
    escaped = escape_md("[x](javascript:alert(1)) :red[big] $x$ <b>\nnext")
    assert "\n" not in escaped
    for raw in ("[x]", "](", ":red[", "$x$", "<b>"):
        assert raw not in escaped


def test_the_status_buttons_follow_the_visit_flow():
    assert status_actions(AppointmentStatus.BOOKED) == (
        AppointmentStatus.ARRIVED,
        AppointmentStatus.CANCELLED,
        AppointmentStatus.NO_SHOW,
    )
    assert status_actions(AppointmentStatus.ARRIVED)[0] is AppointmentStatus.CHECKED_IN
    assert status_actions(AppointmentStatus.CHECKED_IN)[0] is AppointmentStatus.IN_ROOM
    assert status_actions(AppointmentStatus.IN_ROOM)[0] is AppointmentStatus.COMPLETE
    assert status_actions(AppointmentStatus.COMPLETE) == ()
    assert status_actions(Other("Waiting Room 2")) == (AppointmentStatus.CANCELLED,)


def test_query_parameters_are_parsed_strictly():
    query, problems = parse_query({"view": "Week", "day": "2026-03-02", "doctor": "12"})
    assert (query.view, query.day, query.doctor_id, problems) == (
        "Week",
        date(2026, 3, 2),
        12,
        [],
    )
    _, problems = parse_query({"doctor": ["1", "2"], "day": "2026-3-2"})
    assert len(problems) == 2
