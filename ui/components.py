"""Small display helpers shared by pages: status labels, colours and counts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ehr.models import Appointment, AppointmentStatus, Other

__all__ = ["STATUS_COLOURS", "STATUS_LABELS", "status_counts", "status_label"]

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
