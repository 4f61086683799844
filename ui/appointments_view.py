"""What the Appointments page's views share: the practice's reference data that labels a
schedule, Markdown-safe text and status badges, time ranges, and the message kept across a rerun.

The views themselves are ``ui.appointments_filters`` (the filter bar and the link that presets
it), ``ui.appointments_grid`` (the day grid the front desk works from) and
``ui.appointments_tables`` (the week and list tables). Patient names come from one cached walk
of the patient list (``patients.patient_directory``), never from a request per row. Every time
is shown in the practice timezone. Upstream text (names, reasons, custom statuses) is escaped
before it goes into Markdown, so it always renders as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Final

import streamlit as st

from ehr.models import Appointment, AppointmentStatus, Doctor, Office, Other, Patient
from ehr.services import patients, practice
from ehr.services.gateway import Gateway
from ui.components import STATUS_COLOURS, status_label

__all__ = [
    "DASH",
    "Practice",
    "escape_md",
    "flash",
    "load_practice",
    "patient_name",
    "show_flash",
    "status_badge",
    "time_range",
    "visible",
]

# What the page shows for a value the role never receives (billing gets no visit reason).
DASH: Final = "—"
# CommonMark lets any ASCII punctuation be backslash-escaped; escaping all of it also disarms
# Streamlit's own directives (``:red[...]``, ``:material/...:``) and ``$`` maths.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&\"'=^%@/;,?])")
_WHITESPACE = re.compile(r"\s+")
_FLASH_KEY: Final = "appointments.flash"


def escape_md(text: str) -> str:
    """``text`` as literal Markdown: one line, every punctuation mark escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _WHITESPACE.sub(" ", text).strip())


def status_badge(status: AppointmentStatus | Other) -> str:
    """A Markdown colour badge for a status (a custom status is grey, its text escaped)."""
    colour = "gray" if isinstance(status, Other) else STATUS_COLOURS.get(status, "gray")
    return f":{colour}-badge[{escape_md(status_label(status))}]"


# --- reference data -----------------------------------------------------------------------


@dataclass(frozen=True)
class Practice:
    """Doctors, offices and the patient directory: what labels a schedule."""

    doctors: Mapping[int, Doctor]
    offices: Mapping[int, Office]
    patients: Mapping[int, Patient]
    directory_truncated: bool = False

    def doctor(self, doctor_id: int | None) -> str:
        """The doctor's display name."""
        found = self.doctors.get(doctor_id) if doctor_id is not None else None
        return found.display_name if found else f"Doctor {doctor_id}"

    def office(self, office_id: int | None) -> str:
        """The office's name."""
        found = self.offices.get(office_id) if office_id is not None else None
        return (found.name or f"Office {office_id}") if found else DASH

    def room(self, office_id: int | None, index: int | None) -> str:
        """The exam room's name within its office."""
        if index is None:
            return DASH
        office = self.offices.get(office_id) if office_id is not None else None
        for room in office.exam_rooms if office else ():
            if room.index == index:
                return room.name or f"Room {index}"
        return f"Room {index}"

    def patient(self, appointment: Appointment) -> str:
        """The patient's name, "Break" for a break, or the id when the directory lacks it."""
        if appointment.is_break or appointment.patient_id is None:
            return "Break"
        found = self.patients.get(appointment.patient_id)
        if found is None:
            return f"Patient #{appointment.patient_id}"
        return patient_name(found)


def patient_name(patient: Patient) -> str:
    """First (preferred) last; the id when the chart has no name."""
    first = patient.first_name or ""
    if patient.preferred_name and patient.preferred_name != patient.first_name:
        first = f"{first} ({patient.preferred_name})".strip()
    name = " ".join(p for p in (first, patient.last_name) if p)
    return name or f"Patient #{patient.id}"


def load_practice(gw: Gateway) -> Practice:
    """Doctors, offices and the patient directory (each one cached call for the session)."""
    doctors = practice.list_doctors(gw).items
    offices = practice.list_offices(gw).items
    directory = patients.patient_directory(gw)
    return Practice(
        doctors={d.id: d for d in doctors},
        offices={o.id: o for o in offices if not o.archived},
        patients=directory.by_id,
        directory_truncated=directory.truncated,
    )


def visible(items: Iterable[Appointment]) -> list[Appointment]:
    """The timed, not deleted appointments in time order (then doctor and id)."""
    return sorted(
        (a for a in items if not a.is_deleted and a.scheduled_time is not None),
        key=lambda a: (a.scheduled_time, a.doctor_id, a.id),
    )


def time_range(appointment: Appointment, tz: tzinfo) -> str:
    """``09:00–09:20`` in the practice timezone."""
    if appointment.scheduled_time is None:
        return DASH
    start = appointment.scheduled_time.astimezone(tz)
    end = appointment.ends_at
    return f"{start:%H:%M}–{end.astimezone(tz):%H:%M}" if end else f"{start:%H:%M}"


def flash(message: str, *, warning: bool = False) -> None:
    """Keep a message for the next rerun (the page reruns to show fresh data)."""
    st.session_state[_FLASH_KEY] = (message, warning)


def show_flash() -> None:
    """Show and forget the last message."""
    kept = st.session_state.pop(_FLASH_KEY, None)
    if not isinstance(kept, tuple):
        return
    message, warning = kept
    if warning:
        st.warning(message, icon=":material/sync_problem:")
    else:
        st.success(message, icon=":material/check_circle:")
