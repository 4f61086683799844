"""Practice reference data: the connected EHR user, doctors, offices, visit types and payers.

Not PHI, but still behind the role policy and audited like every EHR call, and cached per
session because pages ask for it on every rerun. Doctors, offices, visit types and payers
change a few times a year, so they are kept for ``REFERENCE_TTL_S`` rather than the gateway's
one minute: re-reading them with every schedule view cost about a quarter of a clinic day's
calls (``benchmarks/clinic_day.py``). A doctor added upstream shows within the hour, or at once
after signing in again (a new session starts with an empty cache).
"""

from __future__ import annotations

from typing import Final

from ehr.models import AppointmentProfile, Doctor, EHRUser, Office, Page
from ehr.models_billing import Insurance
from ehr.policy import Action
from ehr.services.gateway import Gateway, service
from storage.audit import AuditAction

__all__ = [
    "REFERENCE_TTL_S",
    "current_ehr_user",
    "list_appointment_profiles",
    "list_doctors",
    "list_insurances",
    "list_offices",
]

# How long a session keeps the practice's reference data (see the module docstring).
REFERENCE_TTL_S: Final = 3600.0


@service(Action.ADMIN, AuditAction.READ, "ehr_user", "practice", cached=True)
def current_ehr_user(gw: Gateway) -> EHRUser:
    """The EHR account the practice connected with (Settings shows it)."""
    return gw.backend().current_user()


@service(
    Action.APPOINTMENT_READ,
    AuditAction.SEARCH,
    "doctor",
    "practice",
    cached=True,
    cache_ttl_s=REFERENCE_TTL_S,
)
def list_doctors(gw: Gateway) -> Page[Doctor]:
    """Every provider of the practice."""
    return gw.backend().list_doctors()


@service(
    Action.APPOINTMENT_READ,
    AuditAction.SEARCH,
    "office",
    "practice",
    cached=True,
    cache_ttl_s=REFERENCE_TTL_S,
)
def list_offices(gw: Gateway) -> Page[Office]:
    """Every office with its exam rooms."""
    return gw.backend().list_offices()


@service(
    Action.APPOINTMENT_READ,
    AuditAction.SEARCH,
    "appointment_profile",
    "practice",
    cached=True,
    cache_ttl_s=REFERENCE_TTL_S,
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
    cache_ttl_s=REFERENCE_TTL_S,
    describe=lambda a: {"filtered": a.get("term") is not None},
)
def list_insurances(gw: Gateway, *, term: str | None = None) -> Page[Insurance]:
    """Payers from the payer directory (registration picks a payer from it)."""
    return gw.backend().list_insurances(term=term)
