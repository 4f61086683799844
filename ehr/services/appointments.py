"""Appointment services: the schedule, booking, rescheduling and status changes.

Results pass through ``scoping`` so a role never receives appointment fields it may not read.
An edit's ``expected`` record is therefore a scoped one, and is compared like with like.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from ehr.errors import ChangedUpstreamError
from ehr.models import (
    Appointment,
    AppointmentChanges,
    AppointmentDraft,
    AppointmentStatus,
    Other,
    Page,
)
from ehr.policy import Action
from ehr.services.gateway import Gateway, service
from ehr.services.scoping import scope_appointment, scope_appointments
from storage.audit import AuditAction

__all__ = [
    "create_appointment",
    "get_appointment",
    "list_appointments",
    "set_appointment_status",
    "update_appointment",
]

# Listings omit the status history (a verbose-only field): its absence is never a change.
_NOT_COMPARED: Final = frozenset({"status_transitions"})


def _range(arguments: Mapping[str, Any]) -> dict[str, Any]:
    start, end = arguments["start"], arguments["end"]
    facts: dict[str, Any] = {"from_day": start.isoformat(), "to_day": end.isoformat()}
    for key in ("doctor_id", "office_id"):
        if arguments.get(key) is not None:
            facts[key] = arguments[key]
    return facts


def _status(arguments: Mapping[str, Any]) -> dict[str, Any]:
    status = arguments["status"]
    return {"new_status": status.raw if isinstance(status, Other) else status.value}


@service(
    Action.APPOINTMENT_READ,
    AuditAction.SEARCH,
    "appointment",
    "scheduling",
    patient_arg="patient_id",
    cached=True,
    scope=scope_appointments,
    describe=_range,
)
def list_appointments(
    gw: Gateway,
    start: date,
    end: date,
    *,
    doctor_id: int | None = None,
    office_id: int | None = None,
    patient_id: int | None = None,
    status: AppointmentStatus | Other | None = None,
) -> Page[Appointment]:
    """Appointments from ``start`` to ``end`` inclusive (practice-local dates)."""
    if end < start:
        raise ValueError("the end date is before the start date")
    return gw.backend().list_appointments(
        start, end, doctor_id=doctor_id, office_id=office_id, patient_id=patient_id, status=status
    )


@service(
    Action.APPOINTMENT_READ,
    AuditAction.READ,
    "appointment",
    "scheduling",
    resource_arg="appointment_id",
    cached=True,
    scope=scope_appointment,
)
def get_appointment(gw: Gateway, appointment_id: str) -> Appointment:
    """One appointment."""
    return gw.backend().get_appointment(appointment_id)


@service(
    Action.APPOINTMENT_WRITE,
    AuditAction.CREATE,
    "appointment",
    "scheduling",
    patient_arg="draft.patient_id",
    invalidates=("appointment",),
    scope=scope_appointment,
    describe=lambda a: {"overlap_override": bool(a.get("allow_overlap"))},
)
def create_appointment(
    gw: Gateway, draft: AppointmentDraft, *, allow_overlap: bool = False
) -> Appointment:
    """Book an appointment; ``allow_overlap`` only after the user confirmed the double booking."""
    return gw.backend().create_appointment(draft, allow_overlap=allow_overlap)


@service(
    Action.APPOINTMENT_WRITE,
    AuditAction.UPDATE,
    "appointment",
    "scheduling",
    resource_arg="appointment_id",
    invalidates=("appointment",),
    describe=lambda a: {
        "fields": sorted(a.get("changes") or {}),
        "overlap_override": bool(a.get("allow_overlap")),
    },
)
def update_appointment(
    gw: Gateway,
    appointment_id: str,
    changes: AppointmentChanges,
    *,
    allow_overlap: bool = False,
    expected: Appointment | None = None,
) -> None:
    """Reschedule or otherwise change only the given fields.

    ``expected`` is the appointment as this caller was shown it (scoped to their role). When
    the fields they can see differ upstream, raises ``ChangedUpstreamError`` and sends nothing;
    also ``NotFoundError``, ``OverlappingAppointmentError`` and ``ValidationFailedError``.
    """
    backend = gw.backend()
    if expected is not None:
        current = backend.get_appointment(appointment_id)
        if not _same_as_shown(scope_appointment(gw.caller.principal, current), expected):
            raise ChangedUpstreamError(details={"resource": "appointment", "id": appointment_id})
        # The backend compares every field, including those this role never received; the
        # record just read stands in for them, and the backend still re-checks it.
        expected = current
    backend.update_appointment(
        appointment_id, changes, allow_overlap=allow_overlap, expected=expected
    )


def _same_as_shown(current: Appointment, shown: Appointment) -> bool:
    return all(
        getattr(current, f.name) == getattr(shown, f.name)
        for f in dataclasses.fields(current)
        if f.name not in _NOT_COMPARED
    )


@service(
    Action.APPOINTMENT_WRITE,
    AuditAction.UPDATE,
    "appointment",
    "scheduling",
    resource_arg="appointment_id",
    invalidates=("appointment",),
    describe=_status,
)
def set_appointment_status(
    gw: Gateway, appointment_id: str, status: AppointmentStatus | Other
) -> None:
    """Check in, room, complete, cancel or mark a no-show."""
    gw.backend().set_appointment_status(appointment_id, status)
