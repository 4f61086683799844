"""Streamlit pieces of the Clinical page: the patient picker, the chart's tables, vitals, labs
and notes.

The open chart is an opaque id in ``?patient=<id>`` (never a name: no PHI in URLs), parsed
strictly and checked against the EHR, and remembered in ``clinical.patient_id`` so returning to
the page reopens it. Every read goes through ``ehr.services.clinical``, which audits it against
the patient. Text from the chart (problem names, reactions, note text) is shown with
``st.text`` or in data frames, never as Markdown or HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, tzinfo
from typing import Final, Protocol, TypeVar

import pandas as pd
import streamlit as st

from ehr.errors import NotFoundError
from ehr.models import Doctor, Other, Patient
from ehr.models_clinical import (
    Allergy,
    ClinicalNote,
    ClinicalStatus,
    LabResult,
    Medication,
    Problem,
    Vital,
)
from ehr.services import clinical, patients
from ehr.services.gateway import Gateway
from ui import charts
from ui import clinical_forms as forms
from ui.clinical_rules import severity_of, status_label
from ui.components import nav_link
from ui.patient_rules import check_search
from ui.patients_view import full_name, plain

__all__ = [
    "PATIENT_PARAM",
    "allergy_frame",
    "chart_heading",
    "close_chart",
    "doctor_choices",
    "lab_frame",
    "labs_tab",
    "medication_frame",
    "notes_tab",
    "open_chart",
    "patient_picker",
    "problem_frame",
    "require_connection",
    "summary_tab",
    "vitals_tab",
]

PATIENT_PARAM: Final = "patient"
# HL7 v2 abnormal flags (DrChrono's ``abnormal_status``), in words for the labs table.
LAB_FLAGS: Final[dict[str, str]] = {
    "N": "Normal",
    "L": "Low",
    "LL": "Critically low",
    "H": "High",
    "HH": "Critically high",
    "<": "Below range",
    ">": "Above range",
    "A": "Abnormal",
    "AA": "Critically abnormal",
    "POS": "Positive",
    "NEG": "Negative",
    "S": "Susceptible",
    "R": "Resistant",
    "I": "Intermediate",
}
LAB_STATUSES: Final[dict[str, str]] = {
    "P": "Preliminary",
    "I": "Pending",
    "C": "Corrected",
    "F": "Final",
    "X": "Cancelled",
}
# Ids are positive integers; 12 digits is far beyond any practice and bounds what we parse.
_ID: Final = re.compile(r"[1-9][0-9]{0,11}")
_HAS_DIGIT: Final = re.compile(r"\d")
_CHOSEN: Final = "clinical.patient_id"
_QUERY: Final = "clinical.query"
_SEARCH_FORM: Final = "clinical.search"
_DATE: Final = "%d %b %Y"
_WHEN: Final = "%d %b %Y %H:%M"
_BLANK: Final = "—"
# Abnormal lab rows: the same red as the app's error banners, with the flag also in words.
_ABNORMAL_STYLE: Final = "background-color: #fdecea; color: #8a1c13; font-weight: 600"


# ----------------------------------------------------------------------------- the open chart


def require_connection(connected: bool, *, is_admin: bool) -> None:
    """Stop the page with the next step when no EHR is connected."""
    if connected:
        return
    if is_admin:
        st.info("Connect the EHR to open patients' charts.")
        nav_link("Connect the EHR", "/ehr-auth/connect")
    else:
        st.info("The EHR is not connected yet. Ask an administrator to connect it in Settings.")
    st.stop()


def open_chart(patient_id: int) -> None:
    """Open a patient's chart (usable as a widget callback)."""
    st.query_params[PATIENT_PARAM] = str(patient_id)
    st.session_state[_CHOSEN] = patient_id


def close_chart() -> None:
    """Back to the picker (usable as a widget callback)."""
    st.query_params.pop(PATIENT_PARAM, None)
    st.session_state.pop(_CHOSEN, None)


def _requested_id() -> int | None:
    """The id in ``?patient=`` (or the one this session last opened); a forged value is refused."""
    values = st.query_params.get_all(PATIENT_PARAM)
    if not values:
        remembered = st.session_state.get(_CHOSEN)
        if isinstance(remembered, int):
            st.query_params[PATIENT_PARAM] = str(remembered)
            return remembered
        return None
    if len(values) == 1 and _ID.fullmatch(values[0]):
        return int(values[0])
    close_chart()
    st.error(
        "That chart link is not valid (a patient is identified by a number). "
        "Find the patient below instead.",
        icon=":material/link_off:",
    )
    return None


def patient_picker(gw: Gateway, *, today: date) -> Patient | None:
    """The open patient, or the search to find one (then None)."""
    patient_id = _requested_id()
    if patient_id is not None:
        try:
            with st.spinner("Opening the chart…"):
                return patients.get_patient(gw, patient_id)
        except NotFoundError:
            close_chart()
            st.error(
                f"No patient {patient_id} in this practice. Find the patient below instead.",
                icon=":material/person_off:",
            )
    _search(gw, today)
    return None


def _search(gw: Gateway, today: date) -> None:
    with st.form(_SEARCH_FORM, border=False):
        term_col, go_col = st.columns([4, 1], vertical_alignment="bottom")
        term = term_col.text_input(
            "Find a patient",
            key=f"{_SEARCH_FORM}.term",
            placeholder="Last name, first name or chart id",
            help="One first or last name as spelled on the chart, or the exact chart id.",
        )
        submitted = go_col.form_submit_button(
            "Search", icon=":material/search:", type="primary", width="stretch"
        )
    if submitted:
        # A chart id has digits (e.g. HALI000001); a name does not.
        chart = term if _HAS_DIGIT.search(term or "") else ""
        query, problem = check_search("" if chart else term, None, chart, today=today)
        if problem:
            st.warning(problem)
            return
        st.session_state[_QUERY] = query
    query = st.session_state.get(_QUERY)
    if query is None:
        st.caption("Search for a patient to open their chart.")
        return
    with st.spinner("Searching…"):
        found = patients.search_patients(gw, name=query.name, chart_id=query.chart_id)
    if not found.items:
        st.info(
            "No patients match. Names must match a first or last name exactly; a chart id "
            "must match in full.",
            icon=":material/person_off:",
        )
        return
    by_id = {p.id: p for p in found.items}
    pick_col, open_col = st.columns([4, 1], vertical_alignment="bottom")
    chosen = pick_col.selectbox(
        f"{len(by_id)} patient{'s' if len(by_id) != 1 else ''} found",
        list(by_id),
        format_func=lambda pid: _patient_label(by_id[pid]),
        key="clinical.pick",
    )
    open_col.button(
        "Open chart",
        icon=":material/folder_open:",
        type="primary",
        key="clinical.open",
        disabled=chosen is None,
        on_click=open_chart,
        args=(chosen,),
        width="stretch",
    )
    if found.next_cursor is not None:
        st.caption("More patients match; add to the search to narrow it.")


def _patient_label(patient: Patient) -> str:
    parts = [full_name(patient), patient.chart_id or f"patient {patient.id}"]
    if patient.date_of_birth:
        parts.append(f"born {patient.date_of_birth:{_DATE}}")
    return " · ".join(parts)


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def doctor_choices(doctors: Iterable[Doctor]) -> dict[int, str]:
    """Doctors a new chart entry may name (not suspended), by id."""
    return {d.id: d.display_name for d in doctors if not d.is_suspended}


def chart_heading(patient: Patient, today: date) -> None:
    """Whose chart is open (name, chart id, birth date and age), and the way back."""
    name_col, back_col = st.columns([4, 1], vertical_alignment="center")
    with name_col:
        st.subheader(plain(full_name(patient)), anchor=False)
        facts = [f"Chart id {patient.chart_id}" if patient.chart_id else f"Patient {patient.id}"]
        if patient.date_of_birth:
            born = patient.date_of_birth
            facts.append(f"born {born:{_DATE}} (age {_age(born, today)})")
        st.caption(plain(" · ".join(facts)))
    back_col.button(
        "Change patient",
        icon=":material/swap_horiz:",
        key="clinical.close",
        on_click=close_chart,
        width="stretch",
    )


# ----------------------------------------------------------------------------- summary tables


def _day(value: date | None) -> str:
    return value.strftime(_DATE) if value else _BLANK


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
            "ICD-10": [p.icd_code or _BLANK for p in problems],
            "Problem": [p.name or _BLANK for p in problems],
            "Onset": [_day(p.date_onset) for p in problems],
            "Status": [status_label(p.status) for p in problems],
        }
    )


def _dose(medication: Medication) -> str:
    dose = " ".join(p for p in (medication.dosage_quantity, medication.dosage_units) if p)
    return dose or _BLANK


def _frequency(medication: Medication) -> str:
    text = medication.frequency or _BLANK
    if medication.prn and "as needed" not in text.casefold():
        return f"{text}, as needed"
    return text


def medication_frame(medications: Sequence[Medication]) -> pd.DataFrame:
    """Medications as rows: name, dose, frequency, route, start, status."""
    return pd.DataFrame(
        {
            "Medication": [m.name or _BLANK for m in medications],
            "Dose": [_dose(m) for m in medications],
            "Frequency": [_frequency(m) for m in medications],
            "Route": [m.route or _BLANK for m in medications],
            "Started": [_day(m.date_started_taking) for m in medications],
            "Status": [status_label(m.status) for m in medications],
        }
    )


def allergy_frame(allergies: Sequence[Allergy]) -> pd.DataFrame:
    """Allergies as rows: allergen, reaction, severity, verification, status."""
    return pd.DataFrame(
        {
            "Allergen": [a.description or _BLANK for a in allergies],
            "Reaction": [a.reaction or _BLANK for a in allergies],
            "Severity": [(severity_of(a.notes) or _BLANK).capitalize() for a in allergies],
            "Verification": [(a.verification_status or _BLANK).capitalize() for a in allergies],
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


# ----------------------------------------------------------------------------- vitals


def _latest(vitals: Sequence[Vital], loinc: str) -> Vital | None:
    readings = [v for v in vitals if v.loinc == loinc and v.value is not None]
    return readings[-1] if readings else None


def _latest_metrics(vitals: Sequence[Vital], tz: tzinfo) -> None:
    codes = charts.LOINC
    systolic, diastolic = _latest(vitals, codes["systolic"]), _latest(vitals, codes["diastolic"])
    shown = {
        "Blood pressure (mmHg)": (
            f"{systolic.value:g}/{diastolic.value:g}" if systolic and diastolic else _BLANK
        ),
    }
    for label, key, unit in (
        ("Heart rate", "heart_rate", "/min"),
        ("Weight", "weight", None),
        ("BMI", "bmi", ""),
        ("Temperature", "temperature", None),
    ):
        reading = _latest(vitals, codes[key])
        suffix = (reading.unit or "") if unit is None and reading else (unit or "")
        shown[label] = f"{reading.value:g} {suffix}".strip() if reading else _BLANK
    for column, (label, value) in zip(st.columns(len(shown)), shown.items(), strict=True):
        column.metric(label, value)
    taken = max((v.taken_at for v in vitals if v.taken_at), default=None)
    if taken is not None:
        st.caption(f"Latest readings, taken {taken.astimezone(tz):{_WHEN}} (practice time).")


def vitals_tab(gw: Gateway, patient_id: int, tz: tzinfo) -> None:
    """The latest readings and the trend charts, each over its normal band."""
    with st.spinner("Loading vital signs…"):
        page = clinical.list_vitals(gw, patient_id)
    if not page.items:
        st.info("No vital signs are recorded for this patient.", icon=":material/monitor_heart:")
        return
    if page.truncated:
        st.warning("Only part of this patient's vitals was loaded; the oldest may be missing.")
    _latest_metrics(page.items, tz)
    left, right = st.columns(2)
    left.plotly_chart(charts.blood_pressure_chart(page.items, tz=tz), key="clinical.chart.bp")
    right.plotly_chart(charts.heart_rate_chart(page.items, tz=tz), key="clinical.chart.hr")
    left.plotly_chart(charts.weight_bmi_chart(page.items, tz=tz), key="clinical.chart.weight")
    right.plotly_chart(charts.temperature_chart(page.items, tz=tz), key="clinical.chart.temp")
    st.caption(charts.BAND_NOTE)


# ----------------------------------------------------------------------------- labs


def _flag(result: LabResult) -> str:
    if result.abnormal_flag:
        return LAB_FLAGS.get(result.abnormal_flag, result.abnormal_flag)
    if result.is_abnormal is not None:
        return "Abnormal" if result.is_abnormal else "Normal"
    return _BLANK


def _range(text: str | None) -> str:
    bounds = charts.parse_normal_range(text)
    if bounds is not None:
        return f"{bounds[0]:g}–{bounds[1]:g}"
    return text or _BLANK


def lab_frame(results: Sequence[LabResult]) -> pd.DataFrame:
    """Lab results as rows, newest order first: test, value, unit, range, flag, status."""
    ordered = sorted(results, key=lambda r: (r.order_id or 0, r.id), reverse=True)
    return pd.DataFrame(
        {
            "Test": [r.test or _BLANK for r in ordered],
            "Result": [r.value or _BLANK for r in ordered],
            "Unit": [r.unit or "" for r in ordered],
            "Reference range": [_range(r.normal_range) for r in ordered],
            "Flag": [_flag(r) for r in ordered],
            "Status": [LAB_STATUSES.get(r.status or "", r.status or _BLANK) for r in ordered],
            "Lab order": [str(r.order_id) if r.order_id else _BLANK for r in ordered],
            "abnormal": [bool(r.is_abnormal) for r in ordered],
        }
    )


def _highlight(frame: pd.DataFrame) -> pd.io.formats.style.Styler:
    """The table with abnormal rows shaded (the Flag column says it in words too)."""
    shown = frame.drop(columns=["abnormal"])
    flags = list(frame["abnormal"])
    return shown.style.apply(
        lambda row: [_ABNORMAL_STYLE if flags[row.name] else ""] * len(row), axis=1
    )


def _trend_tests(results: Iterable[LabResult]) -> list[str]:
    """Tests with a numeric result, those with an abnormal result first, then by name."""
    numeric = {r.test for r in results if r.test and r.numeric_value is not None}
    abnormal = {r.test for r in results if r.test in numeric and r.is_abnormal}
    return sorted(numeric, key=lambda t: (t not in abnormal, t.casefold()))


def labs_tab(gw: Gateway, patient_id: int) -> None:
    """All results with abnormal ones highlighted, and one test's trend."""
    with st.spinner("Loading lab results…"):
        page = clinical.list_lab_results(gw, patient_id)
    if not page.items:
        st.info("No lab results are recorded for this patient.", icon=":material/biotech:")
        return
    if page.truncated:
        st.warning("Only part of this patient's lab results was loaded.")
    frame = lab_frame(page.items)
    abnormal = int(frame["abnormal"].sum())
    st.caption(
        f"{len(frame)} results, {abnormal} outside the reference range (shaded, flag in words)."
    )
    st.dataframe(_highlight(frame), hide_index=True, width="stretch", key="clinical.labs")
    tests = _trend_tests(page.items)
    if not tests:
        return
    test = st.selectbox("Trend for test", tests, key="clinical.lab_test")
    if test is not None:
        st.plotly_chart(charts.lab_trend_chart(page.items, test), key="clinical.chart.lab")
        st.caption(charts.BAND_NOTE)


# ----------------------------------------------------------------------------- notes


def _note_label(note: ClinicalNote, tz: tzinfo) -> str:
    when = f"{note.created_at.astimezone(tz):{_WHEN}}" if note.created_at else "undated"
    state = "signed" if note.locked else "open (unsigned)"
    return f"{when} · {state}" + (" · archived" if note.archived else "")


def notes_tab(gw: Gateway, patient_id: int, tz: tzinfo) -> None:
    """The patient's visit notes, newest first, and a reader for the chosen one."""
    with st.spinner("Loading clinical notes…"):
        page = clinical.list_clinical_notes(gw, patient_id)
    if not page.items:
        st.info("No clinical notes are recorded for this patient.", icon=":material/description:")
        return
    notes = sorted(page.items, key=lambda n: (n.created_at is not None, n.created_at), reverse=True)
    by_id = {n.id: n for n in notes}
    chosen = st.selectbox(
        f"{len(notes)} note{'s' if len(notes) != 1 else ''}, newest first",
        list(by_id),
        format_func=lambda nid: _note_label(by_id[nid], tz),
        key="clinical.note",
    )
    if chosen is None:
        return
    with st.spinner("Opening the note…"):
        note = clinical.get_clinical_note(gw, chosen)
    with st.container(border=True):
        if not note.sections:
            st.caption("This note has no text sections.")
        for section in note.sections:
            st.markdown(f"**{plain(section.name or 'Section')}**")
            for value in section.values:
                st.text(value.value or _BLANK)
    if note.pdf_url:
        st.caption("A PDF of this note is available in the EHR.")
