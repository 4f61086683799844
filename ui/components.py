"""Small display helpers shared by pages: status labels, colours and counts."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import tzinfo
from typing import Final

import streamlit as st

from ehr.models import Appointment, AppointmentStatus, Other, Patient

__all__ = [
    "IN_CLINIC",
    "STATUS_COLOURS",
    "STATUS_LABELS",
    "in_clinic_rows",
    "nav_link",
    "status_counts",
    "status_label",
]

# Front-desk wording, in the order a visit moves through the day.
STATUS_LABELS: Final[dict[AppointmentStatus, str]] = {
    AppointmentStatus.BOOKED: "Booked",
    AppointmentStatus.NOT_CONFIRMED: "Not confirmed",
    AppointmentStatus.CONFIRMED: "Confirmed",
    AppointmentStatus.ARRIVED: "Arrived",
    AppointmentStatus.CHECKED_IN: "Checked in",
    AppointmentStatus.CHECKED_IN_ONLINE: "Checked in online",
    AppointmentStatus.IN_ROOM: "In room",
    AppointmentStatus.IN_SESSION: "In session",
    AppointmentStatus.COMPLETE: "Complete",
    AppointmentStatus.RESCHEDULED: "Rescheduled",
    AppointmentStatus.CANCELLED: "Cancelled",
    AppointmentStatus.NO_SHOW: "No show",
}
# Streamlit badge colours: waiting states blue, in-clinic orange, done green, lost red.
STATUS_COLOURS: Final[dict[AppointmentStatus, str]] = {
    AppointmentStatus.BOOKED: "blue",
    AppointmentStatus.NOT_CONFIRMED: "gray",
    AppointmentStatus.CONFIRMED: "blue",
    AppointmentStatus.ARRIVED: "orange",
    AppointmentStatus.CHECKED_IN: "orange",
    AppointmentStatus.CHECKED_IN_ONLINE: "orange",
    AppointmentStatus.IN_ROOM: "violet",
    AppointmentStatus.IN_SESSION: "violet",
    AppointmentStatus.COMPLETE: "green",
    AppointmentStatus.RESCHEDULED: "gray",
    AppointmentStatus.CANCELLED: "red",
    AppointmentStatus.NO_SHOW: "red",
}
IN_CLINIC: Final = frozenset(
    {
        AppointmentStatus.ARRIVED,
        AppointmentStatus.CHECKED_IN,
        AppointmentStatus.CHECKED_IN_ONLINE,
        AppointmentStatus.IN_ROOM,
        AppointmentStatus.IN_SESSION,
    }
)


def status_label(status: AppointmentStatus | Other) -> str:
    """The front-desk label of a status; a practice's custom status shows as typed upstream."""
    if isinstance(status, Other):
        return status.raw
    return STATUS_LABELS.get(status, status.value)


def in_clinic_rows(
    appointments: Iterable[Appointment],
    patients: Mapping[int, Patient],
    doctors: Mapping[int, str],
    tz: tzinfo,
) -> list[dict[str, str]]:
    """Rows for the front desk's "in the clinic now" list, earliest first, as plain text."""
    rows = []
    for a in sorted(appointments, key=lambda a: (a.scheduled_time is None, a.scheduled_time)):
        patient = patients.get(a.patient_id) if a.patient_id is not None else None
        name = ""
        if patient is not None:
            name = " ".join(p for p in (patient.first_name, patient.last_name) if p)
        rows.append(
            {
                "Time": f"{a.scheduled_time.astimezone(tz):%H:%M}" if a.scheduled_time else "—",
                "Patient": name or (f"Patient {a.patient_id}" if a.patient_id else "—"),
                "Doctor": doctors.get(a.doctor_id, f"Doctor {a.doctor_id}"),
                "Status": status_label(a.status),
            }
        )
    return rows


def status_counts(appointments: Iterable[Appointment]) -> dict[str, int]:
    """Appointments per status label, in workflow order, custom statuses last; no zeros."""
    counts: dict[str, int] = {}
    for appointment in appointments:
        if appointment.is_break or appointment.is_deleted:
            continue
        label = status_label(appointment.status)
        counts[label] = counts.get(label, 0) + 1
    order = {label: i for i, label in enumerate(STATUS_LABELS.values())}
    return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


_LINK_STYLE: Final = (
    "display:inline-block;padding:0.45rem 0.9rem;border-radius:0.5rem;font-weight:500;"
    "text-decoration:none;line-height:1.6;"
)
_PRIMARY: Final = "background:#1f6f8b;color:#ffffff;border:1px solid #1f6f8b;"
_SECONDARY: Final = "background:#ffffff;color:#1d2b36;border:1px solid #c4d0d9;"


def nav_link(label: str, href: str, *, primary: bool = True) -> None:
    """A button-styled link that opens in the same tab (``st.link_button`` opens a new one).

    For our own routes (sign-in, EHR connect): the OAuth round trip must come back to the tab
    the user started in. ``label`` and ``href`` are constants of the app, never user input.
    """
    if not href.startswith("/"):
        raise ValueError("nav_link is for the app's own paths")
    style = _LINK_STYLE + (_PRIMARY if primary else _SECONDARY)
    st.html(f'<a href="{html.escape(href)}" style="{style}">{html.escape(label)}</a>')
