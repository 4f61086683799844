"""Mirror rows: money in integer cents, ISO dates, enums as values, no free text."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ehr.analytics.records import cents, to_row
from ehr.models import Appointment, AppointmentStatus, ClaimStatus, Other, StatusTransition
from ehr.models_billing import LineItem


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (Decimal("12.30"), 1230),
        (Decimal("-5"), -500),
        (Decimal("0.005"), 0),  # half-even: 0.005 -> 0.00
        (Decimal("0.015"), 2),  # half-even: 0.015 -> 0.02
        (Decimal("1234567.89"), 123456789),
        (None, None),
    ],
)
def test_money_becomes_integer_cents(amount, expected):
    assert cents(amount) == expected


def test_a_line_item_row_is_json_ready_and_keeps_no_free_text():
    item = LineItem(
        id=7,
        appointment_id="A1",
        code="99213",
        description="Office visit for chest pain",
        price=Decimal("150.00"),
        quantity=Decimal("2"),
        balance_ins=Decimal("20.10"),
        claim_status=Other("Payer Pending Review"),
        modifiers=("25",),
        service_date=date(2026, 3, 2),
    )
    row = to_row(item)
    json.dumps(row)  # plain JSON values only
    assert row["price"] == 15000
    assert row["quantity"] == 2.0  # units, not cents
    assert row["balance_ins"] == 2010
    assert row["claim_status"] == "Payer Pending Review"
    assert row["modifiers"] == ["25"]
    assert row["service_date"] == "2026-03-02"
    assert "description" not in row


def test_an_appointment_row_has_utc_times_and_transitions_but_no_reason():
    eastern = timezone(timedelta(hours=-5))
    appointment = Appointment(
        id="A1",
        doctor_id=1,
        office_id=2,
        scheduled_time=datetime(2026, 3, 2, 9, 30, tzinfo=eastern),
        status=AppointmentStatus.COMPLETE,
        reason="Chest pain",
        claim_status_primary=ClaimStatus.PAID_IN_FULL
        if hasattr(ClaimStatus, "PAID_IN_FULL")
        else None,
        status_transitions=(
            StatusTransition(
                AppointmentStatus.ARRIVED,
                AppointmentStatus.IN_ROOM,
                datetime(2026, 3, 2, 14, 40, tzinfo=UTC),
            ),
        ),
    )
    row = to_row(appointment)
    assert row["scheduled_time"] == "2026-03-02T14:30:00+00:00"
    assert row["status"] == "complete"
    assert row["claim_status_primary"] == "paid_in_full"
    assert "reason" not in row
    assert row["status_transitions"] == [
        {"from_status": "arrived", "to_status": "in_room", "at": "2026-03-02T14:40:00+00:00"}
    ]
