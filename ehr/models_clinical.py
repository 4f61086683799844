"""Vendor-neutral clinical models: problems, medications, allergies, vitals, labs, notes.

Same conventions as ``ehr.models``: frozen and slotted, aware timestamps, unknown enumeration
values kept as ``Other(raw)``. Every field here is PHI; none of it is ever logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from ehr.models import Other

__all__ = [
    "Allergy",
    "AllergyDraft",
    "ClinicalNote",
    "ClinicalNoteSection",
    "ClinicalNoteValue",
    "ClinicalStatus",
    "LabResult",
    "Medication",
    "MedicationDraft",
    "Problem",
    "ProblemDraft",
    "Vital",
]


class ClinicalStatus(StrEnum):
    """Status of a problem, medication or allergy (medications and allergies never "resolve")."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Problem:
    """An entry on the problem list, coded in ICD-10 (or ICD-9) and optionally SNOMED CT."""

    id: int
    patient_id: int
    doctor_id: int | None = None
    name: str | None = None
    icd_code: str | None = None
    icd_version: str | None = None
    snomed_ct_code: str | None = None
    status: ClinicalStatus | Other | None = None
    verification_status: str | None = None
    date_onset: date | None = None
    date_diagnosis: date | None = None
    date_changed: date | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class ProblemDraft:
    """A problem to add to a patient's list."""

    patient_id: int
    doctor_id: int
    name: str
    icd_code: str | None = None
    status: ClinicalStatus = ClinicalStatus.ACTIVE
    date_onset: date | None = None
    date_diagnosis: date | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class Medication:
    """A medication on the patient's list, coded in RxNorm when known."""

    id: int
    patient_id: int
    doctor_id: int | None = None
    name: str | None = None
    rxnorm: str | None = None
    ndc: str | None = None
    status: ClinicalStatus | Other | None = None
    dosage_quantity: str | None = None
    dosage_units: str | None = None
    route: str | None = None
    frequency: str | None = None
    prn: bool = False
    date_prescribed: date | None = None
    date_started_taking: date | None = None
    date_stopped_taking: date | None = None
    indication: str | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class MedicationDraft:
    """A medication to add to a patient's list."""

    patient_id: int
    doctor_id: int
    name: str
    rxnorm: str | None = None
    dosage_quantity: str | None = None
    dosage_units: str | None = None
    route: str | None = None
    frequency: str | None = None
    date_started_taking: date | None = None
    indication: str | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class Allergy:
    """An allergy or intolerance, with its reaction."""

    id: int
    patient_id: int
    doctor_id: int | None = None
    description: str | None = None
    reaction: str | None = None
    status: ClinicalStatus | Other | None = None
    verification_status: str | None = None
    snomed_code: str | None = None
    snomed_reaction: str | None = None
    rxnorm: str | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class AllergyDraft:
    """An allergy to add to a patient's list."""

    patient_id: int
    doctor_id: int
    description: str
    reaction: str | None = None
    snomed_reaction: str | None = None
    rxnorm: str | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class Vital:
    """One vital-sign measurement, identified by its LOINC code."""

    patient_id: int
    loinc: str
    name: str
    value: Decimal | None
    unit: str | None
    taken_at: datetime | None
    appointment_id: str | None = None


@dataclass(frozen=True, slots=True)
class LabResult:
    """One lab observation: test, value, unit, normal range and abnormal flag."""

    id: int
    patient_id: int | None
    test: str | None
    value: str | None
    unit: str | None = None
    normal_range: str | None = None
    abnormal_flag: str | None = None
    is_abnormal: bool | None = None
    loinc: str | None = None
    numeric_value: Decimal | None = None
    status: str | None = None
    performed_on: date | None = None
    order_id: int | None = None
    doctor_id: int | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClinicalNoteValue:
    """One filled-in field of a clinical note section."""

    field_id: int | None
    value: str | None


@dataclass(frozen=True, slots=True)
class ClinicalNoteSection:
    """A section of a clinical note, from one note template."""

    name: str | None
    template_id: int | None
    values: tuple[ClinicalNoteValue, ...] = ()


@dataclass(frozen=True, slots=True)
class ClinicalNote:
    """A visit note; locked notes cannot be edited upstream."""

    id: int
    patient_id: int | None
    appointment_id: str | None
    doctor_id: int | None = None
    locked: bool = False
    archived: bool = False
    sections: tuple[ClinicalNoteSection, ...] = ()
    pdf_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
