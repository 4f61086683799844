"""Recorded DrChrono contract: the backend parses the recorded answers, with no network.

Cassettes are made by ``record_cassettes`` against a fresh sandbox; here each scenario replays
with ``record_mode="none"`` (an unrecorded request fails the test) and every recorded
interaction must be used. The scrubbing is checked on the committed files themselves.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ehr.errors import DuplicatePatientError
from ehr.models import Appointment, EHRUser, Page, Patient
from ehr.models_billing import LineItem
from ehr.sandbox.clinic import generate_clinic
from tests.ehr.drchrono.record_cassettes import (
    CASSETTE_DIR,
    FIXED_BASE,
    RECORDING_CLIENT_SECRET,
    RECORDING_CLINIC,
    SCENARIOS,
    SEARCH_PAGE_SIZE,
    recorder,
    replay_backend,
)

CASSETTES = sorted(CASSETTE_DIR.glob("*.yaml"))
_URL = re.compile(r"https?://[^\s'\"/]+")


def replay(name: str) -> Any:
    with recorder("none").use_cassette(str(CASSETTE_DIR / f"{name}.yaml")) as cassette:
        result = SCENARIOS[name](replay_backend())
        assert cassette.all_played, f"{name}: recorded interactions left unused"
    return result


def test_every_scenario_has_a_cassette():
    assert {p.stem for p in CASSETTES} == set(SCENARIOS)


def test_current_user():
    user = replay("current_user")
    assert isinstance(user, EHRUser)
    assert user.username == "demo"
    assert user.doctor_id is not None
    assert user.is_doctor


def test_list_doctors():
    page = replay("list_doctors")
    assert isinstance(page, Page)
    assert len(page.items) == RECORDING_CLINIC.doctors
    assert all(d.id > 0 and d.practice_group_id for d in page.items)
    assert not page.truncated


def test_search_patients_page():
    page = replay("search_patients")
    assert len(page.items) == SEARCH_PAGE_SIZE
    assert all(isinstance(p, Patient) and p.id > 0 for p in page.items)
    assert page.next_cursor is not None  # the recorded clinic has more patients


def test_list_appointments():
    page = replay("list_appointments")
    assert page.items
    assert all(isinstance(a, Appointment) and isinstance(a.id, str) for a in page.items)
    days = {a.scheduled_time.date() for a in page.items if a.scheduled_time}
    assert days
    assert all(dt.date(2025, 6, 2) <= d <= dt.date(2025, 6, 6) for d in days)
    assert all(a.scheduled_time and a.scheduled_time.utcoffset() is not None for a in page.items)


def test_line_items_page():
    page = replay("line_items_page")
    assert page.items
    assert all(isinstance(i, LineItem) for i in page.items)
    assert all(isinstance(i.billed, Decimal) for i in page.items)
    assert page.next_cursor is None


def test_create_patient_then_duplicate():
    outcome = replay("create_patient_duplicate")
    assert isinstance(outcome["created"], Patient)
    assert outcome["created"].chart_id
    assert isinstance(outcome["duplicate"], DuplicatePatientError)


def test_an_unrecorded_request_is_never_sent():
    from vcr.errors import CannotOverwriteExistingCassetteException

    with (
        pytest.raises(CannotOverwriteExistingCassetteException),
        recorder("none").use_cassette(str(CASSETTE_DIR / "list_doctors.yaml")),
    ):
        replay_backend().list_offices()


@pytest.mark.parametrize("path", CASSETTES, ids=lambda p: p.stem)
def test_cassettes_hold_no_secrets_or_patient_details(path: Path):
    text = path.read_text()
    for forbidden in ("Bearer", "access_token", "refresh_token", RECORDING_CLIENT_SECRET):
        assert forbidden not in text
    assert "authorization" not in text.lower()
    assert set(_URL.findall(text)) <= {FIXED_BASE}  # no random sandbox ports
    clinic = generate_clinic(RECORDING_CLINIC)
    for patient in clinic.tables["patients"].values():
        for key in ("first_name", "last_name", "date_of_birth", "email", "cell_phone"):
            if patient.get(key):
                assert f'"{patient[key]}"' not in text, key
