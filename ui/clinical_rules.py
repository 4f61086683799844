"""What the Clinical page's "add" forms accept, checked before any EHR request.

Pure functions (no Streamlit), so the rules are tested directly and a refused value never costs
an upstream call. Each ``check_*`` turns the raw form values into a draft, or into messages
keyed by the draft's field names (the same names ``ValidationFailedError.details["fields"]``
uses, so local and upstream errors land next to the same widgets). Limits are ours where
DrChrono publishes none: roomy for real entries, tight enough to refuse pasted junk.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from typing import Final, Generic, TypeVar

from ehr.models import Other
from ehr.models_clinical import AllergyDraft, ClinicalStatus, MedicationDraft, ProblemDraft

__all__ = [
    "FIELD_LABELS",
    "MAX_CHARS",
    "SEVERITIES",
    "STATUS_LABELS",
    "Checked",
    "check_allergy",
    "check_medication",
    "check_problem",
    "severity_of",
    "status_label",
]

FIELD_LABELS: Final[dict[str, str]] = {
    "name": "Name",
    "icd_code": "ICD-10 code",
    "date_onset": "Onset",
    "description": "Allergen",
    "reaction": "Reaction",
    "severity": "Severity",
    "dosage_quantity": "Dose",
    "dosage_units": "Dose units",
    "route": "Route",
    "frequency": "Frequency",
    "date_started_taking": "Started",
    "indication": "Indication",
    "notes": "Notes",
    "doctor_id": "Doctor",
    "patient_id": "Patient",
}
MAX_CHARS: Final[dict[str, int]] = {
    "name": 200,
    "icd_code": 8,
    "description": 200,
    "reaction": 200,
    "dosage_quantity": 12,
    "dosage_units": 20,
    "route": 50,
    "frequency": 100,
    "indication": 200,
    "notes": 2000,
}
STATUS_LABELS: Final[dict[ClinicalStatus, str]] = {
    ClinicalStatus.ACTIVE: "Active",
    ClinicalStatus.INACTIVE: "Inactive",
    ClinicalStatus.RESOLVED: "Resolved",
}
# The sandbox (like many DrChrono practices) records an allergy's severity as the first line
# of its notes, "Severity: moderate"; the form writes it the same way and the table reads it.
SEVERITIES: Final = ("mild", "moderate", "severe")
_SEVERITY_LINE: Final = re.compile(r"^\s*severity:\s*(mild|moderate|severe)\b", re.IGNORECASE)
# ICD-10-CM: a letter, two characters, optionally a dot and up to four more ("E11.9", "S93.409A").
_ICD10: Final = re.compile(r"^[A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?$")
_DOSE: Final = re.compile(r"^\d{1,6}(?:\.\d{1,4})?$")
# Control, format (RTL override, zero-width), surrogate, private-use and unassigned characters.
_REFUSED: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_LINE_BREAKS: Final = frozenset({"\n", "\t"})

D = TypeVar("D")


@dataclass(frozen=True)
class Checked(Generic[D]):
    """A draft ready to send, or the problems per field (never both)."""

    draft: D | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _clean(value: str | None) -> str:
    return unicodedata.normalize("NFC", value or "").strip()


def _unprintable(text: str, *, multiline: bool) -> bool:
    allowed = _LINE_BREAKS if multiline else frozenset()
    return any(unicodedata.category(ch) in _REFUSED and ch not in allowed for ch in text)


def _text(
    errors: dict[str, str],
    name: str,
    raw: str | None,
    *,
    required: bool = False,
    multiline: bool = False,
) -> str | None:
    """The cleaned value (None when blank), recording a problem in ``errors``."""
    text = _clean(raw)
    label = FIELD_LABELS[name]
    if not text:
        if required:
            errors[name] = f"{label} is required."
        return None
    if len(text) > MAX_CHARS[name]:
        errors[name] = f"{label} can be at most {MAX_CHARS[name]} characters."
    elif _unprintable(text, multiline=multiline):
        errors[name] = f"{label} contains control or invisible characters; retype it."
    return text


def _past_date(
    errors: dict[str, str], name: str, value: date | None, *, today: date, born: date | None
) -> None:
    if value is None:
        return
    if value > today:
        errors[name] = f"{FIELD_LABELS[name]} cannot be in the future."
    elif born is not None and value < born:
        errors[name] = f"{FIELD_LABELS[name]} cannot be before the patient's date of birth."


def _doctor(errors: dict[str, str], doctor_id: int | None) -> int:
    if doctor_id is None or doctor_id <= 0:
        errors["doctor_id"] = "Choose the doctor responsible for this entry."
        return 0
    return doctor_id


def check_problem(
    patient_id: int,
    *,
    doctor_id: int | None,
    name: str | None,
    icd_code: str | None,
    date_onset: date | None,
    notes: str | None,
    today: date,
    born: date | None = None,
) -> Checked[ProblemDraft]:
    """A ``ProblemDraft`` (name required; the ICD-10 code, when given, well formed)."""
    errors: dict[str, str] = {}
    doctor = _doctor(errors, doctor_id)
    clean_name = _text(errors, "name", name, required=True)
    code = _text(errors, "icd_code", icd_code)
    if code is not None:
        code = code.upper()
        if "icd_code" not in errors and not _ICD10.match(code):
            errors["icd_code"] = "ICD-10 code looks like E11.9 or I10 (letter, digits, a dot)."
    _past_date(errors, "date_onset", date_onset, today=today, born=born)
    clean_notes = _text(errors, "notes", notes, multiline=True)
    if errors or clean_name is None:
        return Checked(errors=errors)
    return Checked(
        ProblemDraft(
            patient_id=patient_id,
            doctor_id=doctor,
            name=clean_name,
            icd_code=code,
            date_onset=date_onset,
            notes=clean_notes,
        )
    )


def check_medication(
    patient_id: int,
    *,
    doctor_id: int | None,
    name: str | None,
    dosage_quantity: str | None,
    dosage_units: str | None,
    route: str | None,
    frequency: str | None,
    date_started_taking: date | None,
    indication: str | None,
    today: date,
    born: date | None = None,
) -> Checked[MedicationDraft]:
    """A ``MedicationDraft`` (name and frequency required; a dose is a plain number)."""
    errors: dict[str, str] = {}
    doctor = _doctor(errors, doctor_id)
    clean_name = _text(errors, "name", name, required=True)
    dose = _text(errors, "dosage_quantity", dosage_quantity)
    if dose is not None and "dosage_quantity" not in errors and not _DOSE.match(dose):
        errors["dosage_quantity"] = "Dose is a number, such as 10 or 0.5 (units go next to it)."
    units = _text(errors, "dosage_units", dosage_units)
    if dose is not None and units is None and "dosage_units" not in errors:
        errors["dosage_units"] = "Give the units of the dose (mg, mL, puffs…)."
    clean_route = _text(errors, "route", route)
    clean_frequency = _text(errors, "frequency", frequency, required=True)
    _past_date(errors, "date_started_taking", date_started_taking, today=today, born=born)
    clean_indication = _text(errors, "indication", indication)
    if errors or clean_name is None:
        return Checked(errors=errors)
    return Checked(
        MedicationDraft(
            patient_id=patient_id,
            doctor_id=doctor,
            name=clean_name,
            dosage_quantity=dose,
            dosage_units=units,
            route=clean_route,
            frequency=clean_frequency,
            date_started_taking=date_started_taking,
            indication=clean_indication,
        )
    )


def check_allergy(
    patient_id: int,
    *,
    doctor_id: int | None,
    description: str | None,
    reaction: str | None,
    severity: str | None,
    notes: str | None,
    recorded: Collection[str] = (),
) -> Checked[AllergyDraft]:
    """An ``AllergyDraft`` (allergen and reaction required, allergen not already in
    ``recorded``; severity leads the notes)."""
    errors: dict[str, str] = {}
    doctor = _doctor(errors, doctor_id)
    allergen = _text(errors, "description", description, required=True)
    if allergen and allergen.casefold() in {r.casefold() for r in recorded}:
        errors["description"] = "This allergen is already on the patient's list."
    clean_reaction = _text(errors, "reaction", reaction, required=True)
    if severity is not None and severity not in SEVERITIES:
        errors["severity"] = "Choose mild, moderate or severe."
    clean_notes = _text(errors, "notes", notes, multiline=True)
    if errors or allergen is None:
        return Checked(errors=errors)
    lines = [f"Severity: {severity}"] if severity else []
    lines += [clean_notes] if clean_notes else []
    return Checked(
        AllergyDraft(
            patient_id=patient_id,
            doctor_id=doctor,
            description=allergen,
            reaction=clean_reaction,
            notes="\n".join(lines) or None,
        )
    )


def severity_of(notes: str | None) -> str | None:
    """The severity recorded on an allergy's first notes line ("Severity: mild"), if any."""
    match = _SEVERITY_LINE.match(notes or "")
    return match.group(1).lower() if match else None


def status_label(status: ClinicalStatus | Other | None) -> str:
    """ "Active", "Inactive", "Resolved", a custom upstream status as typed, or a dash."""
    if isinstance(status, Other):
        return status.raw
    return STATUS_LABELS.get(status, "—") if status else "—"
