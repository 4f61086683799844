"""Scheduling analytics on Appointments: admin and front desk see them, from the mirror."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from ehr.policy import PermissionDenied
from ehr.services import mirror
from storage import audit_report
from storage import mirror as stored
from tests.pages.conftest import caller_of
from ui import wiring
from ui.schedule_analytics_view import SECTION_KEY

SYNC_REQUESTS = 400


def _sync(admin) -> None:
    gw = wiring.new_gateway(caller_of(admin))
    for _ in range(20):
        if mirror.run_sync_step(gw, max_requests=SYNC_REQUESTS).stopped == "done":
            return
    pytest.fail("the demo clinic did not finish syncing")


def _section(at):
    return [e for e in at.expander if e.label == "Scheduling analytics"]


def _open_section(at: AppTest) -> AppTest:
    """Expand the section as a click would (its expander reruns the page on change)."""
    at.session_state[SECTION_KEY] = True
    at.run()
    assert not at.exception, at.exception
    return at


def _reads(username: str, resource_type: str) -> int:
    events = audit_report.query(wiring.app_engine(), user=username, action="READ", limit=5000)
    return sum(e.resource_type == resource_type for e in events)


def _scheduled(at: AppTest) -> int:
    [section] = _section(at)
    return int(section.dataframe[0].value["scheduled"].sum())


def test_admin_and_front_desk_see_attendance_by_provider(connected, open_app):
    _sync(connected["admin"])
    for role in ("admin", "front_desk"):
        at = open_app(connected[role], page="pages/appointments.py")
        assert not at.exception, at.exception
        [closed] = _section(at)
        assert not closed.dataframe, "a closed section computes nothing"
        [section] = _section(_open_section(at))
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
    at = _open_section(open_app(connected["front_desk"], page="pages/appointments.py"))
    [section] = _section(at)
    assert any("holds no appointments yet" in i.value for i in section.info)


def test_kept_tables_are_per_session_and_dropped_when_the_mirror_changes(connected, open_app):
    _sync(connected["admin"])
    first = _open_section(open_app(connected["front_desk"], page="pages/appointments.py"))
    before = _scheduled(first)
    loads = _reads("frontdesk", "schedule_mirror")
    versions = _reads("frontdesk", "schedule_mirror_version")
    first.run()  # nothing changed: the kept tables are shown, the view is still audited
    assert _scheduled(first) == before
    assert _reads("frontdesk", "schedule_mirror") == loads
    assert _reads("frontdesk", "schedule_mirror_version") == versions + 1

    # Another browser session (the admin's) loads the mirror itself, audited as its own read.
    admin_loads = _reads("admin", "schedule_mirror")
    second = _open_section(open_app(connected["admin"], page="pages/appointments.py"))
    assert _reads("admin", "schedule_mirror") == admin_loads + 1
    assert _scheduled(second) == before

    # A sync stores one more completed visit for a provider in the range: both sessions see it.
    # (a copy of a stored visit that is not rescheduled, moved to yesterday under a new id).
    engine, cipher = wiring.app_engine(), wiring.cipher()
    visit = next(
        dict(r)
        for r in stored.load_rows(engine, cipher, "appointment")
        if r.get("doctor_id") and r.get("status") not in {"rescheduled", None}
    )
    yesterday = datetime.now(wiring.app_settings().practice_timezone) - timedelta(days=1)
    visit.update(
        id=type(visit["id"])(987_654_321),
        scheduled_time=yesterday.replace(hour=10, minute=0, second=0, microsecond=0).isoformat(),
        status="complete",
    )
    state = stored.load_state(engine, cipher, "appointment")
    stored.commit_page(engine, cipher, state, rows=[visit], now=datetime.now(UTC))
    for at in (first, second):
        at.run()
        assert not at.exception, at.exception
        assert _scheduled(at) == before + 1
    assert _reads("frontdesk", "schedule_mirror") == loads + 1
