"""The Clinical page's patient picker and chart heading, and the formats the chart's tabs share.

The open chart is an opaque id in ``?patient=<id>`` (never a name: no PHI in URLs), parsed
strictly and checked against the EHR, and remembered in ``clinical.patient_id`` so returning to
the page reopens it. The tabs are ``ui.clinical_summary``, ``ui.clinical_vitals`` and
``ui.clinical_labs_notes``. Every read goes through ``ehr.services.clinical``, which audits it
against the patient. Text from the chart (problem names, reactions, note text) is shown with
``st.text`` or in data frames, never as Markdown or HTML.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

import streamlit as st

from ehr.errors import NotFoundError
from ehr.models import Patient
from ehr.services import patients
from ehr.services.gateway import Gateway
from ui.components import nav_link
from ui.patient_rules import check_search
from ui.patients_view import full_name, plain

__all__ = [
    "BLANK",
    "DATE_FORMAT",
    "PATIENT_PARAM",
    "WHEN_FORMAT",
    "chart_heading",
    "close_chart",
    "open_chart",
    "patient_picker",
    "require_connection",
]

PATIENT_PARAM: Final = "patient"
# Ids are positive integers; 12 digits is far beyond any practice and bounds what we parse.
_ID: Final = re.compile(r"[1-9][0-9]{0,11}")
_HAS_DIGIT: Final = re.compile(r"\d")
_CHOSEN: Final = "clinical.patient_id"
_QUERY: Final = "clinical.query"
_SEARCH_FORM: Final = "clinical.search"
DATE_FORMAT: Final = "%d %b %Y"
WHEN_FORMAT: Final = "%d %b %Y %H:%M"
BLANK: Final = "—"


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
        parts.append(f"born {patient.date_of_birth:{DATE_FORMAT}}")
    return " · ".join(parts)


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def chart_heading(patient: Patient, today: date) -> None:
    """Whose chart is open (name, chart id, birth date and age), and the way back."""
    name_col, back_col = st.columns([4, 1], vertical_alignment="center")
    with name_col:
        st.subheader(plain(full_name(patient)), anchor=False)
        facts = [f"Chart id {patient.chart_id}" if patient.chart_id else f"Patient {patient.id}"]
        if patient.date_of_birth:
            born = patient.date_of_birth
            facts.append(f"born {born:{DATE_FORMAT}} (age {_age(born, today)})")
        st.caption(plain(" · ".join(facts)))
    back_col.button(
        "Change patient",
        icon=":material/swap_horiz:",
        key="clinical.close",
        on_click=close_chart,
        width="stretch",
    )
