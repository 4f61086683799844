"""The Clinical page's Summary tab: problems, allergies and medications (current ones first,
the rest on request), each with its status control and "add" form from ``ui.clinical_forms``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Protocol, TypeVar

import pandas as pd
import streamlit as st

from ehr.models import Doctor, Other, Patient
from ehr.models_clinical import Allergy, ClinicalStatus, Medication, Problem
from ehr.services import clinical
from ehr.services.gateway import Gateway
from ui import clinical_forms as forms
from ui.clinical_rules import severity_of, status_label
from ui.clinical_view import BLANK, DATE_FORMAT

__all__ = [
    "allergy_frame",
    "doctor_choices",
    "medication_frame",
    "problem_frame",
    "summary_tab",
]


def doctor_choices(doctors: Iterable[Doctor]) -> dict[int, str]:
    """Doctors a new chart entry may name (not suspended), by id."""
    return {d.id: d.display_name for d in doctors if not d.is_suspended}


def _day(value: date | None) -> str:
    return value.strftime(DATE_FORMAT) if value else BLANK


class _Status(Protocol):
    @property
    def status(self) -> ClinicalStatus | Other | None: ...


def is_current(record: _Status) -> bool:
    """Active (or with no status at all: upstream did not say it ended)."""
    return record.status in (ClinicalStatus.ACTIVE, None)


def problem_frame(problems: Sequence[Problem]) -> pd.DataFrame:
    """Problems as rows: code, name, onset, status."""
    return pd.DataFrame(
        {
            "ICD-10": [p.icd_code or BLANK for p in problems],
            "Problem": [p.name or BLANK for p in problems],
            "Onset": [_day(p.date_onset) for p in problems],
            "Status": [status_label(p.status) for p in problems],
        }
    )


def _dose(medication: Medication) -> str:
    dose = " ".join(p for p in (medication.dosage_quantity, medication.dosage_units) if p)
    return dose or BLANK


def _frequency(medication: Medication) -> str:
    text = medication.frequency or BLANK
    if medication.prn and "as needed" not in text.casefold():
        return f"{text}, as needed"
    return text


def medication_frame(medications: Sequence[Medication]) -> pd.DataFrame:
    """Medications as rows: name, dose, frequency, route, start, status."""
    return pd.DataFrame(
        {
            "Medication": [m.name or BLANK for m in medications],
            "Dose": [_dose(m) for m in medications],
            "Frequency": [_frequency(m) for m in medications],
            "Route": [m.route or BLANK for m in medications],
            "Started": [_day(m.date_started_taking) for m in medications],
            "Status": [status_label(m.status) for m in medications],
        }
    )


def allergy_frame(allergies: Sequence[Allergy]) -> pd.DataFrame:
    """Allergies as rows: allergen, reaction, severity, verification, status."""
    return pd.DataFrame(
        {
            "Allergen": [a.description or BLANK for a in allergies],
            "Reaction": [a.reaction or BLANK for a in allergies],
            "Severity": [(severity_of(a.notes) or BLANK).capitalize() for a in allergies],
            "Verification": [(a.verification_status or BLANK).capitalize() for a in allergies],
            "Status": [status_label(a.status) for a in allergies],
        }
    )


R = TypeVar("R", Problem, Medication, Allergy)


def _shown(records: Iterable[R], show_all: bool) -> list[R]:
    """Current entries first (upstream order within each group); the rest only on request."""
    listed = list(records)
    current = [r for r in listed if is_current(r)]
    return current + [r for r in listed if not is_current(r)] if show_all else current


def _table(frame: pd.DataFrame, *, key: str, empty: str, hidden: int, truncated: bool) -> None:
    if frame.empty:
        st.info(empty)
    else:
        st.dataframe(frame, hide_index=True, width="stretch", key=key)
    if hidden:
        st.caption(
            f"{hidden} inactive or resolved not shown (switch on “Show inactive and resolved”)."
        )
    if truncated:
        st.warning("Only part of this list was loaded from the EHR.")


def _problem_label(problem: Problem) -> str:
    return " ".join(p for p in (problem.icd_code, problem.name) if p) or f"Problem {problem.id}"


def _allergy_label(allergy: Allergy) -> str:
    return allergy.description or f"Allergy {allergy.id}"


def _medication_label(medication: Medication) -> str:
    return medication.name or f"Medication {medication.id}"


def summary_tab(gw: Gateway, patient: Patient, doctors: Mapping[int, str], *, today: date) -> None:
    """Problems, medications and allergies, each with its status control and "add" form."""
    show_all = st.toggle("Show inactive and resolved", key="clinical.show_all")
    problems_col, allergies_col = st.columns([3, 2], gap="large")
    with problems_col:
        st.subheader("Problems", anchor=False)
        forms.show_flash("problem")
        forms.apply_pending(gw, "problem")
        with st.spinner("Loading problems…"):
            page = clinical.list_problems(gw, patient.id)
        problems = _shown(page.items, show_all)
        _table(
            problem_frame(problems),
            key="clinical.problems",
            empty="No active problems are recorded.",
            hidden=len(page.items) - len(problems),
            truncated=page.truncated,
        )
        forms.status_control("problem", problems, _problem_label)
        forms.add_problem_form(gw, patient, doctors, today=today)
    with allergies_col:
        st.subheader("Allergies", anchor=False)
        forms.show_flash("allergy")
        forms.apply_pending(gw, "allergy")
        with st.spinner("Loading allergies…"):
            page_a = clinical.list_allergies(gw, patient.id)
        allergies = _shown(page_a.items, show_all)
        _table(
            allergy_frame(allergies),
            key="clinical.allergies",
            empty="No allergies are recorded in the EHR (this is not a record of “no known allergies”).",
            hidden=len(page_a.items) - len(allergies),
            truncated=page_a.truncated,
        )
        forms.status_control("allergy", allergies, _allergy_label)
        current = [a.description for a in page_a.items if a.description and is_current(a)]
        forms.add_allergy_form(gw, patient, doctors, current)
    st.subheader("Medications", anchor=False)
    forms.show_flash("medication")
    forms.apply_pending(gw, "medication")
    with st.spinner("Loading medications…"):
        page_m = clinical.list_medications(gw, patient.id)
    medications = _shown(page_m.items, show_all)
    _table(
        medication_frame(medications),
        key="clinical.medications",
        empty="No current medications are recorded.",
        hidden=len(page_m.items) - len(medications),
        truncated=page_m.truncated,
    )
    forms.status_control("medication", medications, _medication_label)
    forms.add_medication_form(gw, patient, doctors, today=today)
