"""The Clinical page's Labs and Notes tabs: lab results with abnormal ones shaded and flagged
in words, one test's trend, and a reader for the patient's visit notes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import tzinfo
from typing import Final

import pandas as pd
import streamlit as st

from ehr.models_clinical import ClinicalNote, LabResult
from ehr.services import clinical
from ehr.services.gateway import Gateway
from ui import charts
from ui.clinical_view import BLANK, WHEN_FORMAT
from ui.patients_view import plain

__all__ = ["lab_frame", "labs_tab", "notes_tab"]

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
# Abnormal lab rows: the same red as the app's error banners, with the flag also in words.
_ABNORMAL_STYLE: Final = "background-color: #fdecea; color: #8a1c13; font-weight: 600"


def _flag(result: LabResult) -> str:
    if result.abnormal_flag:
        return LAB_FLAGS.get(result.abnormal_flag, result.abnormal_flag)
    if result.is_abnormal is not None:
        return "Abnormal" if result.is_abnormal else "Normal"
    return BLANK


def _range(text: str | None) -> str:
    bounds = charts.parse_normal_range(text)
    if bounds is not None:
        return f"{bounds[0]:g}–{bounds[1]:g}"
    return text or BLANK


def lab_frame(results: Sequence[LabResult]) -> pd.DataFrame:
    """Lab results as rows, newest order first: test, value, unit, range, flag, status."""
    ordered = sorted(results, key=lambda r: (r.order_id or 0, r.id), reverse=True)
    return pd.DataFrame(
        {
            "Test": [r.test or BLANK for r in ordered],
            "Result": [r.value or BLANK for r in ordered],
            "Unit": [r.unit or "" for r in ordered],
            "Reference range": [_range(r.normal_range) for r in ordered],
            "Flag": [_flag(r) for r in ordered],
            "Status": [LAB_STATUSES.get(r.status or "", r.status or BLANK) for r in ordered],
            "Lab order": [str(r.order_id) if r.order_id else BLANK for r in ordered],
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


def _note_label(note: ClinicalNote, tz: tzinfo) -> str:
    when = f"{note.created_at.astimezone(tz):{WHEN_FORMAT}}" if note.created_at else "undated"
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
                st.text(value.value or BLANK)
    if note.pdf_url:
        st.caption("A PDF of this note is available in the EHR.")
