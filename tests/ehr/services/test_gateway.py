"""The gateway's order of work: authorise, audit (fail closed), cache, backend, scope.

The backend here is a recording stand-in, because these tests are about what the gateway does
around it (no request when denied, one audit row per call, cache isolation); the DrChrono
backend against the real sandbox is exercised in test_gateway_sandbox.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from ehr.errors import AuditWriteError, NotConnectedError, NotFoundError
from ehr.models import (
    Appointment,
    AppointmentBillingStatus,
    AppointmentStatus,
    Gender,
    Page,
    Patient,
    PatientDraft,
)
from ehr.policy import PermissionDenied, Principal
from ehr.services import Caller, Gateway, SessionCache, appointments, patients
from storage import audit_report
from storage.audit import AuditEvent

KEY = b"k" * 32


@dataclass
class RecordingBackend:
    """Answers a few calls and records each one, standing in for an EHR."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.fail_with is not None:
            raise self.fail_with

    def get_patient(self, patient_id: int) -> Patient:
        self._call("get_patient", patient_id)
        return Patient(id=patient_id, first_name="Zebulon", last_name="Quixote")

    def search_patients(self, **criteria: Any) -> Page[Patient]:
        self._call("search_patients", criteria)
        return Page(items=(Patient(id=1), Patient(id=2)), next_cursor="c2")

    def create_patient(self, draft: PatientDraft, *, allow_duplicate: bool = False) -> Patient:
        self._call("create_patient", allow_duplicate)
        return Patient(id=77, first_name=draft.first_name)

    def delete_patient(self, patient_id: int) -> None:
        self._call("delete_patient", patient_id)

    def list_appointments(self, start: date, end: date, **filters: Any) -> Page[Appointment]:
        self._call("list_appointments", (start, end, filters))
        appointment = Appointment(
            id="a1",
            doctor_id=1,
            office_id=2,
            scheduled_time=datetime(2026, 11, 28, 15, tzinfo=UTC),
            patient_id=42,
            status=AppointmentStatus.ARRIVED,
            reason="Diabetes follow-up",
            billing_status=AppointmentBillingStatus.BALANCE_DUE,
            primary_insurer_name="Acme Health",
        )
        return Page(items=(appointment,))


def principal(role: str, user_id: int = 1) -> Principal:
    return Principal(user_id=user_id, username=f"{role}-user", role=role, is_active=True)


def gateway(engine: Engine, role: str, backend: RecordingBackend, *, user_id: int = 1) -> Gateway:
    caller = Caller(principal(role, user_id), session_ref="s1", client_ip="10.0.0.7")
    return Gateway(caller, engine, KEY, backend=lambda: backend)  # type: ignore[arg-type,return-value]


def rows(engine: Engine) -> list[AuditEvent]:
    return audit_report.query(engine)


def test_a_read_writes_exactly_one_complete_audit_row(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    patient = patients.get_patient(gateway(sqlite_engine, "clinician", backend), 42)
    assert patient.id == 42
    [row] = rows(sqlite_engine)
    assert (row.user_id, row.username, row.role) == (1, "clinician-user", "clinician")
    assert (row.action, row.outcome) == ("READ", "SUCCESS")
    assert (row.resource_type, row.resource_id, row.patient_id) == ("patient", "42", "42")
    assert row.data_category == "demographics"
    assert row.client_ip == "10.0.0.7"
    assert row.correlation_id
    assert row.ts_utc
    assert "Zebulon" not in row.details


def test_a_denied_call_is_audited_and_never_reaches_the_backend(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    built = []

    def factory() -> RecordingBackend:
        built.append(True)
        return backend

    caller = Caller(principal("billing"), client_ip="10.0.0.8")
    gw = Gateway(caller, sqlite_engine, KEY, backend=factory)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied) as denied:
        patients.delete_patient(gw, 42)
    assert denied.value.code == "permission_denied"
    assert built == []
    assert backend.calls == []
    [row] = rows(sqlite_engine)
    assert (row.action, row.outcome, row.resource_id) == ("DELETE", "DENIED", "42")
    assert json.loads(row.details)["permission"] == "patient.delete"
    assert denied.value.correlation_id == row.correlation_id


def test_an_unwritable_audit_log_returns_no_data(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    gw = gateway(sqlite_engine, "clinician", backend)
    gw.audit_key = b"short"  # append refuses an unusable key: the row cannot be written
    with pytest.raises(AuditWriteError):
        patients.get_patient(gw, 42)
    assert rows(sqlite_engine) == []


def test_an_unwritable_audit_log_stops_a_write_before_it_is_sent(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    gw = gateway(sqlite_engine, "admin", backend)
    gw.audit_key = b"short"
    with pytest.raises(AuditWriteError):
        patients.delete_patient(gw, 42)
    assert backend.calls == []


def test_a_write_records_the_request_and_its_outcome(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    draft = PatientDraft(
        first_name="Zebulon",
        last_name="Quixote",
        date_of_birth=date(1931, 3, 17),
        gender=Gender.MALE,
        doctor_id=1,
    )
    created = patients.create_patient(
        gateway(sqlite_engine, "front_desk", backend), draft, allow_duplicate=True
    )
    assert created.id == 77
    requested, done = rows(sqlite_engine)
    assert (requested.action, json.loads(requested.details)["stage"]) == ("CREATE", "requested")
    assert json.loads(done.details) == {"duplicate_override": True}
    assert requested.correlation_id == done.correlation_id
    assert "Zebulon" not in requested.details + done.details


def test_an_upstream_error_is_audited_as_error_and_raised(sqlite_engine: Engine) -> None:
    backend = RecordingBackend(fail_with=NotFoundError(correlation_id="up123"))
    with pytest.raises(NotFoundError):
        patients.get_patient(gateway(sqlite_engine, "clinician", backend), 9)
    [row] = rows(sqlite_engine)
    assert row.outcome == "ERROR"
    assert json.loads(row.details) == {"error": "not_found", "upstream_ref": "up123"}


def test_not_connected_is_audited_and_raised(sqlite_engine: Engine) -> None:
    def factory() -> RecordingBackend:
        raise NotConnectedError()

    gw = Gateway(Caller(principal("admin")), sqlite_engine, KEY, backend=factory)  # type: ignore[arg-type]
    with pytest.raises(NotConnectedError):
        patients.get_patient(gw, 1)
    [row] = rows(sqlite_engine)
    assert (row.outcome, json.loads(row.details)["error"]) == ("ERROR", "not_connected")


def test_a_cache_hit_is_audited_and_does_not_call_upstream(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    gw = gateway(sqlite_engine, "front_desk", backend)
    first = patients.search_patients(gw, name="Quix")
    second = patients.search_patients(gw, name="Quix")
    assert first == second
    assert len(backend.calls) == 1
    miss, hit = rows(sqlite_engine)
    assert json.loads(miss.details) == {
        "criteria": ["name"],
        "next_page": False,
        "count": 2,
        "truncated": False,
    }
    assert json.loads(hit.details)["cache"] == "hit"
    assert "Quix" not in miss.details + hit.details  # the typed name never reaches the log


def test_a_write_invalidates_the_cache_it_touches(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    gw = gateway(sqlite_engine, "admin", backend)
    patients.get_patient(gw, 42)
    patients.get_patient(gw, 42)
    assert [c for c, _ in backend.calls].count("get_patient") == 1  # second came from cache
    patients.delete_patient(gw, 42)
    patients.get_patient(gw, 42)
    assert [c for c, _ in backend.calls].count("get_patient") == 2  # asked upstream again


def test_cache_entries_expire() -> None:
    now = [0.0]
    cache = SessionCache(ttl_s=60, clock=lambda: now[0])
    cache.put("k", {"patient"}, 1)
    assert cache.get("k") == (True, 1)
    now[0] = 61
    assert cache.get("k") == (False, None)


def test_cache_is_bounded() -> None:
    cache = SessionCache(max_entries=3)
    for i in range(5):
        cache.put(i, {"patient"}, i)
    assert len(cache) == 3
    assert cache.get(0) == (False, None)
    assert cache.get(4) == (True, 4)


def test_billing_never_receives_the_visit_reason(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    day = date(2026, 11, 28)
    [seen] = appointments.list_appointments(
        gateway(sqlite_engine, "billing", backend), day, day
    ).items
    assert seen.reason is None
    assert seen.billing_status == AppointmentBillingStatus.BALANCE_DUE


def test_front_desk_never_receives_claim_data(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    day = date(2026, 11, 28)
    [seen] = appointments.list_appointments(
        gateway(sqlite_engine, "front_desk", backend), day, day
    ).items
    assert seen.reason == "Diabetes follow-up"
    assert seen.billing_status is None
    assert seen.primary_insurer_name is None


def test_two_sessions_never_share_cached_data(sqlite_engine: Engine) -> None:
    """CA-01: each session has its own cache and its own audit row for the same request."""
    backend = RecordingBackend()
    day = date(2026, 11, 28)
    clinician = gateway(sqlite_engine, "clinician", backend, user_id=1)
    billing = gateway(sqlite_engine, "billing", backend, user_id=2)
    [for_clinician] = appointments.list_appointments(clinician, day, day).items
    [for_billing] = appointments.list_appointments(billing, day, day).items
    assert for_clinician.reason == "Diabetes follow-up"
    assert for_billing.reason is None
    assert len(backend.calls) == 2  # the billing session made its own, role-scoped request
    assert {r.user_id for r in rows(sqlite_engine)} == {1, 2}


def test_a_reversed_date_range_is_refused_and_audited(sqlite_engine: Engine) -> None:
    backend = RecordingBackend()
    with pytest.raises(ValueError, match="end date"):
        appointments.list_appointments(
            gateway(sqlite_engine, "front_desk", backend), date(2026, 2, 2), date(2026, 2, 1)
        )
    assert backend.calls == []
    [row] = rows(sqlite_engine)
    assert row.outcome == "ERROR"
