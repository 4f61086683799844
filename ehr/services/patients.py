"""Patient services: search, read, register, edit and delete demographics.

Audit rows name the patient by id only; searches record which criteria were used, never the
values typed (a name is PHI).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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

# A schedule needs names for every patient on it; the directory serves every view for this
# long, instead of one request per appointment row.
DIRECTORY_TTL_S: Final = 600.0
# A full walk of the patient list (250 a page) at most this often per session; in between,
# a refresh asks only for patients created or changed since the walk's day, one request on a
# normal day instead of a page per 250 patients (six for the demo clinic, forty for a large
# practice). Patients deleted upstream drop out at the next full walk; until then their name
# can label a schedule row that, being deleted with them, no longer shows.
DIRECTORY_FULL_WALK_S: Final = 4 * 3600.0
# 40 pages of 250: a 10,000-patient practice; beyond that the directory says it is partial.
DIRECTORY_MAX_PAGES: Final = 40
# The session-cache tag of the last full walk (not "patient": registering or editing a patient
# invalidates the directory, whose refresh then finds the change by date; a delete drops both).
_WALK_TAG: Final = "patient_directory_walk"


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
    invalidates=("patient", "appointment", _WALK_TAG),
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
    """All patients by id, so schedules show names with no per-row calls.

    A full walk (a few large pages) at most every ``DIRECTORY_FULL_WALK_S``; otherwise the
    session's last walk plus the patients changed since the day before it.
    """
    principal = gw.caller.principal
    walk_key = (_WALK_TAG, principal.user_id, principal.role)
    found, walk = gw.cache.get(walk_key)
    if found and isinstance(walk, _Walk):
        changed = _walk(gw, updated_since=walk.changes_since)
        if not changed.truncated:
            return PatientDirectory(
                {**walk.directory.by_id, **changed.by_id}, walk.directory.truncated
            )
    # The day before, in UTC: DrChrono's ``since`` is a practice-local date, and a day's margin
    # covers any time zone, at the price of re-reading yesterday's changes.
    changes_since = datetime.now(UTC).date() - timedelta(days=1)
    directory = _walk(gw)
    gw.cache.put(walk_key, {_WALK_TAG}, _Walk(directory, changes_since), DIRECTORY_FULL_WALK_S)
    return directory


@dataclass(frozen=True)
class _Walk:
    """A session's last full walk of the patient list, and the date to refresh it from."""

    directory: PatientDirectory
    changes_since: date


def _walk(gw: Gateway, *, updated_since: date | None = None) -> PatientDirectory:
    backend = gw.backend()
    found: dict[int, Patient] = {}
    cursor: str | None = None
    for _ in range(DIRECTORY_MAX_PAGES):
        page = backend.search_patients(updated_since=updated_since, cursor=cursor)
        found.update((p.id, p) for p in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return PatientDirectory(found)
    return PatientDirectory(found, truncated=True)
