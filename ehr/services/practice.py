"""Practice reference data: the connected EHR user, doctors, offices, visit types and payers.

Not PHI, but still behind the role policy and audited like every EHR call, and cached per
session because pages ask for it on every rerun.
"""

from __future__ import annotations

from ehr.models import AppointmentProfile, Doctor, EHRUser, Office, Page
from ehr.models_billing import Insurance
from ehr.policy import Action
from ehr.services.gateway import Gateway, service
from storage.audit import AuditAction

__all__ = [
    "current_ehr_user",
    "list_appointment_profiles",
    "list_doctors",
    "list_insurances",
    "list_offices",
]


@service(Action.ADMIN, AuditAction.READ, "ehr_user", "practice", cached=True)
def current_ehr_user(gw: Gateway) -> EHRUser:
    """The EHR account the practice connected with (Settings shows it)."""
    return gw.backend().current_user()


@service(Action.APPOINTMENT_READ, AuditAction.SEARCH, "doctor", "practice", cached=True)
def list_doctors(gw: Gateway) -> Page[Doctor]:
    """Every provider of the practice."""
    return gw.backend().list_doctors()


@service(Action.APPOINTMENT_READ, AuditAction.SEARCH, "office", "practice", cached=True)
def list_offices(gw: Gateway) -> Page[Office]:
    """Every office with its exam rooms."""
    return gw.backend().list_offices()


@service(
    Action.APPOINTMENT_READ,
    AuditAction.SEARCH,
    "appointment_profile",
    "practice",
    cached=True,
    describe=lambda a: {"doctor_id": a.get("doctor_id")},
)
def list_appointment_profiles(
    gw: Gateway, *, doctor_id: int | None = None
) -> Page[AppointmentProfile]:
    """Visit types (default duration, reason), optionally for one doctor."""
    return gw.backend().list_appointment_profiles(doctor_id=doctor_id)


@service(
    Action.PATIENT_READ,
    AuditAction.SEARCH,
    "insurance",
    "practice",
    cached=True,
    describe=lambda a: {"filtered": a.get("term") is not None},
)
def list_insurances(gw: Gateway, *, term: str | None = None) -> Page[Insurance]:
    """Payers from the payer directory (registration picks a payer from it)."""
    return gw.backend().list_insurances(term=term)
