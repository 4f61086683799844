"""The patient directory against the real sandbox: a full walk, then refreshes by date.

Schedules label rows from the directory; a full walk costs a page per 250 patients, so between
walks (``DIRECTORY_FULL_WALK_S``) a refresh asks only for patients changed since the walk's
day. These tests count the sandbox's requests and drive the session cache's clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from ehr.drchrono.backend import DrChronoBackend
from ehr.models import Gender, PatientDraft
from ehr.policy import Principal
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.services import Caller, Gateway, patients, practice
from ehr.services.gateway import SessionCache
from ehr.services.patients import DIRECTORY_FULL_WALK_S, DIRECTORY_TTL_S
from ehr.transport import EHRTransport

KEY = b"k" * 32
TZ = ZoneInfo("America/New_York")
# 300 patients: two pages of 250, so a full walk and a refresh differ in request count.
CLINIC = ClinicConfig(seed=5, patients=300, months_back=1, months_ahead=1, doctors=1, offices=1)


class _StaticTokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self.token


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


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


def _gateway(
    engine: Engine, transport: EHRTransport, clock: _Clock, role: str = "front_desk"
) -> Gateway:
    backend = DrChronoBackend(transport, practice_tz=TZ)
    principal = Principal(user_id=2, username="desk", role=role, is_active=True)
    return Gateway(
        Caller(principal),
        engine,
        KEY,
        backend=lambda: backend,
        cache=SessionCache(clock=clock),
    )


def _patient_lists(server: SandboxServer, since: int) -> list[tuple[str, ...]]:
    """Query parameter names of each GET /api/patients answered after entry ``since``."""
    return [
        e.query_names
        for e in server.request_log.entries()[since:]
        if e.method == "GET" and e.path == "/api/patients"
    ]


def _upstream_ids(server: SandboxServer) -> set[int]:
    return {int(r["id"]) for _k, r, _s in server.store.scan("patients")}


def _register(gw: Gateway, last_name: str) -> int:
    draft = PatientDraft(
        first_name="Ada",
        last_name=last_name,
        date_of_birth=dt.date(1980, 1, 2),
        gender=Gender.FEMALE,
        doctor_id=min(d.id for d in practice.list_doctors(gw).items),
    )
    return patients.create_patient(gw, draft, allow_duplicate=True).id


def test_a_refresh_asks_only_for_changes_and_finds_a_patient_registered_elsewhere(
    sqlite_engine, transport, server
):
    clock = _Clock()
    desk = _gateway(sqlite_engine, transport, clock)
    start = len(server.request_log.entries())

    first = patients.patient_directory(desk)
    walk = _patient_lists(server, start)
    assert [("since" in q) for q in walk] == [False, False]
    assert set(first.by_id) == _upstream_ids(server)

    # Someone else (another session, or the EHR itself) registers a patient.
    other = _gateway(sqlite_engine, transport, _Clock(), role="admin")
    added = _register(other, "Directoryrefresh")
    clock.now += DIRECTORY_TTL_S + 1
    mark = len(server.request_log.entries())

    refreshed = patients.patient_directory(desk)

    refresh = _patient_lists(server, mark)
    assert [("since" in q) for q in refresh] == [True], "one dated request, not a full walk"
    assert added in refreshed.by_id
    assert refreshed.by_id[added].last_name == "Directoryrefresh"
    assert set(refreshed.by_id) == _upstream_ids(server)


def test_an_edit_in_this_session_shows_at_once_and_the_walk_repeats_after_its_period(
    sqlite_engine, transport, server
):
    clock = _Clock()
    desk = _gateway(sqlite_engine, transport, clock)
    patients.patient_directory(desk)
    added = _register(desk, "Beforeedit")  # invalidates the directory, not the walk
    mark = len(server.request_log.entries())

    assert patients.patient_directory(desk).by_id[added].last_name == "Beforeedit"
    assert [("since" in q) for q in _patient_lists(server, mark)] == [True]

    clock.now += DIRECTORY_FULL_WALK_S + 1
    mark = len(server.request_log.entries())
    patients.patient_directory(desk)
    assert [("since" in q) for q in _patient_lists(server, mark)] == [False, False]


def test_a_deleted_patient_leaves_the_directory_through_a_new_walk(
    sqlite_engine, transport, server
):
    clock = _Clock()
    admin = _gateway(sqlite_engine, transport, clock, role="admin")
    added = _register(admin, "Tobedeleted")
    assert added in patients.patient_directory(admin).by_id

    patients.delete_patient(admin, added)
    mark = len(server.request_log.entries())

    after = patients.patient_directory(admin)
    assert added not in after.by_id
    assert [("since" in q) for q in _patient_lists(server, mark)] == [False, False]


def test_a_role_change_in_the_session_does_not_reuse_the_walk(sqlite_engine, transport, server):
    clock = _Clock()
    cache = SessionCache(clock=clock)
    desk = _gateway(sqlite_engine, transport, clock)
    desk.cache = cache
    patients.patient_directory(desk)
    admin = _gateway(sqlite_engine, transport, clock, role="admin")
    admin.cache = cache
    mark = len(server.request_log.entries())

    patients.patient_directory(admin)

    assert [("since" in q) for q in _patient_lists(server, mark)] == [False, False]
