"""What each role may see of a record: fields outside a role's rights are removed here.

DESIGN.md section 5: billing reads appointments but not clinical content, and only admin and
billing read billing data. Hiding a column in a widget is not a control, so the gateway returns
records with those fields already blanked (``dataclasses.replace``), and a page cannot show what
it never received (SECURITY.md CA-01).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, TypeVar

from ehr.models import Appointment, Page
from ehr.policy import Action, Principal, is_allowed

__all__ = [
    "BILLING_APPOINTMENT_FIELDS",
    "CLINICAL_APPOINTMENT_FIELDS",
    "scope_appointment",
    "scope_appointments",
]

T = TypeVar("T")

# Appointment fields that are billing data (claim state, payer): admin and billing only.
BILLING_APPOINTMENT_FIELDS: Final = (
    "billing_status",
    "claim_status_primary",
    "claim_status_secondary",
    "primary_insurer_name",
    "primary_insurer_payer_id",
    "secondary_insurer_name",
    "first_billed_date",
)
# Appointment fields that are clinical content (the visit reason names conditions).
CLINICAL_APPOINTMENT_FIELDS: Final = ("reason",)


def _hidden_fields(principal: Principal) -> dict[str, Any]:
    hidden: dict[str, Any] = {}
    if not is_allowed(principal, Action.BILLING_READ):
        hidden.update(dict.fromkeys(BILLING_APPOINTMENT_FIELDS))
    # Front desk books by reason, so it keeps it; only a role that can neither read clinical
    # data nor write appointments (billing) loses it.
    if not is_allowed(principal, Action.CLINICAL_READ) and not is_allowed(
        principal, Action.APPOINTMENT_WRITE
    ):
        hidden.update(dict.fromkeys(CLINICAL_APPOINTMENT_FIELDS))
    return hidden


def scope_appointment(principal: Principal, appointment: Appointment) -> Appointment:
    """The appointment with the fields ``principal`` may not see set to None."""
    hidden = _hidden_fields(principal)
    return dataclasses.replace(appointment, **hidden) if hidden else appointment


def scope_appointments(principal: Principal, page: Page[Appointment]) -> Page[Appointment]:
    """A page of appointments scoped like ``scope_appointment``."""
    hidden = _hidden_fields(principal)
    if not hidden:
        return page
    items = tuple(dataclasses.replace(a, **hidden) for a in page.items)
    return dataclasses.replace(page, items=items)
