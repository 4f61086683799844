"""Clinical chart services: problems, medications, allergies, vitals, labs and notes.

Every read names the patient in the audit row (opening a chart is an access to that patient's
record); status changes record old and new status, never the clinical text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from ehr.models import Other, Page
from ehr.models_clinical import (
    Allergy,
    AllergyDraft,
    ClinicalNote,
    ClinicalStatus,
    LabResult,
    Medication,
    MedicationDraft,
    Problem,
    ProblemDraft,
    Vital,
)
from ehr.policy import Action
from ehr.services.gateway import Gateway, ServiceDecorator, service
from storage.audit import AuditAction

__all__ = [
    "create_allergy",
    "create_medication",
    "create_problem",
    "get_clinical_note",
    "list_allergies",
    "list_clinical_notes",
    "list_lab_results",
    "list_medications",
    "list_problems",
    "list_vitals",
    "update_allergy_status",
    "update_medication_status",
    "update_problem_status",
]


def _chart_read(resource: str) -> ServiceDecorator:
    """A read of one part of a patient's chart: audited against that patient, cached."""
    return service(
        Action.CLINICAL_READ,
        AuditAction.READ,
        resource,
        "clinical",
        patient_arg="patient_id",
        cached=True,
    )


def _status_change(arguments: Mapping[str, Any]) -> dict[str, Any]:
    def label(value: object) -> str | None:
        if isinstance(value, Other):
            return value.raw
        return getattr(value, "value", None)

    expected = arguments.get("expected")
    return {
        "old_status": label(getattr(expected, "status", None)) if expected else None,
        "new_status": label(arguments["status"]),
    }


@_chart_read("problem")
def list_problems(gw: Gateway, patient_id: int) -> Page[Problem]:
    """The patient's problem list."""
    return gw.backend().list_problems(patient_id)


@_chart_read("medication")
def list_medications(gw: Gateway, patient_id: int) -> Page[Medication]:
    """The patient's medication list."""
    return gw.backend().list_medications(patient_id)


@_chart_read("allergy")
def list_allergies(gw: Gateway, patient_id: int) -> Page[Allergy]:
    """The patient's allergies."""
    return gw.backend().list_allergies(patient_id)


@_chart_read("vital")
def list_vitals(
    gw: Gateway, patient_id: int, *, start: date | None = None, end: date | None = None
) -> Page[Vital]:
    """Vital-sign readings, oldest first, optionally within dates."""
    return gw.backend().list_vitals(patient_id, start=start, end=end)


@_chart_read("lab_result")
def list_lab_results(gw: Gateway, patient_id: int) -> Page[LabResult]:
    """The patient's lab results with ranges and flags."""
    return gw.backend().list_lab_results(patient_id)


@_chart_read("clinical_note")
def list_clinical_notes(
    gw: Gateway, patient_id: int, *, start: date | None = None, end: date | None = None
) -> Page[ClinicalNote]:
    """The patient's clinical notes, optionally within dates."""
    return gw.backend().list_clinical_notes(patient_id, start=start, end=end)


@service(
    Action.CLINICAL_READ,
    AuditAction.READ,
    "clinical_note",
    "clinical",
    resource_arg="note_id",
    cached=True,
)
def get_clinical_note(gw: Gateway, note_id: int) -> ClinicalNote:
    """One clinical note with its sections."""
    return gw.backend().get_clinical_note(note_id)


def _create(resource: str) -> ServiceDecorator:
    return service(
        Action.CLINICAL_WRITE,
        AuditAction.CREATE,
        resource,
        "clinical",
        patient_arg="draft.patient_id",
        invalidates=(resource,),
    )


def _status_update(resource: str, id_arg: str) -> ServiceDecorator:
    return service(
        Action.CLINICAL_WRITE,
        AuditAction.UPDATE,
        resource,
        "clinical",
        resource_arg=id_arg,
        patient_arg="expected.patient_id",
        invalidates=(resource,),
        describe=_status_change,
    )


@_create("problem")
def create_problem(gw: Gateway, draft: ProblemDraft) -> Problem:
    """Add a problem to the patient's list."""
    return gw.backend().create_problem(draft)


@_create("medication")
def create_medication(gw: Gateway, draft: MedicationDraft) -> Medication:
    """Add a medication."""
    return gw.backend().create_medication(draft)


@_create("allergy")
def create_allergy(gw: Gateway, draft: AllergyDraft) -> Allergy:
    """Add an allergy."""
    return gw.backend().create_allergy(draft)


@_status_update("problem", "problem_id")
def update_problem_status(
    gw: Gateway, problem_id: int, status: ClinicalStatus, *, expected: Problem | None = None
) -> None:
    """Change a problem's status; refused if it changed upstream since ``expected`` was read."""
    gw.backend().update_problem_status(problem_id, status, expected=expected)


@_status_update("medication", "medication_id")
def update_medication_status(
    gw: Gateway, medication_id: int, status: ClinicalStatus, *, expected: Medication | None = None
) -> None:
    """Change a medication's status."""
    gw.backend().update_medication_status(medication_id, status, expected=expected)


@_status_update("allergy", "allergy_id")
def update_allergy_status(
    gw: Gateway, allergy_id: int, status: ClinicalStatus, *, expected: Allergy | None = None
) -> None:
    """Change an allergy's status."""
    gw.backend().update_allergy_status(allergy_id, status, expected=expected)
