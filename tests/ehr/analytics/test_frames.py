"""Typed frames from mirror rows: fixed columns and dtypes, empty in → empty out, nothing lost."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pytest

from ehr.analytics import frames as f
from ehr.analytics.records import to_row
from ehr.models import Appointment, AppointmentStatus, ClaimStatus, Other, StatusTransition
from ehr.models_billing import LineItem, PatientPayment, Transaction

EXPECTED_DTYPES = {
    "id": "int64",
    "int": "Int64",
    "money": "Int64",
    "units": "float64",
    "date": "datetime64[ns]",
    "datetime": "datetime64[ns, UTC]",
    "category": "category",
    "text": "str",
    "bool": "bool",
}

BUILDERS = [
    (f.line_items_frame, f.LINE_ITEM_COLUMNS),
    (f.transactions_frame, f.TRANSACTION_COLUMNS),
    (f.patient_payments_frame, f.PATIENT_PAYMENT_COLUMNS),
    (f.appointments_frame, f.APPOINTMENT_COLUMNS),
    (f.status_transitions_frame, f.STATUS_TRANSITION_COLUMNS),
]


def _dtypes(frame):
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def _expected(columns):
    return {name: EXPECTED_DTYPES[kind] for name, kind in columns.items()}


@pytest.mark.parametrize(("build", "columns"), BUILDERS)
def test_an_empty_input_gives_an_empty_frame_with_every_column_typed(build, columns):
    frame = build([])
    assert frame.empty
    assert _dtypes(frame) == _expected(columns)


@pytest.mark.parametrize(("build", "columns"), BUILDERS)
def test_rows_missing_fields_still_give_every_column_typed(build, columns):
    # An older mirror row may lack fields; unknown extra keys are ignored.
    frame = build(iter([{"id": 1, "appointment_id": "A1", "not_a_column": "x"}]))
    assert _dtypes(frame) == _expected(columns)
    # the row has no transitions, so the long transitions frame has no rows
    assert len(frame) == (0 if build is f.status_transitions_frame else 1)


def test_line_items_keep_cents_units_dates_and_missing_amounts():
    rows = [
        to_row(
            LineItem(
                id=7,
                appointment_id="A1",
                code="36415",
                quantity=Decimal("2"),
                price=Decimal("10.00"),
                billed=Decimal("20.00"),
                balance_ins=None,
                claim_status=ClaimStatus.ERA_DENIED,
                denied=True,
                service_date=date(2026, 3, 2),
                updated_at=datetime(2026, 3, 3, 12, 0, tzinfo=UTC),
            )
        ),
        to_row(LineItem(id=8, appointment_id=None, billed=Decimal("-5.25"))),
    ]
    frame = f.line_items_frame(rows)
    assert _dtypes(frame) == _expected(f.LINE_ITEM_COLUMNS)
    assert frame["billed"].tolist() == [2000, -525]
    assert frame["balance_ins"].isna().tolist() == [True, True]  # None is missing, not 0
    assert frame["quantity"].tolist()[0] == 2.0  # quantity is units, not cents
    assert frame["service_date"].iloc[0] == pd.Timestamp("2026-03-02")
    assert frame["updated_at"].iloc[0] == pd.Timestamp("2026-03-03T12:00", tz="UTC")
    assert frame["denied"].tolist() == [True, False]
    assert frame["appointment_id"].isna().tolist() == [False, True]
    assert "description" not in frame


def test_unknown_statuses_are_kept_as_text_and_known_ones_are_always_categories():
    rows = [
        to_row(LineItem(id=1, appointment_id="A", claim_status=Other("Payer Pending Review"))),
        to_row(LineItem(id=2, appointment_id="A", claim_status=ClaimStatus.PAID_IN_FULL)),
        to_row(LineItem(id=3, appointment_id="A", claim_status=None)),
    ]
    status = f.line_items_frame(rows)["claim_status"]
    assert status.tolist()[:2] == ["Payer Pending Review", "paid_in_full"]
    assert pd.isna(status.iloc[2])
    categories = list(status.cat.categories)
    assert categories[: len(ClaimStatus)] == [s.value for s in ClaimStatus]
    assert categories[len(ClaimStatus) :] == ["Payer Pending Review"]


def test_transactions_and_patient_payments():
    txn = to_row(
        Transaction(
            id=1,
            line_item_id=7,
            ins_paid=Decimal("70.00"),
            adjustment=None,
            adjustment_group_code="CO",
            payer_name="Aetna",
            posted_date=date(2026, 3, 20),
        )
    )
    frame = f.transactions_frame([txn])
    assert frame[["id", "line_item_id", "ins_paid"]].values.tolist() == [[1, 7, 7000]]
    assert frame["adjustment"].isna().all()
    assert frame["payer_name"].tolist() == ["Aetna"]
    payment = to_row(PatientPayment(id=2, patient_id=None, amount=Decimal("-5.00")))
    paid = f.patient_payments_frame([payment])
    assert paid["amount"].tolist() == [-500]
    assert paid["patient_id"].isna().all()


def test_appointments_and_their_transitions():
    appointment = Appointment(
        id="A1",
        doctor_id=3,
        office_id=None,
        scheduled_time=datetime(2026, 3, 2, 14, 30, tzinfo=UTC),
        status=Other("Waiting Room 2"),
        is_walk_in=True,
        status_transitions=(
            StatusTransition(
                AppointmentStatus.ARRIVED,
                AppointmentStatus.IN_ROOM,
                datetime(2026, 3, 2, 14, 40, tzinfo=UTC),
            ),
            StatusTransition(None, Other("Waiting Room 2"), None),
        ),
    )
    plain = Appointment(id="A2", doctor_id=3, office_id=1, scheduled_time=None)
    rows = [to_row(appointment), to_row(plain)]
    frame = f.appointments_frame(rows)
    assert frame["id"].tolist() == ["A1", "A2"]
    assert frame["status"].tolist() == ["Waiting Room 2", "booked"]
    assert frame["office_id"].isna().tolist() == [True, False]
    assert frame["is_walk_in"].tolist() == [True, False]
    assert "status_transitions" not in frame
    moves = f.status_transitions_frame(rows)
    assert moves["appointment_id"].tolist() == ["A1", "A1"]
    assert moves["to_status"].tolist() == ["in_room", "Waiting Room 2"]
    assert moves["at"].iloc[0] == pd.Timestamp("2026-03-02T14:40", tz="UTC")
    assert pd.isna(moves["at"].iloc[1])
    assert pd.isna(moves["from_status"].iloc[1])


def test_unreadable_values_become_missing_not_errors():
    frame = f.line_items_frame(
        [{"id": 1, "billed": "12x", "service_date": "2026-02-30", "updated_at": "soon"}]
    )
    assert frame["billed"].isna().all()
    assert frame["service_date"].isna().all()
    assert frame["updated_at"].isna().all()


def test_many_rows_build_column_by_column():
    rows = [
        {"id": i, "appointment_id": f"A{i % 100}", "billed": i, "service_date": "2026-01-02"}
        for i in range(20_000)
    ]
    frame = f.line_items_frame(rows)
    assert len(frame) == 20_000
    assert int(frame["billed"].sum()) == sum(range(20_000))
    assert frame["appointment_id"].nunique() == 100


def _as_columns(rows):
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: [row.get(name) for row in rows] for name in names}


@pytest.mark.parametrize(("build", "columns"), BUILDERS[:4])
def test_columns_build_the_same_frame_as_rows(build, columns):
    # storage.mirror.load_columns hands the builders one list per field instead of row dicts;
    # every kind of value (missing, None, unreadable, unknown status) must come out the same.
    edge = {name: None for name in columns}
    odd = {
        "id": 7,
        "billed": "12x",
        "quantity": 1.5,
        "service_date": "2026-02-30",
        "updated_at": "soon",
        "claim_status": "a status from the future",
        "status": "Waiting Room 2",
        "denied": True,
        "is_walk_in": None,
    }
    rows = [
        {name: value for name, value in odd.items() if name in columns} | {"id": 7},
        {**edge, "id": 8},
        {"id": 9, "appointment_id": "A9", "doctor_id": 3, "billed": 120_00},
        *(
            {"id": 10 + i, "appointment_id": f"A{i}", "billed": i, "service_date": "2026-01-02"}
            for i in range(50)
        ),
    ]
    if "id" in columns and columns["id"] == "text":
        rows = [{**row, "id": f"A{row['id']}"} for row in rows]
    pd.testing.assert_frame_equal(build(_as_columns(rows)), build(rows))
    pd.testing.assert_frame_equal(build({}), build([]))
