"""DrChronoBackend against a real sandbox over HTTP: every method, paging, cursors, writes.

Expected values come from the sandbox's store (what upstream holds), request counts from the
transport and the sandbox's request log, so each test fails if the backend reads the wrong
thing, pages wrongly, makes a call per record or writes when it must not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import math
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from ehr.backend import EHRBackend
from ehr.drchrono import endpoints
from ehr.drchrono.backend import DrChronoBackend
from ehr.drchrono.quirks import split_date_range
from ehr.errors import (
    ChangedUpstreamError,
    DuplicatePatientError,
    NotFoundError,
    OverlappingAppointmentError,
    UnsafeRedirectError,
    UnsupportedOperationError,
    ValidationFailedError,
)
from ehr.models import (
    AppointmentDraft,
    AppointmentStatus,
    Gender,
    Other,
    Page,
    PatientDraft,
)
from ehr.models_clinical import AllergyDraft, ClinicalStatus, MedicationDraft, ProblemDraft
from ehr.sandbox.faults import LogEntry
from ehr.sandbox.server import SandboxServer
from tests.ehr.drchrono.conftest import PRACTICE_TZ, TODAY, Connected, connect

# How long to wait for the sandbox's request log to catch up with a just-answered request.
LOG_WAIT_S = 2.0
# Far beyond the generated schedule (one month ahead of TODAY): free slots for booking tests.
FREE_DAY = dt.date(2026, 3, 2)
_slot_minutes = iter(range(0, 10_000, 45))


def rows(server: SandboxServer, resource: str) -> list[dict[str, Any]]:
    return [record for _key, record, _stamp in server.store.scan(resource)]


def logged(server: SandboxServer, method: str, path: str, minimum: int) -> list[LogEntry]:
    """The request-log entries for ``method path``, once at least ``minimum`` are there.

    The sandbox logs a request just after answering it, so the newest entry can trail the
    client's view by a moment; this polls briefly (never long) for it.
    """
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        entries = [e for e in server.request_log.entries() if (e.method, e.path) == (method, path)]
        if len(entries) >= minimum or time.monotonic() > deadline:
            return entries
        time.sleep(0.005)


def unique_name() -> str:
    return "Zq" + uuid.uuid4().hex[:10]


def draft(server: SandboxServer, **overrides: Any) -> PatientDraft:
    values: dict[str, Any] = {
        "first_name": unique_name(),
        "last_name": unique_name(),
        "date_of_birth": dt.date(1971, 4, 2),
        "gender": Gender.FEMALE,
        "doctor_id": int(rows(server, "doctors")[0]["id"]),
    }
    values.update(overrides)
    return PatientDraft(**values)


def next_slot() -> dt.datetime:
    """A fresh 30-minute slot on the free day (45 minutes apart, so never overlapping)."""
    start = dt.datetime.combine(FREE_DAY, dt.time(7, 0), tzinfo=PRACTICE_TZ)
    return start + dt.timedelta(minutes=next(_slot_minutes))


def booking(server: SandboxServer, patient_id: int, when: dt.datetime) -> AppointmentDraft:
    office = rows(server, "offices")[0]
    return AppointmentDraft(
        patient_id=patient_id,
        doctor_id=int(rows(server, "doctors")[0]["id"]),
        office_id=int(office["id"]),
        exam_room=int(office["exam_rooms"][0]["index"]),
        scheduled_time=when,
        duration_minutes=30,
    )


def walk(pages: Iterator[Page[Any]]) -> list[Page[Any]]:
    return list(pages)


def search_all(backend: DrChronoBackend, **criteria: Any) -> list[int]:
    """Ids of every patient a search finds, following its cursors."""
    page = backend.search_patients(**criteria)
    found = [p.id for p in page.items]
    while page.next_cursor is not None:
        page = backend.search_patients(**criteria, cursor=page.next_cursor)
        found.extend(p.id for p in page.items)
    return found


def patient_with(server: SandboxServer, resource: str) -> int:
    """The patient with the most records in ``resource``."""
    counts: dict[int, int] = {}
    for record in rows(server, resource):
        if record.get("patient") is not None:
            counts[int(record["patient"])] = counts.get(int(record["patient"]), 0) + 1
    return max(counts, key=lambda pid: counts[pid])


# --- the protocol -----------------------------------------------------------------------------


def test_the_backend_implements_every_protocol_method(conn: Connected):
    assert isinstance(conn.backend, EHRBackend)
    for name, member in inspect.getmembers(EHRBackend, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = getattr(DrChronoBackend, name)
        assert inspect.signature(ours) == inspect.signature(member), name


# --- practice ---------------------------------------------------------------------------------


def test_current_user_follows_the_same_origin_redirect(server: SandboxServer, conn: Connected):
    user = conn.backend.current_user()
    demo = next(r for r in rows(server, "users") if r["username"] == "demo")
    assert (user.id, user.username) == (demo["id"], "demo")
    assert user.doctor_id == int(rows(server, "doctors")[0]["id"])
    assert conn.transport.requests_made == 2  # the 302 and the user it points at


def test_practice_lists_match_upstream(server: SandboxServer, conn: Connected):
    doctors = conn.backend.list_doctors()
    offices = conn.backend.list_offices()
    profiles = conn.backend.list_appointment_profiles()
    assert {d.id for d in doctors.items} == {r["id"] for r in rows(server, "doctors")}
    assert {o.id for o in offices.items} == {r["id"] for r in rows(server, "offices")}
    assert offices.items[0].exam_rooms  # rooms are read from the real array shape
    assert {p.id for p in profiles.items} == {r["id"] for r in rows(server, "appointment_profiles")}
    assert conn.transport.requests_made == 3  # one page each
    assert not (doctors.truncated)
    assert not (offices.truncated)
    assert not (profiles.truncated)


def test_profiles_filter_by_doctor(server: SandboxServer, conn: Connected):
    doctor = int(rows(server, "doctors")[0]["id"])
    page = conn.backend.list_appointment_profiles(doctor_id=doctor)
    expected = {r["id"] for r in rows(server, "appointment_profiles") if r.get("doctor") == doctor}
    assert {p.id for p in page.items} == expected
    assert conn.backend.list_appointment_profiles(doctor_id=999_999_999).items == ()


def test_insurances_search_the_payer_directory(server: SandboxServer, conn: Connected):
    everything = conn.backend.list_insurances()
    assert len(everything.items) == len(rows(server, "insurances"))
    term = everything.items[0].payer_id
    found = conn.backend.list_insurances(term=term)
    assert term in {i.payer_id for i in found.items}
    assert 0 < len(found.items) < len(everything.items)


# --- patients ---------------------------------------------------------------------------------


def test_search_by_each_criterion(server: SandboxServer, conn: Connected):
    first = unique_name()
    last = unique_name()
    target = conn.backend.create_patient(draft(server, first_name=first, last_name=last))
    other = conn.backend.create_patient(draft(server, last_name=first))  # last name = term
    by_dob = conn.backend.search_patients(date_of_birth=dt.date(1971, 4, 2))
    assert search_all(conn.backend, name=first.upper()) == [target.id, other.id]  # first OR last
    assert search_all(conn.backend, name=last) == [target.id]
    assert target.id in {p.id for p in by_dob.items}
    assert {p.date_of_birth for p in by_dob.items} == {dt.date(1971, 4, 2)}
    assert search_all(conn.backend, chart_id=target.chart_id) == [target.id]
    assert search_all(conn.backend, name=last, date_of_birth=dt.date(1999, 1, 1)) == []


def test_a_patient_matching_both_name_queries_is_returned_once(
    server: SandboxServer, conn: Connected
):
    name = unique_name()
    same = conn.backend.create_patient(draft(server, first_name=name, last_name=name))
    assert search_all(conn.backend, name=name) == [same.id]


def test_search_pages_with_opaque_cursors_one_call_per_page(server: SandboxServer, conn: Connected):
    expected = {r["id"] for r in rows(server, "patients")}
    seen: list[int] = []
    cursor: str | None = None
    calls = 0
    while True:
        page = conn.backend.search_patients(cursor=cursor, page_size=9)
        calls += 1
        assert len(page.items) <= 9
        assert conn.transport.requests_made == calls  # one request per page, never per row
        seen.extend(p.id for p in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
        assert "http" not in cursor  # opaque, not a raw URL
    assert sorted(seen) == sorted(expected)
    assert calls == math.ceil(len(expected) / 9)


def test_a_name_search_walks_first_then_last_names_across_pages(
    server: SandboxServer, conn: Connected
):
    name = unique_name()
    ids = {conn.backend.create_patient(draft(server, first_name=name)).id for _ in range(3)}
    ids |= {conn.backend.create_patient(draft(server, last_name=name)).id for _ in range(2)}
    found = search_all(conn.backend, name=name, page_size=2)
    assert sorted(found) == sorted(ids)


def test_an_empty_first_name_query_moves_on_to_last_names_in_the_same_call(
    server: SandboxServer, conn: Connected
):
    name = unique_name()
    created = conn.backend.create_patient(draft(server, last_name=name))
    before = conn.transport.requests_made
    page = conn.backend.search_patients(name=name)
    assert [p.id for p in page.items] == [created.id]
    assert page.next_cursor is None
    assert conn.transport.requests_made - before == 2


def test_a_forged_off_origin_cursor_is_refused_before_any_request(
    server: SandboxServer, conn: Connected
):
    forged = endpoints.encode_cursor("http://evil.example/api/patients?page_size=5")
    with pytest.raises(UnsafeRedirectError):
        conn.backend.search_patients(cursor=forged)
    stream = conn.backend.iter_line_items(
        cursor=endpoints.encode_cursor("http://evil.example/api/line_items?page_size=5")
    )
    with pytest.raises(UnsafeRedirectError):
        next(stream)
    assert conn.transport.requests_made == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !!",
        endpoints.encode_cursor("http://127.0.0.1:1/api/appointments?since=2020-01-01"),
        endpoints.encode_cursor("http://127.0.0.1:1/api/patients", query_index=7),
        "eyJ1IjogMX0",  # {"u": 1}
    ],
)
def test_malformed_or_foreign_cursors_are_value_errors(conn: Connected, cursor: str):
    with pytest.raises(ValueError, match="cursor"):
        conn.backend.search_patients(cursor=cursor)
    with pytest.raises(ValueError, match="cursor"):
        conn.backend.iter_line_items(cursor=cursor)
    assert conn.transport.requests_made == 0


def test_get_create_update_delete_patient(server: SandboxServer, conn: Connected):
    created = conn.backend.create_patient(draft(server, email="a@example.test"))
    assert created.email == "a@example.test"
    assert conn.backend.get_patient(created.id) == created
    conn.backend.update_patient(created.id, {"city": "Springfield", "preferred_name": "Pat"})
    updated = conn.backend.get_patient(created.id)
    assert (updated.city, updated.preferred_name) == ("Springfield", "Pat")
    conn.backend.delete_patient(created.id)
    with pytest.raises(NotFoundError):
        conn.backend.get_patient(created.id)


def test_duplicate_patient_is_refused_then_overridden(server: SandboxServer, conn: Connected):
    earlier = len(logged(server, "POST", "/api/patients", minimum=0))
    first = conn.backend.create_patient(draft(server))
    again = draft(server, first_name=first.first_name, last_name=first.last_name)
    sent = conn.transport.requests_made
    with pytest.raises(DuplicatePatientError):
        conn.backend.create_patient(again)
    second = conn.backend.create_patient(again, allow_duplicate=True)
    assert second.id != first.id
    assert conn.transport.requests_made == sent + 2  # one POST each, never resent
    posts = logged(server, "POST", "/api/patients", minimum=earlier + 3)
    assert [(e.status, e.query_names) for e in posts[-2:]] == [
        (409, ()),
        (201, ("allow_duplicates",)),
    ]


def test_patient_field_errors_use_model_field_names(server: SandboxServer, conn: Connected):
    with pytest.raises(ValidationFailedError) as caught:
        conn.backend.create_patient(draft(server, doctor_id=987_654_321))
    assert "doctor_id" in caught.value.field_errors
    assert "doctor" not in caught.value.field_errors


def test_update_with_a_stale_expected_record_raises_without_writing(
    server: SandboxServer, conn: Connected
):
    created = conn.backend.create_patient(draft(server))
    opened = conn.backend.get_patient(created.id)
    conn.backend.update_patient(created.id, {"city": "Elsewhere"})  # someone else's edit
    sent = conn.transport.requests_made
    with pytest.raises(ChangedUpstreamError):
        conn.backend.update_patient(created.id, {"zip_code": "12345"}, expected=opened)
    assert conn.transport.requests_made == sent + 1  # the re-read only
    assert conn.backend.get_patient(created.id).zip_code != "12345"
    path = f"/api/patients/{created.id}"
    assert [e.method for e in logged(server, "PATCH", path, minimum=1)] == ["PATCH"]  # theirs


def test_update_with_expected_sends_only_changed_fields(server: SandboxServer, conn: Connected):
    created = conn.backend.create_patient(draft(server, city="Same"))
    sent = conn.transport.requests_made
    conn.backend.update_patient(created.id, {"city": "Same"}, expected=created)
    assert conn.transport.requests_made == sent + 1  # re-read; nothing changed, nothing sent
    conn.backend.update_patient(created.id, {"city": "Same", "state": "VT"}, expected=created)
    assert conn.transport.requests_made == sent + 3  # re-read and one PATCH
    assert conn.backend.get_patient(created.id).state == "VT"


# --- scheduling -------------------------------------------------------------------------------


def in_range(server: SandboxServer, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    return [
        r
        for r in rows(server, "appointments")
        if not r.get("deleted_flag")
        and start.isoformat() <= str(r["scheduled_time"])[:10] <= end.isoformat()
    ]


def test_list_appointments_pages_without_per_row_calls(server: SandboxServer, conn: Connected):
    start, end = TODAY - dt.timedelta(days=80), TODAY + dt.timedelta(days=25)
    expected = in_range(server, start, end)
    assert len(expected) > endpoints.APPOINTMENTS_PAGE_SIZE  # the walk needs several pages
    page = conn.backend.list_appointments(start, end)
    assert sorted(a.id for a in page.items) == sorted(str(r["id"]) for r in expected)
    assert not page.truncated
    assert conn.transport.requests_made == math.ceil(
        len(expected) / endpoints.APPOINTMENTS_PAGE_SIZE
    )


def test_long_ranges_are_split_into_190_day_windows(server: SandboxServer, conn: Connected):
    start, end = dt.date(2024, 6, 1), TODAY + dt.timedelta(days=40)  # three windows
    windows = split_date_range(start, end)
    assert len(windows) == 3
    page = conn.backend.list_appointments(start, end)
    assert len(page.items) == len(in_range(server, start, end))
    size = endpoints.APPOINTMENTS_PAGE_SIZE
    pages = [max(1, math.ceil(len(in_range(server, lo, hi)) / size)) for lo, hi in windows]
    assert conn.transport.requests_made == sum(pages)
    with pytest.raises(ValueError, match="before"):
        conn.backend.list_appointments(end, start)


def test_the_page_cap_marks_a_listing_truncated(server: SandboxServer):
    capped = connect(server, max_pages=1)
    start, end = TODAY - dt.timedelta(days=80), TODAY + dt.timedelta(days=25)
    page = capped.backend.list_appointments(start, end)
    assert page.truncated
    assert len(page.items) == endpoints.APPOINTMENTS_PAGE_SIZE
    assert capped.transport.requests_made == 1


def test_appointment_filters(server: SandboxServer, conn: Connected):
    start, end = TODAY - dt.timedelta(days=80), TODAY + dt.timedelta(days=25)
    expected = in_range(server, start, end)
    patient = int(next(r["patient"] for r in expected if r.get("patient")))
    mine = conn.backend.list_appointments(start, end, patient_id=patient)
    assert {a.id for a in mine.items} == {
        str(r["id"]) for r in expected if r.get("patient") == patient
    }
    complete = conn.backend.list_appointments(start, end, status=AppointmentStatus.COMPLETE)
    assert {a.id for a in complete.items} == {
        str(r["id"]) for r in expected if r["status"] == "Complete"
    }
    booked = conn.backend.list_appointments(start, end, status=AppointmentStatus.BOOKED)
    assert {a.id for a in booked.items} == {str(r["id"]) for r in expected if r["status"] == ""}


def test_iter_appointments_resumes_from_its_cursor(server: SandboxServer):
    capped = connect(server, max_pages=1)
    first = walk(capped.backend.iter_appointments())
    assert len(first) == 1
    assert first[0].truncated
    assert first[0].next_cursor is not None
    rest = walk(connect(server).backend.iter_appointments(cursor=first[0].next_cursor))
    ids = [a.id for p in first + rest for a in p.items]
    visible = [r for r in rows(server, "appointments") if not r.get("deleted_flag")]
    assert sorted(ids) == sorted(str(r["id"]) for r in visible)
    assert rest[-1].next_cursor is None
    assert any(a.status_transitions for p in rest for a in p.items)  # verbose for analytics


def test_iter_since_returns_only_records_written_since(server: SandboxServer, conn: Connected):
    stamps = sorted(stamp for _k, _r, stamp in server.store.scan("line_items"))
    since = stamps[len(stamps) // 2].date()
    expected = {k for k, _r, stamp in server.store.scan("line_items") if stamp.date() >= since}
    pages = walk(conn.backend.iter_line_items(since=since))
    assert {i.id for p in pages for i in p.items} == expected
    assert 0 < len(expected) < len(stamps)
    assert conn.transport.requests_made == len(pages)


def test_appointment_crud_overlap_and_override(server: SandboxServer, conn: Connected):
    patient = conn.backend.create_patient(draft(server))
    slot = next_slot()
    booked = conn.backend.create_appointment(booking(server, patient.id, slot))
    assert booked.scheduled_time == slot
    assert conn.backend.get_appointment(booked.id) == booked
    with pytest.raises(OverlappingAppointmentError):
        conn.backend.create_appointment(booking(server, patient.id, slot))
    double = conn.backend.create_appointment(booking(server, patient.id, slot), allow_overlap=True)
    assert double.id != booked.id
    assert double.scheduled_time == slot
    later = next_slot()
    moved = conn.backend.create_appointment(booking(server, patient.id, later))
    with pytest.raises(OverlappingAppointmentError):
        conn.backend.update_appointment(moved.id, {"scheduled_time": slot})
    conn.backend.update_appointment(moved.id, {"scheduled_time": slot}, allow_overlap=True)
    assert conn.backend.get_appointment(moved.id).scheduled_time == slot


def test_appointment_status_and_stale_edits(server: SandboxServer, conn: Connected):
    patient = conn.backend.create_patient(draft(server))
    booked = conn.backend.create_appointment(booking(server, patient.id, next_slot()))
    conn.backend.set_appointment_status(booked.id, AppointmentStatus.CHECKED_IN)
    current = conn.backend.get_appointment(booked.id)
    assert current.status is AppointmentStatus.CHECKED_IN
    sent = conn.transport.requests_made
    with pytest.raises(ChangedUpstreamError):
        conn.backend.update_appointment(booked.id, {"reason": "Follow-up"}, expected=booked)
    assert conn.transport.requests_made == sent + 1  # the re-read only
    listed = conn.backend.list_appointments(FREE_DAY, FREE_DAY, patient_id=patient.id).items[0]
    conn.backend.update_appointment(booked.id, {"reason": "Follow-up"}, expected=listed)
    assert conn.backend.get_appointment(booked.id).reason == "Follow-up"


def test_appointment_field_errors_use_model_field_names(server: SandboxServer, conn: Connected):
    patient = conn.backend.create_patient(draft(server))
    bad = booking(server, patient.id, next_slot())
    with pytest.raises(ValidationFailedError) as caught:
        conn.backend.create_appointment(dataclasses.replace(bad, duration_minutes=0))
    assert "duration_minutes" in caught.value.field_errors
    booked = conn.backend.create_appointment(bad)
    with pytest.raises(ValidationFailedError) as caught:
        conn.backend.set_appointment_status(booked.id, Other("Waiting Room 9"))
    assert "status" in caught.value.field_errors


# --- clinical ---------------------------------------------------------------------------------


def test_clinical_lists_match_upstream(server: SandboxServer, conn: Connected):
    patient = patient_with(server, "problems")
    problems = conn.backend.list_problems(patient)
    medications = conn.backend.list_medications(patient)
    allergies = conn.backend.list_allergies(patient_with(server, "allergies"))
    assert {p.id for p in problems.items} == {
        r["id"] for r in rows(server, "problems") if r["patient"] == patient
    }
    assert {m.id for m in medications.items} == {
        r["id"] for r in rows(server, "medications") if r["patient"] == patient
    }
    assert allergies.items
    assert all(a.description for a in allergies.items)
    assert conn.transport.requests_made == 3


def test_clinical_writes_and_status_changes(server: SandboxServer, conn: Connected):
    patient = conn.backend.create_patient(draft(server))
    doctor = patient.doctor_id
    assert doctor is not None
    problem = conn.backend.create_problem(ProblemDraft(patient.id, doctor, "Asthma", "J45.909"))
    medication = conn.backend.create_medication(MedicationDraft(patient.id, doctor, "Albuterol"))
    allergy = conn.backend.create_allergy(AllergyDraft(patient.id, doctor, "Penicillin"))
    assert (problem.icd_code, medication.name, allergy.description) == (
        "J45.909",
        "Albuterol",
        "Penicillin",
    )
    conn.backend.update_problem_status(problem.id, ClinicalStatus.RESOLVED, expected=problem)
    conn.backend.update_medication_status(medication.id, ClinicalStatus.INACTIVE)
    listed = conn.backend.list_allergies(patient.id).items[0]
    conn.backend.update_allergy_status(allergy.id, ClinicalStatus.INACTIVE, expected=listed)
    assert conn.backend.list_problems(patient.id).items[0].status is ClinicalStatus.RESOLVED
    assert conn.backend.list_medications(patient.id).items[0].status is ClinicalStatus.INACTIVE
    assert conn.backend.list_allergies(patient.id).items[0].status is ClinicalStatus.INACTIVE
    with pytest.raises(ChangedUpstreamError):
        conn.backend.update_problem_status(problem.id, ClinicalStatus.ACTIVE, expected=problem)
    before = conn.transport.requests_made
    with pytest.raises(UnsupportedOperationError):
        conn.backend.update_medication_status(medication.id, ClinicalStatus.RESOLVED)
    with pytest.raises(UnsupportedOperationError):
        conn.backend.update_allergy_status(allergy.id, ClinicalStatus.RESOLVED)
    assert conn.transport.requests_made == before
    with pytest.raises(ValidationFailedError) as caught:
        conn.backend.create_problem(ProblemDraft(987_654_321, doctor, "Gout"))
    assert "patient_id" in caught.value.field_errors


def test_vitals_come_from_verbose_appointments(server: SandboxServer, conn: Connected):
    with_vitals = [r for r in rows(server, "appointments") if r.get("vitals") and r["patient"]]
    patient = int(with_vitals[0]["patient"])
    visits = [r for r in with_vitals if r["patient"] == patient]
    vitals = conn.backend.list_vitals(patient)
    assert {v.appointment_id for v in vitals.items} == {
        str(r["id"]) for r in visits if any(r["vitals"].get(k) for k in ("weight", "pulse"))
    }
    taken = [v.taken_at for v in vitals.items]
    assert taken == sorted(taken)  # oldest first
    weights = [v for v in vitals.items if v.loinc == "29463-7"]
    assert weights
    assert all(isinstance(v.value, Decimal) for v in weights)
    day = vitals.items[-1].taken_at.date() if vitals.items[-1].taken_at else TODAY
    only_day = conn.backend.list_vitals(patient, start=day, end=day)
    assert only_day.items
    assert {v.taken_at.date() for v in only_day.items if v.taken_at} == {day}
    assert conn.backend.list_vitals(patient, end=dt.date(2000, 1, 1)).items == ()


def test_lab_results_make_one_list_call_per_order(server: SandboxServer, conn: Connected):
    patient = patient_with(server, "lab_orders")
    orders = {r["id"] for r in rows(server, "lab_orders") if r["patient"] == patient}
    expected = {r["id"] for r in rows(server, "lab_results") if r["lab_order"] in orders}
    page = conn.backend.list_lab_results(patient)
    assert {r.id for r in page.items} == expected
    assert {r.patient_id for r in page.items} == {patient}
    assert conn.transport.requests_made == 1 + len(orders)


def test_clinical_notes_by_visit_date(server: SandboxServer, conn: Connected):
    patient = patient_with(server, "clinical_notes")
    notes = [r for r in rows(server, "clinical_notes") if r["patient"] == patient]
    page = conn.backend.list_clinical_notes(patient)
    assert {n.id for n in page.items} == {r["id"] for r in notes}
    visit_day = {
        str(r["id"]): dt.date.fromisoformat(str(r["scheduled_time"])[:10])
        for r in rows(server, "appointments")
    }
    day = visit_day[str(notes[0]["appointment"])]
    dated = conn.backend.list_clinical_notes(patient, start=day, end=day)
    assert {n.id for n in dated.items} == {
        r["id"] for r in notes if visit_day[str(r["appointment"])] == day
    }
    later = conn.backend.list_clinical_notes(patient, start=day + dt.timedelta(days=1))
    assert {n.id for n in later.items} == {
        r["id"] for r in notes if visit_day[str(r["appointment"])] > day
    }
    note = conn.backend.get_clinical_note(notes[0]["id"])
    assert note.sections
    assert note.patient_id == patient


# --- billing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "resource"),
    [
        ("iter_line_items", "line_items"),
        ("iter_transactions", "transactions"),
        ("iter_patient_payments", "patient_payments"),
    ],
)
def test_billing_iterators_yield_every_record_one_page_per_call(
    server: SandboxServer, conn: Connected, method: str, resource: str
):
    pages = walk(getattr(conn.backend, method)())
    assert {i.id for p in pages for i in p.items} == {r["id"] for r in rows(server, resource)}
    assert conn.transport.requests_made == len(pages)
    assert pages[-1].next_cursor is None
    assert not any(p.truncated for p in pages)


def test_money_is_decimal(conn: Connected):
    page = next(conn.backend.iter_line_items())
    assert page.items
    assert all(isinstance(i.billed, Decimal) for i in page.items)
