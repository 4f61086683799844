"""DrChrono JSON -> models (strict about shape, tolerant about values), writes, quirks, protocol."""

import dataclasses
import inspect
import itertools
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ehr.backend import EHRBackend
from ehr.drchrono import mapping, quirks
from ehr.errors import DuplicatePatientError, UpstreamDataError, ValidationFailedError
from ehr.models import (
    AppointmentBillingStatus,
    AppointmentChanges,
    AppointmentDraft,
    AppointmentStatus,
    ClaimStatus,
    DataQuality,
    Gender,
    Other,
    Page,
    PatientChanges,
    PatientDraft,
    PatientStatus,
    QualityIssue,
)
from ehr.models_clinical import ClinicalStatus, ProblemDraft

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "drchrono"
NY = ZoneInfo("America/New_York")


def load(name):
    return json.loads((FIXTURES / name).read_text())


def records(name):
    return quirks.list_key(load(name))


@pytest.fixture
def quality():
    return DataQuality()


# --- patients -------------------------------------------------------------------------------


def test_patient_maps_every_demographic(quality):
    patient = mapping.patient_from_drchrono(load("patient.json"), NY, quality)
    assert patient.id == 60000001
    assert (patient.first_name, patient.last_name, patient.preferred_name) == (
        "Zebulon",
        "Quixote",
        "Zeb",
    )
    assert patient.middle_name is None  # blank -> None
    assert patient.date_of_birth == date(1931, 3, 17)
    assert patient.gender is Gender.MALE
    assert patient.status is PatientStatus.ACTIVE
    assert patient.copay == Decimal("25.00")
    assert patient.doctor_id == 120001
    assert patient.office_ids == (130001,)
    assert patient.updated_at == datetime(2026, 2, 27, 16, 42, 10, tzinfo=NY)
    assert not hasattr(patient, "social_security_number")
    assert not quality


def test_patient_with_only_an_id_has_none_everywhere(quality):
    patient = mapping.patient_from_drchrono({"id": "42"}, NY, quality)
    assert patient.id == 42
    assert patient.first_name is None
    assert patient.gender is None
    assert patient.copay is None
    assert patient.office_ids == ()


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"id": "abc", "first_name": "Zebulon"}, "patient.id"),
        ({"id": True}, "patient.id"),
        ({"first_name": "Zebulon"}, "patient.id"),
        ({"id": 1, "first_name": ["Zebulon"]}, "patient.first_name"),
        ({"id": 1, "doctor": "Dr Zebulon"}, "patient.doctor"),
        ({"id": 1, "offices": {"a": 1}}, "patient.offices"),
        ({"id": 1, "offices": ["Quixote"]}, "patient.offices"),
        ({"id": 1, "gender": 7}, "patient.gender"),
        (["Zebulon"], "patient"),
    ],
)
def test_wrong_types_name_the_field_never_the_value(obj, field):
    with pytest.raises(UpstreamDataError) as caught:
        mapping.patient_from_drchrono(obj, NY, DataQuality())
    assert caught.value.details["field"] == field
    shown = json.dumps(caught.value.to_dict()) + str(caught.value)
    assert "Zebulon" not in shown
    assert "Quixote" not in shown
    assert "abc" not in shown


# --- appointments and vitals ----------------------------------------------------------------


def test_appointment_with_transitions_and_claim_status(quality):
    appt = mapping.appointment_from_drchrono(records("appointments.json")[0], NY, quality)
    assert appt.id == "200000001"
    assert (appt.patient_id, appt.doctor_id, appt.office_id, appt.exam_room) == (
        60000001,
        120001,
        130001,
        1,
    )
    assert appt.scheduled_time == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    assert appt.ends_at == datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    assert appt.status is AppointmentStatus.COMPLETE
    assert appt.billing_status is AppointmentBillingStatus.BILL_INSURANCE
    assert appt.claim_status_primary is ClaimStatus.PAID_IN_FULL
    assert appt.claim_status_secondary is None
    assert appt.first_billed_date == date(2026, 3, 3)
    assert appt.icd10_codes == ("I10",)
    assert [(t.from_status, t.to_status) for t in appt.status_transitions] == [
        (AppointmentStatus.BOOKED, AppointmentStatus.ARRIVED),
        (AppointmentStatus.ARRIVED, AppointmentStatus.IN_ROOM),
        (AppointmentStatus.IN_ROOM, AppointmentStatus.COMPLETE),
    ]
    assert appt.status_transitions[0].at == datetime(2026, 3, 2, 8, 52, tzinfo=NY)
    assert not quality


def test_custom_status_dst_gap_and_bad_timestamp_are_kept_and_counted(quality):
    appt = mapping.appointment_from_drchrono(records("appointments.json")[1], NY, quality)
    assert appt.status == Other("Waiting Room 2")
    assert appt.billing_status == Other("Sent to Collections")
    assert appt.claim_status_primary is ClaimStatus.IN_PROCESS_CLEARINGHOUSE
    assert appt.scheduled_time == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # gap: shifted later
    assert appt.created_at is None
    assert appt.updated_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # "Z" honoured
    assert appt.profile_id is None
    assert appt.reason is None
    assert appt.is_walk_in
    assert quality.counts == {
        (QualityIssue.UNKNOWN_VALUE, "appointment.status"): 1,
        (QualityIssue.UNKNOWN_VALUE, "appointment.billing_status"): 1,
        (QualityIssue.SHIFTED_LOCAL_TIME, "appointment.scheduled_time"): 1,
        (QualityIssue.BAD_TIMESTAMP, "appointment.created_at"): 1,
    }
    assert quality.unknown_values["appointment.status"] == {"Waiting Room 2": 1}


def test_break_with_a_string_id_and_blank_status(quality):
    appt = mapping.appointment_from_drchrono(records("appointments.json")[2], NY, quality)
    assert appt.id == "54321_20260309"
    assert appt.patient_id is None
    assert appt.is_break
    assert appt.status is AppointmentStatus.BOOKED


def test_numeric_appointment_id_becomes_text(quality):
    appt = mapping.appointment_from_drchrono({"id": 7, "doctor": 1}, NY, quality)
    assert appt.id == "7"
    with pytest.raises(UpstreamDataError) as caught:
        mapping.appointment_from_drchrono({"id": "../7", "doctor": 1}, NY, quality)
    assert caught.value.details["field"] == "appointment.id"


def test_vitals_from_a_verbose_appointment(quality):
    vitals = mapping.vitals_from_drchrono(records("appointments.json")[0], NY, quality)
    by_loinc = {v.loinc: v for v in vitals}
    assert by_loinc["8480-6"].value == Decimal(128)
    assert by_loinc["8480-6"].unit == "mm[Hg]"
    assert by_loinc["29463-7"].value == Decimal("171.2")
    assert by_loinc["39156-5"].value == Decimal("25.6")
    assert by_loinc["72514-3"].value == Decimal(0)  # pain 0 is a reading
    assert "9843-4" not in by_loinc  # head circumference 0 is "not measured"
    assert {v.taken_at for v in vitals} == {datetime(2026, 3, 2, 9, 0, tzinfo=NY)}
    assert {v.patient_id for v in vitals} == {60000001}
    assert mapping.vitals_from_drchrono(records("appointments.json")[2], NY, quality) == ()


# --- practice -------------------------------------------------------------------------------


def test_doctors_offices_profiles_and_user(quality):
    doctor = mapping.doctor_from_drchrono(records("doctors.json")[0], NY, quality)
    assert doctor.display_name == "Rocinante Sancho MD"
    assert doctor.practice_group_id == 88001
    office = mapping.office_from_drchrono(records("offices.json")[0], NY, quality)
    assert [(r.index, r.name, r.online_scheduling) for r in office.exam_rooms] == [
        (1, "Room 1", True),
        (2, "Room 2", False),
    ]
    profile = mapping.appointment_profile_from_drchrono(
        records("appointment_profiles.json")[0], NY, quality
    )
    assert (profile.duration_minutes, profile.color) == (20, "#3498DB")
    user = mapping.user_from_drchrono(load("user_current.json"), NY, quality)
    assert (user.id, user.doctor_id, user.practice_group_id, user.is_staff) == (
        90001,
        120001,
        88001,
        True,
    )
    assert "billing" in user.permissions
    stringly = mapping.user_from_drchrono(
        {"id": "90001", "is_doctor": "True", "permissions": "all"}, NY, quality
    )
    assert stringly.is_doctor
    assert stringly.permissions == ()
    assert not quality


# --- clinical -------------------------------------------------------------------------------


def test_problems_from_a_data_envelope(quality):
    first, second = (
        mapping.problem_from_drchrono(p, NY, quality) for p in records("problems.json")
    )
    assert first.status is ClinicalStatus.ACTIVE
    assert (first.icd_code, first.date_onset, first.date_changed) == ("I10", date(2015, 6, 1), None)
    assert second.status == Other("in remission")
    assert second.date_onset is None
    assert quality.total(QualityIssue.UNKNOWN_VALUE) == 1
    assert quality.total(QualityIssue.BAD_DATE) == 1


def test_medications_allergies_labs_and_notes(quality):
    med = mapping.medication_from_drchrono(records("medications.json")[0], NY, quality)
    assert (med.rxnorm, med.status, med.date_stopped_taking) == (
        "314076",
        ClinicalStatus.ACTIVE,
        None,
    )
    allergy = mapping.allergy_from_drchrono(records("allergies.json")[0], NY, quality)
    assert (allergy.description, allergy.reaction) == ("Penicillin", "Hives")
    lab = mapping.lab_result_from_drchrono(
        records("lab_results.json")[0], NY, quality, patient_id=60000001
    )
    assert (lab.test, lab.value, lab.unit, lab.normal_range) == ("Glucose", "112", "mg/dL", "70 99")
    assert (lab.abnormal_flag, lab.is_abnormal, lab.numeric_value) == ("H", True, Decimal(112))
    assert (lab.loinc, lab.order_id, lab.patient_id) == ("2345-7", 34000001, 60000001)
    chart_lab = mapping.patient_lab_result_from_drchrono(
        records("patient_lab_results.json")[0], NY, quality
    )
    assert (chart_lab.test, chart_lab.loinc, chart_lab.is_abnormal) == (
        "Hemoglobin A1c",
        "4548-4",
        False,
    )
    assert chart_lab.numeric_value == Decimal("5.4")
    assert chart_lab.performed_on == date(2026, 2, 20)
    note = mapping.clinical_note_from_drchrono(load("clinical_note.json"), NY, quality)
    assert note.locked
    assert note.appointment_id == "200000001"
    assert note.sections[0].name == "Assessment"
    assert note.sections[0].values[0].value == "Blood pressure controlled."
    assert not quality


# --- billing --------------------------------------------------------------------------------


def test_line_item_money_is_decimal_and_bad_amounts_are_counted(quality):
    good, bad = (
        mapping.line_item_from_drchrono(li, NY, quality) for li in records("line_items.json")
    )
    assert good.price == Decimal("1234.50")  # "1,234.50"
    assert good.adjustment == Decimal("-1124.20")
    assert good.allowed == Decimal("110.3")  # a JSON number
    assert good.quantity == Decimal("1.0")
    assert (good.appointment_id, good.patient_id, good.doctor_id) == ("200000001", 60000001, 120001)
    assert good.claim_status is ClaimStatus.PAID_IN_FULL
    assert good.modifiers == ("25",)
    assert bad.price is None
    assert bad.billed is None
    assert bad.allowed is None
    assert bad.adjustment is None
    assert bad.claim_status == Other("Sent to Collections")
    assert bad.denied
    assert quality.counts == {
        (QualityIssue.BAD_MONEY, "line_item.price"): 1,
        (QualityIssue.BAD_MONEY, "line_item.billed"): 1,
        (QualityIssue.UNKNOWN_VALUE, "line_item.billing_status"): 1,
    }


def test_transactions_payments_and_payers(quality):
    txn = mapping.transaction_from_drchrono(records("transactions.json")[0], NY, quality)
    assert (txn.ins_paid, txn.adjustment, txn.payer_name) == (
        Decimal("88.24"),
        Decimal("1124.20"),
        "Windmill Mutual",
    )
    assert (txn.insurer_rank, txn.adjustment_group_code, txn.check_date) == (
        1,
        "CO",
        date(2026, 3, 18),
    )
    payment, refund = (
        mapping.patient_payment_from_drchrono(p, NY, quality)
        for p in records("patient_payments.json")
    )
    assert payment.amount == Decimal("22.06")
    assert payment.appointment_id == "200000001"
    assert refund.amount == Decimal("-5.0")
    assert refund.appointment_id is None
    payers = [mapping.insurance_from_drchrono(i, NY, quality) for i in records("insurances.json")]
    assert [(p.payer_id, p.state) for p in payers] == [("WM001", "NY"), ("00431", None)]
    with pytest.raises(UpstreamDataError):
        mapping.insurance_from_drchrono({"payer_name": "x"}, NY, quality)
    assert not quality


# --- writes ---------------------------------------------------------------------------------


def test_patient_changes_send_only_the_changed_fields():
    changes: PatientChanges = {"gender": Gender.ASKED_DECLINED, "doctor_id": 120002, "email": ""}
    assert mapping.patient_to_drchrono(changes, NY) == {
        "gender": "ASKU",
        "doctor": 120002,
        "email": "",
    }
    with pytest.raises(ValueError, match="id cannot be written"):
        mapping.patient_to_drchrono({"id": 5}, NY)  # type: ignore[typeddict-unknown-key]


def test_patient_draft_uses_drchrono_names_and_formats():
    draft = PatientDraft("Zebulon", "Quixote", date(1931, 3, 17), Gender.MALE, 120001)
    assert mapping.patient_to_drchrono(draft, NY) == {
        "first_name": "Zebulon",
        "last_name": "Quixote",
        "date_of_birth": "1931-03-17",
        "gender": "Male",
        "doctor": 120001,
    }


def test_appointment_times_are_written_naive_in_practice_time():
    draft = AppointmentDraft(
        patient_id=60000001,
        doctor_id=120001,
        office_id=130001,
        exam_room=1,
        scheduled_time=datetime(2026, 7, 1, 13, 30, tzinfo=UTC),
        duration_minutes=30,
    )
    body = mapping.appointment_to_drchrono(draft, NY)
    assert body == {
        "patient": 60000001,
        "doctor": 120001,
        "office": 130001,
        "exam_room": 1,
        "scheduled_time": "2026-07-01T09:30:00",
        "duration": 30,
        "is_walk_in": False,
    }
    custom: AppointmentChanges = {"status": Other("Waiting Room 2")}
    assert mapping.appointment_to_drchrono(custom, NY) == {"status": "Waiting Room 2"}
    booked: AppointmentChanges = {"status": AppointmentStatus.BOOKED}
    assert mapping.appointment_to_drchrono(booked, NY) == {"status": ""}
    with pytest.raises(ValueError, match="naive"):
        mapping.appointment_to_drchrono({"scheduled_time": datetime(2026, 7, 1, 9, 30)}, NY)


def test_clinical_writes():
    draft = ProblemDraft(60000001, 120001, "Essential hypertension", icd_code="I10")
    assert mapping.problem_to_drchrono(draft, NY) == {
        "patient": 60000001,
        "doctor": 120001,
        "name": "Essential hypertension",
        "icd_code": "I10",
        "status": "active",
    }
    assert mapping.clinical_status_to_drchrono(ClinicalStatus.RESOLVED) == {"status": "resolved"}


def test_validation_errors_can_be_renamed_to_form_fields():
    error = ValidationFailedError(details={"fields": {"doctor": ["Required."], "nick_name": ["x"]}})
    renamed = error.renamed(mapping.form_field_names(mapping.PATIENT_FIELDS))
    assert renamed.field_errors == {"doctor_id": ["Required."], "preferred_name": ["x"]}


# --- models ---------------------------------------------------------------------------------


def test_models_are_frozen_and_pages_carry_truncation(quality):
    patient = mapping.patient_from_drchrono({"id": 1}, NY, quality)
    with pytest.raises(dataclasses.FrozenInstanceError):
        patient.first_name = "x"  # type: ignore[misc]
    page = Page(items=(patient,), next_cursor="c2", truncated=True)
    assert page.truncated
    assert page.items == (patient,)
    assert Page(items=()).truncated is False


def test_data_quality_merges_and_bounds_unknown_values():
    one, two = DataQuality(), DataQuality()
    for i in range(80):
        one.note_unknown("appointment.status", f"Custom {i}")
    two.note_unknown("appointment.status", "Custom 1")
    two.note(QualityIssue.BAD_MONEY, "line_item.price")
    one.merge(two)
    assert one.total() == 82
    assert one.total(QualityIssue.BAD_MONEY) == 1
    assert len(one.unknown_values["appointment.status"]) == 50
    assert one.unknown_values["appointment.status"]["Custom 1"] == 2


# --- quirks (one test each) -----------------------------------------------------------------


def test_list_key_accepts_results_or_data_and_names_bad_envelopes():
    assert quirks.list_key({"results": [1], "next": None}) == [1]
    assert quirks.list_key({"data": [2]}) == [2]
    for envelope, field in (({"results": {}}, "results"), ({}, "results"), ([], "envelope")):
        with pytest.raises(UpstreamDataError) as caught:
            quirks.list_key(envelope)
        assert caught.value.details["field"] == field


def test_date_range_param_and_split():
    assert quirks.date_range_param(date(2026, 1, 1), date(2026, 7, 9)) == "2026-01-01/2026-07-09"
    with pytest.raises(ValueError, match="190"):
        quirks.date_range_param(date(2026, 1, 1), date(2026, 7, 10))
    with pytest.raises(ValueError, match="before"):
        quirks.date_range_param(date(2026, 1, 2), date(2026, 1, 1))
    chunks = quirks.split_date_range(date(2025, 1, 1), date(2026, 12, 31))
    assert chunks[0] == (date(2025, 1, 1), date(2025, 7, 9))
    assert chunks[-1][1] == date(2026, 12, 31)
    assert all((end - start).days + 1 <= 190 for start, end in chunks)
    assert all(b[0].toordinal() == a[1].toordinal() + 1 for a, b in itertools.pairwise(chunks))
    assert quirks.split_date_range(date(2026, 1, 1), date(2026, 1, 1)) == [
        (date(2026, 1, 1), date(2026, 1, 1))
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(200000001, "200000001"), ("200000001", "200000001"), ("54321_20260309", "54321_20260309")],
)
def test_appointment_id_is_text(value, expected):
    assert quirks.appointment_id(value) == expected
    for bad in (True, "", "a/b", "x" * 65, 1.5, None):
        with pytest.raises(ValueError, match="appointment id"):
            quirks.appointment_id(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.30", Decimal("12.30")),
        ("1,234.50", Decimal("1234.50")),
        ("-5", Decimal("-5")),
        (" 7.10 ", Decimal("7.10")),
        (12, Decimal(12)),
        (12.3, Decimal("12.3")),
        (None, None),
        ("", None),
    ],
)
def test_parse_money(value, expected):
    assert quirks.parse_money(value) == expected
    for bad in ("NaN", "Infinity", "1e5", "12,34", "1,2345.00", "$5", True, float("nan"), [1]):
        with pytest.raises(ValueError, match="money"):
            quirks.parse_money(bad)


def test_conflict_wording():
    assert quirks.is_duplicate_patient_conflict("Potential duplicate patient(s) found.")
    assert not quirks.is_duplicate_patient_conflict("Cannot modify a locked clinical note.")
    assert quirks.is_overlap_conflict("Scheduled time overlaps an existing appointment.")
    assert quirks.is_overlap_conflict("This would double-book the room.")
    assert not quirks.is_overlap_conflict("Potential duplicate patient(s) found.")


# --- the backend protocol -------------------------------------------------------------------


def test_backend_protocol_is_documented_and_vendor_neutral():
    methods = [
        (name, member)
        for name, member in inspect.getmembers(EHRBackend, inspect.isfunction)
        if not name.startswith("_")
    ]
    assert len(methods) >= 30
    for name, member in methods:
        assert member.__doc__, name
        source = inspect.getsource(member).lower()
        assert "drchrono" not in source, name
        assert "http" not in source, name
    assert "allow_duplicate" in inspect.signature(EHRBackend.create_patient).parameters
    assert "allow_overlap" in inspect.signature(EHRBackend.create_appointment).parameters


def test_an_object_missing_methods_is_not_a_backend():
    class Partial:
        def current_user(self):
            raise DuplicatePatientError

    assert not isinstance(Partial(), EHRBackend)
