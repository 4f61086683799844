"""Appointment services against the real sandbox over HTTP: edits, status changes, overlaps.

The gateway hands each role a scoped appointment (front desk never receives claim data), and
that scoped record is what a page passes back as ``expected``; these tests pin that a scoped
record still counts as "unchanged", and that a real upstream change is still caught.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from ehr.drchrono.backend import DrChronoBackend
from ehr.errors import ChangedUpstreamError, OverlappingAppointmentError
from ehr.models import Appointment, AppointmentDraft, AppointmentStatus, Page
from ehr.policy import Principal
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.services import Caller, Gateway, appointments
from ehr.transport import EHRTransport
from storage import audit_report

KEY = b"k" * 32
TODAY = dt.date(2025, 6, 11)
TZ = ZoneInfo("America/New_York")
CLINIC = ClinicConfig(
    seed=7, patients=40, months_back=3, months_ahead=1, doctors=1, offices=1, today=TODAY
)


class _StaticTokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self.token


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    started = SandboxServer(
        SandboxConfig(clinic=CLINIC, rate_limit_per_hour=0, burst_per_second=0)
    ).start()
    yield started
    started.stop()


@pytest.fixture
def transport(server: SandboxServer) -> Iterator[EHRTransport]:
    token = str(server.provider.issue_token(server.client_id, [])["access_token"])
    http = EHRTransport(server.base_url, _StaticTokens(token), sleep=lambda _s: None)
    yield http
    http.close()


def gateway(engine: Engine, transport: EHRTransport, role: str, user_id: int = 1) -> Gateway:
    backend = DrChronoBackend(transport, practice_tz=TZ)
    principal = Principal(user_id=user_id, username=f"{role}-user", role=role, is_active=True)
    return Gateway(Caller(principal), engine, KEY, backend=lambda: backend)


def patches(server: SandboxServer) -> int:
    return server.request_log.count(method="PATCH", path_prefix="/api/appointments")


def upcoming_with_claim_data(gw_admin: Gateway) -> Appointment:
    """A future visit carrying fields the front desk never receives."""
    listing = appointments.list_appointments(gw_admin, TODAY, TODAY + dt.timedelta(days=30))
    for appointment in listing.items:
        waiting = appointment.status in {AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED}
        claim_data = appointment.billing_status is not None or appointment.primary_insurer_name
        if appointment.patient_id and waiting and claim_data:
            return appointment
    pytest.fail("the sandbox clinic has no upcoming visit with claim data")


def test_front_desk_reschedules_the_appointment_it_was_shown(sqlite_engine, transport, server):
    admin = gateway(sqlite_engine, transport, "admin")
    target = upcoming_with_claim_data(admin)
    desk = gateway(sqlite_engine, transport, "front_desk", user_id=2)
    [shown] = [a for a in _day(desk, target).items if a.id == target.id]
    assert shown.primary_insurer_name is None  # scoped: what the page really holds
    assert target.scheduled_time is not None
    new_time = target.scheduled_time + dt.timedelta(days=1, hours=2)

    appointments.update_appointment(
        desk, target.id, {"scheduled_time": new_time}, expected=shown, allow_overlap=True
    )

    assert appointments.get_appointment(admin, target.id).scheduled_time == new_time


def test_an_appointment_changed_upstream_is_refused_and_nothing_is_sent(
    sqlite_engine, transport, server
):
    admin = gateway(sqlite_engine, transport, "admin")
    target = upcoming_with_claim_data(admin)
    desk = gateway(sqlite_engine, transport, "front_desk", user_id=2)
    [shown] = [a for a in _day(desk, target).items if a.id == target.id]
    appointments.set_appointment_status(admin, target.id, AppointmentStatus.NOT_CONFIRMED)
    before = patches(server)

    with pytest.raises(ChangedUpstreamError):
        appointments.update_appointment(desk, target.id, {"duration_minutes": 45}, expected=shown)

    assert patches(server) == before
    last = audit_report.query(sqlite_engine)[-1]
    assert (last.action, last.outcome, last.resource_id) == ("UPDATE", "ERROR", target.id)
    assert appointments.get_appointment(admin, target.id).duration_minutes != 45


def test_a_status_change_reaches_upstream(sqlite_engine, transport):
    admin = gateway(sqlite_engine, transport, "admin")
    target = upcoming_with_claim_data(admin)
    desk = gateway(sqlite_engine, transport, "front_desk", user_id=2)

    appointments.set_appointment_status(desk, target.id, AppointmentStatus.ARRIVED)

    assert appointments.get_appointment(admin, target.id).status is AppointmentStatus.ARRIVED


def test_an_overlap_is_refused_until_the_user_overrides_it(sqlite_engine, transport):
    admin = gateway(sqlite_engine, transport, "admin")
    taken = upcoming_with_claim_data(admin)
    assert taken.patient_id is not None
    assert taken.office_id is not None
    assert taken.scheduled_time is not None
    assert taken.exam_room is not None
    draft = AppointmentDraft(
        patient_id=taken.patient_id,
        doctor_id=taken.doctor_id,
        office_id=taken.office_id,
        exam_room=taken.exam_room,
        scheduled_time=taken.scheduled_time,
        duration_minutes=15,
    )
    with pytest.raises(OverlappingAppointmentError):
        appointments.create_appointment(admin, draft)

    booked = appointments.create_appointment(admin, draft, allow_overlap=True)

    assert booked.scheduled_time == taken.scheduled_time
    last = audit_report.query(sqlite_engine)[-1]
    assert (last.action, last.outcome) == ("CREATE", "SUCCESS")
    assert json.loads(last.details)["overlap_override"] is True


def _day(gw: Gateway, appointment: Appointment) -> Page[Appointment]:
    assert appointment.scheduled_time is not None
    day = appointment.scheduled_time.astimezone(TZ).date()
    return appointments.list_appointments(gw, day, day)
