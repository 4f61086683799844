"""Scheduling analytics on Appointments: admin and front desk see them, from the mirror."""

from __future__ import annotations

import pytest

from ehr.policy import PermissionDenied
from ehr.services import mirror
from tests.pages.conftest import caller_of
from ui import wiring

SYNC_REQUESTS = 400


def _sync(admin) -> None:
    gw = wiring.new_gateway(caller_of(admin))
    for _ in range(20):
        if mirror.run_sync_step(gw, max_requests=SYNC_REQUESTS).stopped == "done":
            return
    pytest.fail("the demo clinic did not finish syncing")


def _section(at):
    return [e for e in at.expander if e.label == "Scheduling analytics"]


def test_admin_and_front_desk_see_attendance_by_provider(connected, open_app):
    _sync(connected["admin"])
    for role in ("admin", "front_desk"):
        at = open_app(connected[role], page="pages/appointments.py")
        assert not at.exception, at.exception
        [section] = _section(at)
        tables = section.dataframe
        assert len(tables) == 4
        attendance = tables[0].value
        assert {"provider", "scheduled", "no_show_rate"} <= set(attendance.columns)
        assert attendance["scheduled"].sum() > 0


def test_other_roles_do_not_get_the_section_and_the_service_refuses(connected, open_app):
    for role in ("clinician", "billing"):
        at = open_app(connected[role], page="pages/appointments.py")
        assert not at.exception
        assert _section(at) == []
    with pytest.raises(PermissionDenied):
        mirror.load_schedule_analytics(wiring.new_gateway(caller_of(connected["billing"])))


def test_an_empty_mirror_explains_itself(connected, open_app):
    at = open_app(connected["front_desk"], page="pages/appointments.py")
    [section] = _section(at)
    assert any("holds no appointments yet" in i.value for i in section.info)
