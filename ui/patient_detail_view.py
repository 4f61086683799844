"""The open patient on the Patients page: heading, demographics and appointments.

Everything typed by people (names, addresses, e-mail) is shown as text, never as markdown that
could turn it into links or formatting. Appointments cover a year back and six months ahead,
which costs one EHR request per 190-day window; the caption says how many and a banner says
when the listing was cut short.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Final

import streamlit as st

from ehr.models import Appointment, Other, Page, Patient
from ui import patients_view as view
from ui.components import status_label
from ui.patient_rules import FIELD_LABELS

__all__ = [
    "AHEAD_DAYS",
    "HISTORY_DAYS",
    "LANGUAGES",
    "WINDOW_DAYS",
    "appointment_window",
    "appointments_overview",
    "demographics",
    "patient_heading",
]

# A patient's page shows a year of history and the next six months.
HISTORY_DAYS: Final = 365
AHEAD_DAYS: Final = 183
# DrChrono answers at most 190 days of appointments per request (ehr.drchrono.quirks), so the
# window above costs one request per 190 days: the caption says so.
WINDOW_DAYS: Final = 190
_WHEN: Final = "%a %d %b %Y, %H:%M"

# DrChrono's preferred_language codes (ISO 639-2 and a few words), as front-desk wording.
LANGUAGES: Final[dict[str, str]] = {
    "eng": "English",
    "spa": "Spanish",
    "zho": "Chinese",
    "fra": "French",
    "ita": "Italian",
    "jpn": "Japanese",
    "por": "Portuguese",
    "rus": "Russian",
    "other": "Other",
    "unknown": "Unknown",
    "declined": "Declined to say",
    "blank": "",
}


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def patient_heading(patient: Patient, today: date) -> None:
    """The open patient's name with chart id, birth date and age underneath."""
    st.subheader(view.plain(view.full_name(patient)), anchor=False)
    facts = [f"Chart id {patient.chart_id}" if patient.chart_id else f"Patient {patient.id}"]
    if patient.date_of_birth:
        facts.append(
            f"born {view.format_day(patient.date_of_birth)} (age {_age(patient.date_of_birth, today)})"
        )
    if patient.gender:
        facts.append(view.gender_label(patient.gender))
    st.caption(view.plain(" · ".join(facts)))


def _fact(column: Any, label: str, value: str | None) -> None:
    # The value goes through st.text: markdown would still turn an e-mail or a "www." into a link.
    fact = column.container(gap=None)
    fact.caption(label)
    fact.text(value or view.BLANK)


def demographics(patient: Patient, doctors: Mapping[int, str]) -> None:
    """The patient's demographics in three columns (values rendered as text)."""
    who, contact, care = st.columns(3)
    _fact(who, "Name", view.full_name(patient))
    _fact(who, "Preferred name", patient.preferred_name)
    _fact(who, FIELD_LABELS["date_of_birth"], view.format_day(patient.date_of_birth))
    _fact(who, FIELD_LABELS["gender"], view.gender_label(patient.gender))
    _fact(contact, FIELD_LABELS["email"], patient.email)
    _fact(contact, FIELD_LABELS["cell_phone"], patient.cell_phone)
    _fact(contact, FIELD_LABELS["home_phone"], patient.home_phone)
    place = ", ".join(p for p in (patient.city, patient.state, patient.zip_code) if p)
    _fact(contact, FIELD_LABELS["address"], " · ".join(p for p in (patient.address, place) if p))
    _fact(care, FIELD_LABELS["chart_id"], patient.chart_id)
    _fact(care, FIELD_LABELS["doctor_id"], doctors.get(patient.doctor_id or 0))
    status = patient.status
    _fact(care, "Status", status.raw if isinstance(status, Other) else (status or "").title())
    language = patient.preferred_language
    _fact(care, "Preferred language", LANGUAGES.get(language or "", language))


def _appointment_rows(
    items: Sequence[Appointment], doctors: Mapping[int, str], tz: tzinfo
) -> dict[str, list[Any]]:
    return {
        "When": [a.scheduled_time.astimezone(tz).strftime(_WHEN) if a.scheduled_time else view.BLANK for a in items],
        "Doctor": [doctors.get(a.doctor_id, view.BLANK) for a in items],
        "Status": [status_label(a.status) for a in items],
        "Minutes": [a.duration_minutes for a in items],
        "Reason": [a.reason or view.BLANK for a in items],
    }  # fmt: skip


def appointment_window(today: date) -> tuple[date, date, int]:
    """The date range a patient's page covers and how many EHR requests it takes."""
    start, end = today - timedelta(days=HISTORY_DAYS), today + timedelta(days=AHEAD_DAYS)
    days = (end - start).days + 1
    return start, end, -(-days // WINDOW_DAYS)


def appointments_overview(
    page: Page[Appointment],
    doctors: Mapping[int, str],
    *,
    tz: tzinfo,
    now: datetime,
    window: tuple[date, date, int],
) -> None:
    """Upcoming (soonest first) and past (latest first) appointments, with the window covered."""
    visits = [a for a in page.items if not a.is_break and not a.is_deleted]
    later = now.astimezone(tz)
    upcoming = sorted(
        (a for a in visits if a.scheduled_time and a.scheduled_time >= later),
        key=lambda a: a.scheduled_time or later,
    )
    past = sorted(
        (a for a in visits if not (a.scheduled_time and a.scheduled_time >= later)),
        key=lambda a: a.scheduled_time or later,
        reverse=True,
    )
    for title, items, empty in (
        ("Upcoming appointments", upcoming, "No upcoming appointments."),
        ("Past appointments", past, "No appointments in the last 12 months."),
    ):
        st.markdown(f"**{title}**")
        if items:
            st.dataframe(_appointment_rows(items, doctors, tz), hide_index=True, width="stretch")
        else:
            st.caption(empty)
    start, end, requests = window
    st.caption(
        f"Appointments from {start:{view.DATE_FORMAT}} to {end:{view.DATE_FORMAT}}. The EHR returns at most "
        f"{WINDOW_DAYS} days per request, so this took {requests} requests."
    )
    if page.truncated:
        st.warning(
            "Only part of this patient's appointments could be loaded (the EHR's page limit "
            "was reached). Open Appointments to see a narrower range.",
            icon=":material/warning:",
        )
