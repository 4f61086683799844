"""Patient services: search, read, register, edit and delete demographics.

Audit rows name the patient by id only; searches record which criteria were used, never the
values typed (a name is PHI).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from ehr.models import Page, Patient, PatientChanges, PatientDraft
from ehr.policy import Action
from ehr.services.gateway import Gateway, service
from storage.audit import AuditAction

__all__ = [
    "PatientDirectory",
    "create_patient",
    "delete_patient",
    "get_patient",
    "patient_directory",
    "search_patients",
    "update_patient",
]

# A schedule needs names for every patient on it; one walk of the patient list (250 a page)
# serves every view for this long, instead of one request per appointment row.
DIRECTORY_TTL_S: Final = 600.0
# 40 pages of 250: a 10,000-patient practice; beyond that the directory says it is partial.
DIRECTORY_MAX_PAGES: Final = 40


@dataclass(frozen=True)
class PatientDirectory:
    """Every patient by id, for labelling schedules; ``truncated`` when the walk was capped."""

    by_id: Mapping[int, Patient]
    truncated: bool = False

    @property
    def items(self) -> tuple[Patient, ...]:
        """The patients, for counting in the audit row."""
        return tuple(self.by_id.values())


_CRITERIA = ("name", "date_of_birth", "chart_id")


def _criteria_used(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "criteria": [c for c in _CRITERIA if arguments.get(c) not in (None, "")],
        "next_page": arguments.get("cursor") is not None,
    }


def _changed_fields(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {"fields": sorted(arguments.get("changes") or {})}


@service(
    Action.PATIENT_READ,
    AuditAction.SEARCH,
    "patient",
    "demographics",
    cached=True,
    describe=_criteria_used,
)
def search_patients(
    gw: Gateway,
    *,
    name: str | None = None,
    date_of_birth: date | None = None,
    chart_id: str | None = None,
    cursor: str | None = None,
) -> Page[Patient]:
    """One page of patients matching every given criterion; ``next_cursor`` goes on."""
    return gw.backend().search_patients(
        name=name, date_of_birth=date_of_birth, chart_id=chart_id, cursor=cursor
    )


@service(
    Action.PATIENT_READ,
    AuditAction.READ,
    "patient",
    "demographics",
    resource_arg="patient_id",
    patient_arg="patient_id",
    cached=True,
)
def get_patient(gw: Gateway, patient_id: int) -> Patient:
    """One patient's demographics."""
    return gw.backend().get_patient(patient_id)


@service(
    Action.PATIENT_WRITE,
    AuditAction.CREATE,
    "patient",
    "demographics",
    invalidates=("patient",),
    describe=lambda a: {"duplicate_override": bool(a.get("allow_duplicate"))},
)
def create_patient(gw: Gateway, draft: PatientDraft, *, allow_duplicate: bool = False) -> Patient:
    """Register a patient; ``allow_duplicate`` only after the user confirmed (and is audited)."""
    return gw.backend().create_patient(draft, allow_duplicate=allow_duplicate)


@service(
    Action.PATIENT_WRITE,
    AuditAction.UPDATE,
    "patient",
    "demographics",
    resource_arg="patient_id",
    patient_arg="patient_id",
    invalidates=("patient",),
    describe=_changed_fields,
)
def update_patient(
    gw: Gateway, patient_id: int, changes: PatientChanges, *, expected: Patient | None = None
) -> None:
    """Change only the given fields; refused if the patient changed upstream since ``expected``."""
    gw.backend().update_patient(patient_id, changes, expected=expected)


@service(
    Action.PATIENT_DELETE,
    AuditAction.DELETE,
    "patient",
    "demographics",
    resource_arg="patient_id",
    patient_arg="patient_id",
    invalidates=("patient", "appointment"),
)
def delete_patient(gw: Gateway, patient_id: int) -> None:
    """Delete a patient upstream (admin only)."""
    gw.backend().delete_patient(patient_id)


@service(
    Action.PATIENT_READ,
    AuditAction.SEARCH,
    "patient",
    "demographics",
    cached=True,
    cache_ttl_s=DIRECTORY_TTL_S,
    describe=lambda _a: {"directory": True},
)
def patient_directory(gw: Gateway) -> PatientDirectory:
    """All patients by id (a few large pages), so schedules show names with no per-row calls."""
    backend = gw.backend()
    found: dict[int, Patient] = {}
    cursor: str | None = None
    for _ in range(DIRECTORY_MAX_PAGES):
        page = backend.search_patients(cursor=cursor)
        found.update((p.id, p) for p in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return PatientDirectory(found)
    return PatientDirectory(found, truncated=True)
