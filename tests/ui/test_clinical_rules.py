"""The Clinical forms' rules: what becomes a draft, and the message for what does not."""

from __future__ import annotations

from datetime import date

import pytest

from ehr.models import Other
from ehr.models_clinical import ClinicalStatus
from ui.clinical_rules import (
    check_allergy,
    check_medication,
    check_problem,
    severity_of,
    status_label,
)

TODAY = date(2026, 5, 1)
BORN = date(1960, 2, 29)


def problem(**changes):
    values = {
        "doctor_id": 7,
        "name": " Essential hypertension ",
        "icd_code": "i10",
        "date_onset": None,
        "notes": "",
    }
    return check_problem(42, **{**values, **changes}, today=TODAY, born=BORN)


def test_a_valid_problem_becomes_a_trimmed_draft_with_an_upper_case_code():
    checked = problem()
    assert checked.errors == {}
    assert checked.draft is not None
    assert (checked.draft.patient_id, checked.draft.doctor_id) == (42, 7)
    assert (checked.draft.name, checked.draft.icd_code, checked.draft.notes) == (
        "Essential hypertension",
        "I10",
        None,
    )


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"name": "  "}, "name", "required"),
        ({"name": "x" * 201}, "name", "at most 200"),
        ({"name": "Asthma\u202e"}, "name", "invisible"),
        ({"icd_code": "HTN"}, "icd_code", "E11.9"),
        ({"icd_code": "hypertension"}, "icd_code", "at most 8"),
        ({"icd_code": "U07.1"}, "icd_code", "E11.9"),
        ({"date_onset": date(2026, 5, 2)}, "date_onset", "future"),
        ({"date_onset": date(1950, 1, 1)}, "date_onset", "date of birth"),
        ({"doctor_id": None}, "doctor_id", "doctor"),
        ({"notes": "ok\x00"}, "notes", "control"),
    ],
)
def test_a_bad_problem_is_refused_with_a_message_on_the_field(changes, field, words):
    checked = problem(**changes)
    assert checked.draft is None
    assert words in checked.errors[field]


def test_notes_may_have_line_breaks_but_one_line_fields_may_not():
    assert problem(notes="first line\nsecond line").draft is not None
    assert "name" in problem(name="two\nlines").errors


def medication(**changes):
    values = {
        "doctor_id": 7,
        "name": "lisinopril 10 MG Oral Tablet",
        "dosage_quantity": "10",
        "dosage_units": "mg",
        "route": "oral",
        "frequency": "once daily",
        "date_started_taking": date(2026, 4, 1),
        "indication": "",
    }
    return check_medication(42, **{**values, **changes}, today=TODAY, born=BORN)


def test_medication_rules():
    draft = medication().draft
    assert draft is not None
    assert (draft.dosage_quantity, draft.indication) == ("10", None)
    assert "required" in medication(frequency="").errors["frequency"]
    assert "number" in medication(dosage_quantity="ten").errors["dosage_quantity"]
    assert "units" in medication(dosage_units="").errors["dosage_units"]
    assert medication(dosage_quantity="", dosage_units="").draft is not None


def test_allergy_severity_leads_the_notes_and_reads_back():
    checked = check_allergy(
        42,
        doctor_id=7,
        description="Penicillin",
        reaction="Hives",
        severity="severe",
        notes="since 2001",
    )
    assert checked.draft is not None
    assert checked.draft.notes == "Severity: severe\nsince 2001"
    assert severity_of(checked.draft.notes) == "severe"
    assert severity_of("Severity: Mild") == "mild"
    assert severity_of("mild rash") is None
    bare = check_allergy(
        42, doctor_id=7, description="Latex", reaction="Rash", severity=None, notes=""
    )
    assert bare.draft is not None
    assert bare.draft.notes is None


def test_allergy_requires_the_allergen_and_the_reaction_and_a_known_severity():
    checked = check_allergy(
        42, doctor_id=7, description="", reaction="", severity="fatal", notes=""
    )
    assert checked.draft is None
    assert set(checked.errors) == {"description", "reaction", "severity"}


def test_status_labels():
    assert status_label(ClinicalStatus.RESOLVED) == "Resolved"
    assert status_label(Other("on hold")) == "on hold"
    assert status_label(None) == "—"


def test_an_allergen_already_on_the_list_is_refused():
    checked = check_allergy(
        42,
        doctor_id=7,
        description=" penicillin ",
        reaction="Hives",
        severity=None,
        notes="",
        recorded=["Penicillin"],
    )
    assert "already" in checked.errors["description"]
