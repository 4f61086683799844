"""DrChrono JSON <-> vendor-neutral models, as pure functions.

Reading (``*_from_drchrono(obj, tz, quality)``) is strict about structure and tolerant about
values (SECURITY.md RL-04 and §3.4):

* a record that is not an object, a missing or non-integer id, or a field of the wrong kind
  (``"id": "abc"``, a list where text belongs) raises ``UpstreamDataError`` whose details name
  the field (``"patient.id"``) and never its value;
* an unreadable timestamp, date, money amount or number becomes None and is counted in the
  ``DataQuality`` passed in; an unknown enumeration value becomes ``Other(raw)`` and is
  counted; a naive time in a DST gap is shifted (``ehr.timeutil``) and counted;
* missing optional fields are None; blank strings are None.

Writing (``*_to_drchrono``) sends only the fields given, with DrChrono's names, dates as
``YYYY-MM-DD`` and timestamps as naive practice-local ``YYYY-MM-DDTHH:MM:SS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from enum import Enum
from typing import Any

from ehr.drchrono.fields import Record, bad
from ehr.models import (
    Appointment,
    AppointmentBillingStatus,
    AppointmentChanges,
    AppointmentDraft,
    AppointmentProfile,
    AppointmentStatus,
    ClaimStatus,
    DataQuality,
    Doctor,
    EHRUser,
    ExamRoom,
    Gender,
    Office,
    Other,
    Patient,
    PatientChanges,
    PatientDraft,
    PatientStatus,
    StatusTransition,
)
from ehr.models_billing import Insurance, LineItem, PatientPayment, Transaction
from ehr.models_clinical import (
    Allergy,
    AllergyDraft,
    ClinicalNote,
    ClinicalNoteSection,
    ClinicalNoteValue,
    ClinicalStatus,
    LabResult,
    Medication,
    MedicationDraft,
    Problem,
    ProblemDraft,
    Vital,
)
from ehr.timeutil import format_practice

APPOINTMENT_STATUSES: dict[str, AppointmentStatus] = {
    "": AppointmentStatus.BOOKED,
    "Confirmed": AppointmentStatus.CONFIRMED,
    "Not Confirmed": AppointmentStatus.NOT_CONFIRMED,
    "Arrived": AppointmentStatus.ARRIVED,
    "Checked In": AppointmentStatus.CHECKED_IN,
    "Checked In Online": AppointmentStatus.CHECKED_IN_ONLINE,
    "In Room": AppointmentStatus.IN_ROOM,
    "In Session": AppointmentStatus.IN_SESSION,
    "Complete": AppointmentStatus.COMPLETE,
    "Rescheduled": AppointmentStatus.RESCHEDULED,
    "Cancelled": AppointmentStatus.CANCELLED,
    "No Show": AppointmentStatus.NO_SHOW,
}
APPOINTMENT_BILLING_STATUSES: dict[str, AppointmentBillingStatus] = {
    "Auto Accident Claim": AppointmentBillingStatus.AUTO_ACCIDENT_CLAIM,
    "Balance Due": AppointmentBillingStatus.BALANCE_DUE,
    "Bill Insurance": AppointmentBillingStatus.BILL_INSURANCE,
    "Bill Secondary Insurance": AppointmentBillingStatus.BILL_SECONDARY_INSURANCE,
    "Durable Medical Equipment Claim": AppointmentBillingStatus.DURABLE_MEDICAL_EQUIPMENT_CLAIM,
    "Internal Review": AppointmentBillingStatus.INTERNAL_REVIEW,
    "Paid In Full": AppointmentBillingStatus.PAID_IN_FULL,
    "Settled": AppointmentBillingStatus.SETTLED,
    "Worker's Comp Claim": AppointmentBillingStatus.WORKERS_COMP_CLAIM,
}
_CLEARINGHOUSES = ("Emdeon", "iHCFA", "Gateway", "Jopari", "Waystar", "EPS")
# Line-item ``billing_status`` and appointment ``ins1_status``/``ins2_status`` share one enum;
# DrChrono spells "Payer" both ways and names each clearinghouse.
CLAIM_STATUSES: dict[str, ClaimStatus] = {
    "Incomplete Information": ClaimStatus.INCOMPLETE_INFORMATION,
    **{f"In Process {c}": ClaimStatus.IN_PROCESS_CLEARINGHOUSE for c in _CLEARINGHOUSES},
    **{f"Rejected {c}": ClaimStatus.REJECTED_CLEARINGHOUSE for c in _CLEARINGHOUSES},
    "Rejected Waystar Professional": ClaimStatus.REJECTED_CLEARINGHOUSE,
    "Rejected Waystar Institutional": ClaimStatus.REJECTED_CLEARINGHOUSE,
    "HCFA Form Faxed": ClaimStatus.FORM_SENT,
    "In Process Payer": ClaimStatus.IN_PROCESS_PAYER,
    "In Process Payor": ClaimStatus.IN_PROCESS_PAYER,
    "Payer Acknowledged": ClaimStatus.PAYER_ACKNOWLEDGED,
    "Rejected Payer": ClaimStatus.REJECTED_PAYER,
    "Rejected Payor": ClaimStatus.REJECTED_PAYER,
    "Paid in Full": ClaimStatus.PAID_IN_FULL,
    "Partially Paid": ClaimStatus.PARTIALLY_PAID,
    "Coordination of Benefits": ClaimStatus.COORDINATION_OF_BENEFITS,
    "ERA Received": ClaimStatus.ERA_RECEIVED,
    "ERA Denied": ClaimStatus.ERA_DENIED,
}
GENDERS: dict[str, Gender] = {
    "Male": Gender.MALE,
    "Female": Gender.FEMALE,
    "Other": Gender.OTHER,
    "UNK": Gender.UNKNOWN,
    "ASKU": Gender.ASKED_DECLINED,
}
PATIENT_STATUSES: dict[str, PatientStatus] = {
    "A": PatientStatus.ACTIVE,
    "I": PatientStatus.INACTIVE,
    "D": PatientStatus.DECEASED,
}
CLINICAL_STATUSES: dict[str, ClinicalStatus] = {s.value: s for s in ClinicalStatus}

# (DrChrono vitals key, LOINC code, LOINC display name, unit when no ``<key>_units`` is sent);
# codes agree with the sandbox's ``codes.VITAL_SIGNS``.
VITAL_SIGNS: tuple[tuple[str, str, str, str], ...] = (
    ("height", "8302-2", "Body height", "in"),
    ("weight", "29463-7", "Body weight", "lb"),
    ("bmi", "39156-5", "Body mass index (BMI) [Ratio]", "kg/m2"),
    ("temperature", "8310-5", "Body temperature", "°F"),
    ("blood_pressure_1", "8480-6", "Systolic blood pressure", "mm[Hg]"),
    ("blood_pressure_2", "8462-4", "Diastolic blood pressure", "mm[Hg]"),
    ("pulse", "8867-4", "Heart rate", "/min"),
    ("respiratory_rate", "9279-1", "Respiratory rate", "/min"),
    ("oxygen_saturation", "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"),
    ("pain", "72514-3", "Pain severity - 0-10 verbal numeric rating", "{score}"),
    ("head_circumference", "9843-4", "Head Occipital-frontal circumference", "cm"),
)
# DrChrono reports an unfilled vital as 0; only pain has a meaningful zero.
_ZERO_IS_A_READING = frozenset({"pain"})

# Model field -> DrChrono field, for writes; inverted, they turn DrChrono's field names in
# validation errors into form field names (``ValidationFailedError.renamed``).
PATIENT_FIELDS: dict[str, str] = {
    "doctor_id": "doctor",
    "preferred_name": "nick_name",
    **{
        name: name
        for name in (
            "first_name", "middle_name", "last_name", "date_of_birth", "gender", "email",
            "home_phone", "cell_phone", "office_phone", "address", "city", "state",
            "zip_code", "chart_id",
        )
    },
}  # fmt: skip
APPOINTMENT_FIELDS: dict[str, str] = {
    "patient_id": "patient",
    "doctor_id": "doctor",
    "office_id": "office",
    "exam_room": "exam_room",
    "scheduled_time": "scheduled_time",
    "duration_minutes": "duration",
    "profile_id": "profile",
    "reason": "reason",
    "status": "status",
    "is_walk_in": "is_walk_in",
}
CLINICAL_FIELDS: dict[str, str] = {"patient_id": "patient", "doctor_id": "doctor"}


def form_field_names(fields: Mapping[str, str]) -> dict[str, str]:
    """DrChrono field name -> model field name, for ``ValidationFailedError.renamed``."""
    return {upstream: model for model, upstream in fields.items()}


def patient_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> Patient:
    """A ``Patient`` from a DrChrono patient object (raises ``UpstreamDataError``)."""
    r = Record(obj, "patient", tz, quality)
    return Patient(
        id=r.id(),
        chart_id=r.text("chart_id"),
        first_name=r.text("first_name"),
        middle_name=r.text("middle_name"),
        last_name=r.text("last_name"),
        preferred_name=r.text("nick_name"),
        date_of_birth=r.day("date_of_birth"),
        gender=r.choice("gender", GENDERS),
        email=r.text("email"),
        home_phone=r.text("home_phone"),
        cell_phone=r.text("cell_phone"),
        office_phone=r.text("office_phone"),
        address=r.text("address"),
        city=r.text("city"),
        state=r.text("state"),
        zip_code=r.text("zip_code"),
        doctor_id=r.opt_int("doctor"),
        status=r.choice("patient_status", PATIENT_STATUSES),
        preferred_language=r.text("preferred_language"),
        copay=r.money("copay"),
        payment_profile=r.text("patient_payment_profile"),
        office_ids=r.ids("offices"),
        date_of_first_appointment=r.day("date_of_first_appointment"),
        date_of_last_appointment=r.day("date_of_last_appointment"),
        created_at=r.timestamp("created_at"),
        updated_at=r.timestamp("updated_at"),
    )


def _transition(r: Record) -> StatusTransition:
    return StatusTransition(
        from_status=r.choice("from_status", APPOINTMENT_STATUSES, AppointmentStatus.BOOKED),
        to_status=r.choice("to_status", APPOINTMENT_STATUSES, AppointmentStatus.BOOKED),
        at=r.timestamp("datetime"),
    )


def appointment_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> Appointment:
    """An ``Appointment`` from a DrChrono appointment object (raises ``UpstreamDataError``).

    A blank status is ``BOOKED``; a custom status is ``Other(raw)`` and counted.
    """
    r = Record(obj, "appointment", tz, quality)
    appointment_id = r.appointment_id("id")
    if appointment_id is None:
        raise bad(r.where("id"), "missing")
    status = r.choice("status", APPOINTMENT_STATUSES, AppointmentStatus.BOOKED)
    return Appointment(
        id=appointment_id,
        doctor_id=r.id("doctor"),
        office_id=r.opt_int("office"),
        scheduled_time=r.timestamp("scheduled_time"),
        patient_id=r.opt_int("patient"),
        exam_room=r.opt_int("exam_room"),
        duration_minutes=r.opt_int("duration"),
        status=status if status is not None else AppointmentStatus.BOOKED,
        reason=r.text("reason"),
        profile_id=r.opt_int("profile"),
        is_walk_in=r.flag("is_walk_in"),
        is_break=r.flag("appt_is_break"),
        is_deleted=r.flag("deleted_flag"),
        billing_status=r.choice("billing_status", APPOINTMENT_BILLING_STATUSES),
        claim_status_primary=r.choice("ins1_status", CLAIM_STATUSES),
        claim_status_secondary=r.choice("ins2_status", CLAIM_STATUSES),
        primary_insurer_name=r.text("primary_insurer_name"),
        primary_insurer_payer_id=r.text("primary_insurer_payer_id"),
        secondary_insurer_name=r.text("secondary_insurer_name"),
        first_billed_date=r.day("first_billed_date"),
        icd10_codes=r.texts("icd10_codes"),
        status_transitions=tuple(_transition(t) for t in r.nested_list("status_transitions")),
        created_at=r.timestamp("created_at"),
        updated_at=r.timestamp("updated_at"),
    )


def vitals_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> tuple[Vital, ...]:
    """The vital signs recorded on a verbose DrChrono appointment, one ``Vital`` per reading.

    DrChrono exposes vitals only on appointments (``verbose=true``). Blank readings, and zero
    for anything but pain, are skipped; ``taken_at`` is the appointment's scheduled time.
    """
    r = Record(obj, "appointment", tz, quality)
    patient_id = r.opt_int("patient")
    vitals = r.nested("vitals")
    if patient_id is None or vitals is None:
        return ()
    taken_at = r.timestamp("scheduled_time")
    appointment_id = r.appointment_id("id")
    readings = []
    for key, loinc, name, default_unit in VITAL_SIGNS:
        value = vitals.number(key)
        if value is None or (value == 0 and key not in _ZERO_IS_A_READING):
            continue
        unit = vitals.text(f"{key}_units") or default_unit
        readings.append(Vital(patient_id, loinc, name, value, unit, taken_at, appointment_id))
    return tuple(readings)


def doctor_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> Doctor:
    """A ``Doctor`` from a DrChrono doctor object (raises ``UpstreamDataError``)."""
    r = Record(obj, "doctor", tz, quality)
    return Doctor(
        id=r.id(),
        first_name=r.text("first_name"),
        last_name=r.text("last_name"),
        suffix=r.text("suffix"),
        specialty=r.text("specialty"),
        npi_number=r.text("npi_number"),
        practice_group_id=r.opt_int("practice_group"),
        timezone=r.text("timezone"),
        is_suspended=r.flag("is_account_suspended"),
    )


def office_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> Office:
    """An ``Office`` with its exam rooms (raises ``UpstreamDataError``).

    DrChrono's schema types ``exam_rooms`` as a string; real responses send a list of
    ``{index, name, online_scheduling}``, which is what is read.
    """
    r = Record(obj, "office", tz, quality)
    rooms = tuple(
        ExamRoom(room.id("index"), room.text("name"), room.flag("online_scheduling"))
        for room in r.nested_list("exam_rooms")
    )
    return Office(
        id=r.id(),
        name=r.text("name"),
        doctor_id=r.opt_int("doctor"),
        address=r.text("address"),
        city=r.text("city"),
        state=r.text("state"),
        zip_code=r.text("zip_code"),
        phone_number=r.text("phone_number"),
        exam_rooms=rooms,
        archived=r.flag("archived"),
    )


def appointment_profile_from_drchrono(
    obj: object, tz: tzinfo, quality: DataQuality
) -> AppointmentProfile:
    """An ``AppointmentProfile`` (visit type) from DrChrono (raises ``UpstreamDataError``)."""
    r = Record(obj, "appointment_profile", tz, quality)
    return AppointmentProfile(
        id=r.id(),
        name=r.text("name"),
        doctor_id=r.opt_int("doctor"),
        duration_minutes=r.opt_int("duration"),
        reason=r.text("reason"),
        color=r.text("color"),
        online_scheduling=r.flag("online_scheduling"),
        archived=r.flag("archived"),
    )


def user_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> EHRUser:
    """The connected ``EHRUser`` from ``/api/users/current`` (raises ``UpstreamDataError``)."""
    r = Record(obj, "user", tz, quality)
    return EHRUser(
        id=r.id(),
        username=r.text("username"),
        doctor_id=r.opt_int("doctor"),
        practice_group_id=r.opt_int("practice_group"),
        is_doctor=r.flag("is_doctor"),
        is_staff=r.flag("is_staff"),
        # The schema types permissions as text; only a list of names is kept.
        permissions=r.texts("permissions") if r.has_list("permissions") else (),
    )


def problem_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> Problem:
    """A ``Problem`` from a DrChrono problem object (raises ``UpstreamDataError``)."""
    r = Record(obj, "problem", tz, quality)
    return Problem(
        id=r.id(),
        patient_id=r.id("patient"),
        doctor_id=r.opt_int("doctor"),
        name=r.text("name"),
        icd_code=r.text("icd_code"),
        icd_version=r.text("icd_version"),
        snomed_ct_code=r.text("snomed_ct_code"),
        status=r.choice("status", CLINICAL_STATUSES),
        verification_status=r.text("verification_status"),
        date_onset=r.day("date_onset"),
        date_diagnosis=r.day("date_diagnosis"),
        date_changed=r.day("date_changed"),
        notes=r.text("notes"),
    )


def medication_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> Medication:
    """A ``Medication`` from a DrChrono medication object (raises ``UpstreamDataError``)."""
    r = Record(obj, "medication", tz, quality)
    return Medication(
        id=r.id(),
        patient_id=r.id("patient"),
        doctor_id=r.opt_int("doctor"),
        name=r.text("name"),
        rxnorm=r.text("rxnorm"),
        ndc=r.text("ndc"),
        status=r.choice("status", CLINICAL_STATUSES),
        dosage_quantity=r.text("dosage_quantity"),
        dosage_units=r.text("dosage_units"),
        route=r.text("route"),
        frequency=r.text("frequency"),
        prn=r.flag("prn"),
        date_prescribed=r.day("date_prescribed"),
        date_started_taking=r.day("date_started_taking"),
        date_stopped_taking=r.day("date_stopped_taking"),
        indication=r.text("indication"),
        notes=r.text("notes"),
    )


def allergy_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> Allergy:
    """An ``Allergy`` from a DrChrono allergy object (raises ``UpstreamDataError``)."""
    r = Record(obj, "allergy", tz, quality)
    return Allergy(
        id=r.id(),
        patient_id=r.id("patient"),
        doctor_id=r.opt_int("doctor"),
        description=r.text("description"),
        reaction=r.text("reaction"),
        status=r.choice("status", CLINICAL_STATUSES),
        verification_status=r.text("verification_status"),
        snomed_code=r.text("snomed_code"),
        snomed_reaction=r.text("snomed_reaction"),
        rxnorm=r.text("rxnorm"),
        notes=r.text("notes"),
    )


def lab_result_from_drchrono(
    obj: object, tz: tzinfo, quality: DataQuality, *, patient_id: int | None = None
) -> LabResult:
    """A ``LabResult`` from ``/api/lab_results`` (an ordered test's observation).

    That resource carries no patient; pass ``patient_id`` when the caller knows it from the
    lab order. Raises ``UpstreamDataError``.
    """
    r = Record(obj, "lab_result", tz, quality)
    return LabResult(
        id=r.id(),
        patient_id=patient_id,
        test=r.text("test_performed") or r.text("observation_description"),
        value=r.text("value"),
        unit=r.text("unit"),
        normal_range=r.text("normal_range"),
        abnormal_flag=r.text("abnormal_status"),
        is_abnormal=r.opt_flag("is_abnormal"),
        loinc=r.text("observation_code"),
        numeric_value=r.number("value") if r.flag("value_is_numeric") else None,
        status=r.text("status"),
        order_id=r.opt_int("lab_order"),
        doctor_id=r.opt_int("doctor"),
    )


def patient_lab_result_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> LabResult:
    """A ``LabResult`` from ``/api/patient_lab_results`` (a result entered on the chart)."""
    r = Record(obj, "patient_lab_result", tz, quality)
    flag = r.text("lab_abnormal_flag")
    flag = None if flag == "null" else flag
    return LabResult(
        id=r.id(),
        patient_id=r.opt_int("patient"),
        test=r.text("title"),
        value=r.text("lab_result_value"),
        unit=r.text("lab_result_value_units"),
        normal_range=r.text("lab_normal_range"),
        abnormal_flag=flag,
        is_abnormal=None if flag is None else flag not in ("N",),
        loinc=r.text("loinc_code"),
        numeric_value=r.number("lab_result_value_as_float"),
        status=r.text("lab_order_status"),
        performed_on=r.day("date_test_performed"),
        doctor_id=r.opt_int("ordering_doctor"),
        updated_at=r.timestamp("updated_at"),
    )


def clinical_note_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> ClinicalNote:
    """A ``ClinicalNote`` with its sections (raises ``UpstreamDataError``)."""
    r = Record(obj, "clinical_note", tz, quality)
    sections = tuple(
        ClinicalNoteSection(
            name=s.text("name"),
            template_id=s.opt_int("clinical_note_template"),
            values=tuple(
                ClinicalNoteValue(field_id=v.opt_int("clinical_note_field"), value=v.text("value"))
                for v in s.nested_list("values")
            ),
        )
        for s in r.nested_list("clinical_note_sections")
    )
    return ClinicalNote(
        id=r.id(),
        patient_id=r.opt_int("patient"),
        appointment_id=r.appointment_id("appointment"),
        doctor_id=r.opt_int("doctor"),
        locked=r.flag("locked"),
        archived=r.flag("archived"),
        sections=sections,
        pdf_url=r.text("pdf"),
        created_at=r.timestamp("created_at"),
        updated_at=r.timestamp("updated_at"),
    )


def line_item_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> LineItem:
    """A ``LineItem`` with all money as ``Decimal`` (raises ``UpstreamDataError``)."""
    r = Record(obj, "line_item", tz, quality)
    return LineItem(
        id=r.id(),
        appointment_id=r.appointment_id("appointment"),
        patient_id=r.opt_int("patient"),
        doctor_id=r.opt_int("doctor"),
        code=r.text("code"),
        procedure_type=r.text("procedure_type"),
        description=r.text("description"),
        quantity=r.number("quantity"),
        modifiers=r.texts("modifiers"),
        diagnosis_pointers=r.texts("diagnosis_pointers"),
        price=r.money("price"),
        billed=r.money("billed"),
        allowed=r.money("allowed"),
        expected_reimbursement=r.money("expected_reimbursement"),
        adjustment=r.money("adjustment"),
        ins1_paid=r.money("ins1_paid"),
        ins2_paid=r.money("ins2_paid"),
        ins3_paid=r.money("ins3_paid"),
        ins_total=r.money("ins_total"),
        pt_paid=r.money("pt_paid"),
        paid_total=r.money("paid_total"),
        balance_ins=r.money("balance_ins"),
        balance_pt=r.money("balance_pt"),
        balance_total=r.money("balance_total"),
        claim_status=r.choice("billing_status", CLAIM_STATUSES),
        insurance_status=r.text("insurance_status"),
        denied=r.flag("denied_flag"),
        posted_date=r.day("posted_date"),
        service_date=r.day("service_date"),
        updated_at=r.timestamp("updated_at"),
    )


def transaction_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> Transaction:
    """An insurance ``Transaction`` (payment/adjustment) (raises ``UpstreamDataError``)."""
    r = Record(obj, "transaction", tz, quality)
    insurance = r.nested("insurance")
    return Transaction(
        id=r.id(),
        line_item_id=r.opt_int("line_item"),
        appointment_id=r.appointment_id("appointment"),
        patient_id=r.opt_int("patient"),
        doctor_id=r.opt_int("doctor"),
        insurer_rank=r.opt_int("ins_name"),
        ins_paid=r.money("ins_paid"),
        adjustment=r.money("adjustment"),
        adjustment_reason=r.text("adjustment_reason"),
        adjustment_group_code=r.text("adjustment_group_code"),
        claim_status_code=r.text("claim_status"),
        payer_name=insurance.text("name") if insurance else None,
        trace_number=r.text("trace_number"),
        check_date=r.day("check_date"),
        posted_date=r.day("posted_date"),
        created_at=r.timestamp("created_at"),
        updated_at=r.timestamp("updated_at"),
    )


def patient_payment_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> PatientPayment:
    """A ``PatientPayment`` (cash payment or refund) (raises ``UpstreamDataError``)."""
    r = Record(obj, "patient_payment", tz, quality)
    return PatientPayment(
        id=r.id(),
        patient_id=r.opt_int("patient"),
        amount=r.money("amount"),
        doctor_id=r.opt_int("doctor"),
        appointment_id=r.appointment_id("appointment"),
        line_item_id=r.opt_int("line_item"),
        payment_method=r.text("payment_method"),
        transaction_type=r.text("payment_transaction_type"),
        received_date=r.day("received_date"),
        posted_date=r.day("posted_date"),
        created_at=r.timestamp("created_at"),
        updated_at=r.timestamp("updated_at"),
    )


def insurance_from_drchrono(obj: object, tz: tzinfo, quality: DataQuality) -> Insurance:
    """An ``Insurance`` payer-directory entry (raises ``UpstreamDataError`` without a payer id)."""
    r = Record(obj, "insurance", tz, quality)
    payer_id = r.text("payer_id")
    if payer_id is None:
        raise bad(r.where("payer_id"), "missing")
    return Insurance(payer_id=payer_id, payer_name=r.text("payer_name"), state=r.text("state"))


def _label(value: Enum | Other, known: Mapping[str, Enum]) -> str:
    if isinstance(value, Other):
        return value.raw
    for label, member in known.items():
        if member is value:
            return label
    raise ValueError(f"{value!r} has no DrChrono label")


def _write_value(value: object, tz: tzinfo) -> object:
    if isinstance(value, Gender):
        return _label(value, GENDERS)
    if isinstance(value, AppointmentStatus | Other):
        return _label(value, APPOINTMENT_STATUSES)
    if isinstance(value, ClinicalStatus):
        return value.value
    if isinstance(value, datetime):
        return format_practice(value, tz)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _to_drchrono(
    values: Mapping[str, object], fields: Mapping[str, str], tz: tzinfo, skip_none: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ValueError(f"{key} cannot be written")
        if value is None and skip_none:
            continue
        body[fields[key]] = _write_value(value, tz)
    return body


_Draft = PatientDraft | AppointmentDraft | ProblemDraft | MedicationDraft | AllergyDraft


def _draft_fields(draft: _Draft) -> dict[str, object]:
    return {f.name: getattr(draft, f.name) for f in dataclasses.fields(draft)}


def _clinical_to_drchrono(
    draft: ProblemDraft | MedicationDraft | AllergyDraft, tz: tzinfo
) -> dict[str, Any]:
    values = _draft_fields(draft)
    fields = {key: CLINICAL_FIELDS.get(key, key) for key in values}
    return _to_drchrono(values, fields, tz, skip_none=True)


def patient_to_drchrono(data: PatientDraft | PatientChanges, tz: tzinfo) -> dict[str, Any]:
    """The DrChrono JSON body for creating (draft) or changing (only the keys given) a patient.

    Raises ``ValueError`` for a key that is not a writable demographic field.
    """
    if isinstance(data, PatientDraft):
        return _to_drchrono(_draft_fields(data), PATIENT_FIELDS, tz, skip_none=True)
    return _to_drchrono(dict(data), PATIENT_FIELDS, tz, skip_none=False)


def appointment_to_drchrono(
    data: AppointmentDraft | AppointmentChanges, tz: tzinfo
) -> dict[str, Any]:
    """The DrChrono JSON body for creating or changing an appointment.

    ``scheduled_time`` (aware) is written as naive practice-local time. Raises ``ValueError``
    for an unwritable key or a naive ``scheduled_time``.
    """
    if isinstance(data, AppointmentDraft):
        return _to_drchrono(_draft_fields(data), APPOINTMENT_FIELDS, tz, skip_none=True)
    return _to_drchrono(dict(data), APPOINTMENT_FIELDS, tz, skip_none=False)


def problem_to_drchrono(draft: ProblemDraft, tz: tzinfo) -> dict[str, Any]:
    """The DrChrono JSON body for adding a problem."""
    return _clinical_to_drchrono(draft, tz)


def medication_to_drchrono(draft: MedicationDraft, tz: tzinfo) -> dict[str, Any]:
    """The DrChrono JSON body for adding a medication."""
    return _clinical_to_drchrono(draft, tz)


def allergy_to_drchrono(draft: AllergyDraft, tz: tzinfo) -> dict[str, Any]:
    """The DrChrono JSON body for adding an allergy."""
    return _clinical_to_drchrono(draft, tz)


def clinical_status_to_drchrono(status: ClinicalStatus) -> dict[str, Any]:
    """The PATCH body changing a problem's, medication's or allergy's status."""
    return {"status": status.value}
