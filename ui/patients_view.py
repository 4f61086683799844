"""Streamlit pieces of the Patients page: which patient is open, the search and its paging.

The open patient is an opaque id in ``?patient=<id>`` (never a name or a birth date: no PHI in
URLs), parsed strictly and refused with a clear message when forged. The search criteria and
the stack of paging cursors live in this page's own ``patients.*`` session keys, so Previous
and Next cost at most one EHR request per page. The patient a user opened is kept (bound to
their session) as the baseline an edit is compared against. User-typed text is only ever shown
as text: markdown output goes through ``plain``. The open patient's own view is in
``ui.patient_detail_view``; the write forms are in ``ui.patients_forms``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import streamlit as st

from ehr.models import Doctor, Gender, Other, Page, Patient
from ehr.services import patients
from ehr.services.gateway import Gateway
from ui.components import nav_link
from ui.patient_rules import EARLIEST_BIRTH_DATE, SearchQuery, check_search

__all__ = [
    "BLANK",
    "DATE_FORMAT",
    "GENDER_LABELS",
    "PATIENT_PARAM",
    "Doctors",
    "close_patient",
    "current_cursor",
    "doctor_names",
    "flash",
    "forget_keys",
    "format_day",
    "full_name",
    "gender_label",
    "open_patient",
    "opened_patient",
    "pager",
    "patient_table",
    "plain",
    "reload_patient",
    "require_connection",
    "search_form",
    "search_section",
    "selected_patient_id",
    "show_flash",
]

PATIENT_PARAM: Final = "patient"
# Ids are positive integers; 12 digits is far beyond any practice and bounds what we parse.
_ID: Final = re.compile(r"[1-9][0-9]{0,11}")
# Markdown (and Streamlit's :directives:) treats ASCII punctuation as syntax; escaped, it is text.
_MARKDOWN: Final = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=\"'&%^@/;,?])")
DATE_FORMAT: Final = "%d %b %Y"
BLANK: Final = "—"

_QUERY: Final = "patients.query"
_CURSORS: Final = "patients.cursors"
_ROW_IDS: Final = "patients.row_ids"
_OPENED: Final = "patients.opened"
_FLASH: Final = "patients.flash"
_SEARCH_FORM: Final = "patients.search"

GENDER_LABELS: Final[dict[Gender, str]] = {
    Gender.FEMALE: "Female",
    Gender.MALE: "Male",
    Gender.OTHER: "Other",
    Gender.UNKNOWN: "Unknown",
    Gender.ASKED_DECLINED: "Declined to say",
}


def plain(text: str) -> str:
    """``text`` escaped so that ``st.markdown`` shows it literally (names, addresses)."""
    return _MARKDOWN.sub(r"\\\1", text).replace("\n", " ")


def full_name(patient: Patient) -> str:
    """ "Last, First Middle" for lists and headings; "Patient <id>" when upstream has none."""
    given = " ".join(p for p in (patient.first_name, patient.middle_name) if p)
    name = ", ".join(p for p in (patient.last_name, given) if p)
    return name or f"Patient {patient.id}"


def format_day(value: date | None) -> str:
    return value.strftime(DATE_FORMAT) if value else BLANK


def gender_label(value: Gender | Other | None) -> str:
    if isinstance(value, Other):
        return value.raw
    return GENDER_LABELS.get(value, BLANK) if value else BLANK


def require_connection(connected: bool, *, is_admin: bool) -> None:
    """Stop the page with the next step when no EHR is connected (like Home)."""
    if connected:
        return
    if is_admin:
        st.info("Connect the EHR to search and register patients.")
        nav_link("Connect the EHR", "/ehr-auth/connect")
    else:
        st.info("The EHR is not connected yet. Ask an administrator to connect it in Settings.")
    st.stop()


def flash(message: str) -> None:
    """Show ``message`` (PHI-free) as a success note at the top of the next rerun."""
    st.session_state[_FLASH] = message


def show_flash() -> None:
    """Show and forget the pending success note, if any."""
    message = st.session_state.pop(_FLASH, None)
    if isinstance(message, str):
        st.success(message, icon=":material/check_circle:")


def forget_keys(prefix: str) -> None:
    """Drop every session key under ``prefix`` (a form's widgets start fresh)."""
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]


# --- which patient is open ----------------------------------------------------------------------


def selected_patient_id() -> int | None:
    """The open patient's id from ``?patient=``; a malformed value is refused and removed."""
    values = st.query_params.get_all(PATIENT_PARAM)
    if not values:
        return None
    if len(values) == 1 and _ID.fullmatch(values[0]):
        return int(values[0])
    del st.query_params[PATIENT_PARAM]
    st.error(
        "That patient link is not valid (a patient is identified by a number). "
        "Search for the patient below instead.",
        icon=":material/link_off:",
    )
    return None


def open_patient(patient_id: int) -> None:
    """Open a patient (usable as a widget callback)."""
    st.query_params[PATIENT_PARAM] = str(patient_id)


def close_patient() -> None:
    """Back to the search (usable as a widget callback); the search results stay as they were."""
    st.query_params.pop(PATIENT_PARAM, None)
    st.session_state.pop(_OPENED, None)
    forget_keys("patients.edit.")
    forget_keys("patients.delete.")


@dataclass(frozen=True)
class _Opened:
    """The patient as this session opened it: shown, and the baseline of an edit."""

    session_ref: str | None
    patient: Patient


def opened_patient(gw: Gateway, patient_id: int) -> Patient:
    """The patient as opened; fetched (and audited) on first open and after a reload."""
    held = st.session_state.get(_OPENED)
    if (
        isinstance(held, _Opened)
        and held.patient.id == patient_id
        and held.session_ref == gw.caller.session_ref
    ):
        return held.patient
    with st.spinner("Opening the patient…"):
        patient = patients.get_patient(gw, patient_id)
    st.session_state[_OPENED] = _Opened(gw.caller.session_ref, patient)
    forget_keys(f"patients.edit.{patient_id}.")
    return patient


def reload_patient(gw: Gateway) -> None:
    """Forget the opened copy and this session's cached patients, so the next read is fresh."""
    gw.cache.invalidate(("patient",))
    st.session_state.pop(_OPENED, None)
    forget_keys("patients.edit.")


# --- search and results ---------------------------------------------------------------------------


def search_form(today: date) -> SearchQuery | None:
    """The search form; returns the search to show: the one just submitted, else the last one.

    Widget values come back from the stored search, so returning from a patient shows the
    same criteria and results.
    """
    last = st.session_state.get(_QUERY)
    last = last if isinstance(last, SearchQuery) else None
    with st.form(_SEARCH_FORM, border=False):
        name_col, dob_col, chart_col, go_col = st.columns([3, 2, 2, 1], vertical_alignment="bottom")
        name = name_col.text_input(
            "Name",
            value=(last.name or "") if last else "",
            key=f"{_SEARCH_FORM}.name",
            placeholder="First or last name",
            help="One first or last name, spelled as on the chart (case does not matter).",
        )
        born = dob_col.date_input(
            "Date of birth",
            value=last.date_of_birth if last else None,
            min_value=EARLIEST_BIRTH_DATE,
            max_value=today,
            format="MM/DD/YYYY",
            key=f"{_SEARCH_FORM}.dob",
        )
        chart = chart_col.text_input(
            "Chart id", value=(last.chart_id or "") if last else "", key=f"{_SEARCH_FORM}.chart"
        )
        submitted = go_col.form_submit_button(
            "Search", icon=":material/search:", type="primary", width="stretch"
        )
    if not submitted:
        return last
    born_on = born if isinstance(born, date) else None
    query, problem = check_search(name or "", born_on, chart or "", today=today)
    if problem:
        st.warning(problem)
        return last
    st.session_state[_QUERY] = query
    st.session_state[_CURSORS] = [None]
    return query


def search_section(gw: Gateway, doctors: Doctors, *, today: date) -> None:
    """Search form, one page of results (one EHR request at most) and Previous / Next."""
    query = search_form(today)
    if query is None:
        st.caption("Search by first or last name, date of birth or chart id.")
        return
    with st.spinner("Searching…"):
        found = patients.search_patients(
            gw,
            name=query.name,
            date_of_birth=query.date_of_birth,
            chart_id=query.chart_id,
            cursor=current_cursor(),
        )
    if found.items:
        patient_table(found.items, doctors.names, key="patients.results")
        st.caption("Select a row to open the patient.")
    else:
        st.info(
            "No patients match. Names must match a first or last name exactly: try the last "
            "name alone, or the date of birth.",
            icon=":material/person_off:",
        )
    if found.items or current_cursor() is not None:
        pager(found)


def current_cursor() -> str | None:
    """The cursor of the results page being shown (None: the first page)."""
    stack = st.session_state.get(_CURSORS)
    return stack[-1] if isinstance(stack, list) and stack else None


def _go_next(cursor: str) -> None:
    stack = st.session_state.get(_CURSORS)
    st.session_state[_CURSORS] = [*(stack if isinstance(stack, list) else [None]), cursor]


def _go_previous() -> None:
    stack = st.session_state.get(_CURSORS)
    if isinstance(stack, list) and len(stack) > 1:
        st.session_state[_CURSORS] = stack[:-1]


def pager(page: Page[Patient]) -> None:
    """Previous / Next under a results page, with where we are."""
    stack = st.session_state.get(_CURSORS)
    number = len(stack) if isinstance(stack, list) and stack else 1
    prev_col, info_col, next_col = st.columns([1, 4, 1], vertical_alignment="center")
    prev_col.button(
        "Previous",
        icon=":material/chevron_left:",
        key="patients.previous",
        disabled=number <= 1,
        on_click=_go_previous,
        width="stretch",
    )
    shown = len(page.items)
    info_col.caption(f"Page {number} · {shown} patient{'s' if shown != 1 else ''} on this page")
    next_col.button(
        "Next",
        icon=":material/chevron_right:",
        key="patients.next",
        disabled=page.next_cursor is None,
        on_click=_go_next,
        args=(page.next_cursor,),
        width="stretch",
    )


@dataclass(frozen=True)
class Doctors:
    """The practice's doctors: every name (for display) and who can take new patients."""

    names: Mapping[int, str]
    active: Mapping[int, str]


def doctor_names(doctors: Iterable[Doctor]) -> Doctors:
    """Names by id for tables, and the doctors a patient may be assigned to (not suspended)."""
    listed = list(doctors)
    return Doctors(
        names={d.id: d.display_name for d in listed},
        active={d.id: d.display_name for d in listed if not d.is_suspended},
    )


def _phone(patient: Patient) -> str:
    return patient.cell_phone or patient.home_phone or patient.office_phone or BLANK


def _open_selected(table_key: str) -> None:
    state: Any = st.session_state.get(table_key)
    rows = state.get("selection", {}).get("rows", []) if state is not None else []
    ids = st.session_state.get(f"{_ROW_IDS}.{table_key}", [])
    if rows and 0 <= rows[0] < len(ids):
        open_patient(ids[rows[0]])


def patient_table(items: Sequence[Patient], doctors: Mapping[int, str], *, key: str) -> None:
    """Patients as a table; selecting a row opens that patient."""
    st.session_state[f"{_ROW_IDS}.{key}"] = [p.id for p in items]
    columns = {
        "Name": [full_name(p) for p in items],
        "Date of birth": [format_day(p.date_of_birth) for p in items],
        "Chart id": [p.chart_id or BLANK for p in items],
        "Phone": [_phone(p) for p in items],
        "Doctor": [doctors.get(p.doctor_id, BLANK) if p.doctor_id else BLANK for p in items],
    }
    st.dataframe(
        columns,
        hide_index=True,
        key=key,
        on_select=functools.partial(_open_selected, key),
        selection_mode="single-row",
        width="stretch",
    )
