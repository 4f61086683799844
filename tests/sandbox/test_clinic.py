"""The synthetic clinic: determinism, DrChrono shapes, realism constraints and money identities."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import itertools
import json
import re
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ehr.sandbox.clinic import (
    RESOURCE_NAMES,
    VERBOSE_ONLY_FIELDS,
    Clinic,
    ClinicConfig,
    generate_clinic,
)

TODAY = dt.date(2026, 3, 17)  # a Tuesday: every default doctor works, so today has a schedule
NOW = dt.datetime(2026, 3, 17, 11, 0)
SMALL = ClinicConfig(seed=11, patients=250, months_back=6, months_ahead=1, today=TODAY)
MONEY = re.compile(r"^-?\d+\.\d{2}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
STATUSES = {
    "",
    "Arrived",
    "Checked In",
    "Checked In Online",
    "In Room",
    "In Session",
    "Complete",
    "Confirmed",
    "Not Confirmed",
    "Rescheduled",
    "Cancelled",
    "No Show",
}
# Required-on-create fields per drchrono.md section 3.
REQUIRED = {
    "patients": ("gender", "doctor"),
    "appointments": ("doctor", "exam_room", "office", "patient", "scheduled_time", "duration"),
    "appointment_profiles": ("name", "color", "online_scheduling"),
    "problems": ("doctor", "patient"),
    "medications": ("doctor", "patient"),
    "allergies": ("doctor", "patient"),
    "lab_orders": ("sublab", "doctor", "patient"),
    "lab_tests": ("lab_order",),
    "lab_results": ("document", "lab_test", "test_performed", "status", "value"),
    "patient_vaccine_records": ("patient", "cvx_code", "name"),
    "line_items": ("appointment", "code", "procedure_type", "diagnosis_pointers"),
    "patient_payments": ("patient",),
    "insurances": ("payer_name", "payer_id", "state"),
}
# Resources whose DrChrono schema carries created_at/updated_at (updated_at only: second set).
TIMESTAMPED = (
    "patients",
    "appointments",
    "clinical_notes",
    "patient_vaccine_records",
    "transactions",
    "patient_payments",
    "billing_profiles",
)
UPDATED_ONLY = ("line_items", "eligibility_checks")
MONEY_FIELDS = {
    "line_items": (
        "price",
        "billed",
        "allowed",
        "expected_reimbursement",
        "adjustment",
        "ins1_paid",
        "ins2_paid",
        "ins3_paid",
        "ins_total",
        "pt_paid",
        "paid_total",
        "balance_ins",
        "balance_pt",
        "balance_total",
    ),
    "transactions": ("ins_paid", "adjustment"),
    "patient_payments": ("amount",),
}


@pytest.fixture(scope="module")
def small() -> Clinic:
    return generate_clinic(SMALL)


@pytest.fixture(scope="module")
def default() -> Clinic:
    return generate_clinic(ClinicConfig(today=TODAY))


def _digest(clinic: Clinic) -> str:
    payload = json.dumps(
        {"user": clinic.user, "tables": clinic.tables, "tz": clinic.timezone},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _start(appt: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(appt["scheduled_time"])


def test_same_config_gives_identical_clinic(small: Clinic) -> None:
    assert _digest(generate_clinic(SMALL)) == _digest(small)


def test_different_seed_gives_different_clinic(small: Clinic) -> None:
    other = generate_clinic(ClinicConfig(**{**SMALL.__dict__, "seed": 12}))
    assert _digest(other) != _digest(small)


def test_contract_shape(default: Clinic) -> None:
    assert tuple(default.tables) == RESOURCE_NAMES
    assert all(default.tables[name] for name in RESOURCE_NAMES), "every resource has records"
    assert ZoneInfo(default.timezone)
    assert isinstance(default.practice_group, int)
    user = default.user
    assert user["username"] == "demo"
    assert user["is_doctor"] is True
    assert user["is_staff"] is False
    assert user["doctor"] == min(default.tables["doctors"])
    assert user["practice_group"] == default.practice_group
    assert default.tables["users"][user["id"]] is user
    assert len(default.tables["doctors"]) == 3
    assert len(default.tables["offices"]) == 2
    assert len(default.tables["patients"]) == 1500
    for office in default.tables["offices"].values():
        rooms = office["exam_rooms"]
        assert 3 <= len(rooms) <= 4
        assert [r["index"] for r in rooms] == list(range(1, len(rooms) + 1))
        assert all(isinstance(r["name"], str) for r in rooms)


def test_ids_and_keys(small: Clinic) -> None:
    for name, table in small.tables.items():
        for key, record in table.items():
            if name == "insurances":
                assert key == record["payer_id"]
            elif name == "appointments":
                assert isinstance(key, str)
                assert key == record["id"]
                assert key.isdigit()
            else:
                assert isinstance(key, int)
                assert key == record["id"]


def test_value_formats(small: Clinic) -> None:
    for name, fields in MONEY_FIELDS.items():
        for record in small.tables[name].values():
            for field in fields:
                assert MONEY.match(record[field]), (name, field, record[field])
    for name in TIMESTAMPED:
        for record in small.tables[name].values():
            for field in ("created_at", "updated_at"):
                assert TIMESTAMP.match(record[field]), (name, field)
                assert dt.datetime.fromisoformat(record[field]).tzinfo is None
                assert dt.datetime.fromisoformat(record[field]) <= NOW, (name, field)
    for name in UPDATED_ONLY:
        for record in small.tables[name].values():
            assert TIMESTAMP.match(record["updated_at"])
            assert dt.datetime.fromisoformat(record["updated_at"]) <= NOW
    for patient in small.tables["patients"].values():
        assert DATE.match(patient["date_of_birth"])
        assert re.match(r"^[A-Z]{4}\d{6}$", patient["chart_id"])
    for item in small.tables["line_items"].values():
        assert DATE.match(item["service_date"])
        assert DATE.match(item["posted_date"])
        assert item["service_date"] <= item["posted_date"] <= TODAY.isoformat()


def test_required_and_verbose_fields_present(small: Clinic) -> None:
    for name, fields in REQUIRED.items():
        for record in small.tables[name].values():
            for field in fields:
                assert record.get(field) not in (None, ""), (name, field)
    for name, fields in VERBOSE_ONLY_FIELDS.items():
        for record in small.tables[name].values():
            assert fields <= record.keys(), name


def test_references_resolve(small: Clinic) -> None:
    t = small.tables
    for appt in t["appointments"].values():
        assert appt["patient"] in t["patients"]
        assert appt["doctor"] in t["doctors"]
        office = t["offices"][appt["office"]]
        assert appt["exam_room"] in {r["index"] for r in office["exam_rooms"]}
        assert t["appointment_profiles"][appt["profile"]]["doctor"] == appt["doctor"]
    for name in ("problems", "medications", "allergies", "lab_orders", "patient_vaccine_records"):
        for record in t[name].values():
            assert record["patient"] in t["patients"], name
    for note in t["clinical_notes"].values():
        assert t["appointments"][str(note["appointment"])]["status"] == "Complete"
    for item in t["line_items"].values():
        appt = t["appointments"][str(item["appointment"])]
        assert appt["status"] == "Complete"
        assert (item["patient"], item["doctor"]) == (appt["patient"], appt["doctor"])
        assert item["service_date"] == appt["scheduled_time"][:10]
    for txn in t["transactions"].values():
        assert t["line_items"][txn["line_item"]]["appointment"] == txn["appointment"]
    for payment in t["patient_payments"].values():
        assert t["line_items"][payment["line_item"]]["patient"] == payment["patient"]
    for test in t["lab_tests"].values():
        assert test["lab_order"] in t["lab_orders"]
    for result in t["lab_results"].values():
        assert t["lab_tests"][result["lab_test"]]["lab_order"] == result["lab_order"]
    for check in t["eligibility_checks"].values():
        assert str(check["appointment"]) in t["appointments"]


def test_schedule_has_no_overlaps_and_respects_office_hours(default: Clinic) -> None:
    by_room: dict[tuple[int, int, str], list[tuple[dt.datetime, dt.datetime]]] = (
        collections.defaultdict(list)
    )
    by_doctor: dict[int, list[tuple[dt.datetime, dt.datetime]]] = collections.defaultdict(list)
    for appt in default.tables["appointments"].values():
        start = _start(appt)
        end = start + dt.timedelta(minutes=appt["duration"])
        assert start.weekday() != 6
        assert start.time() >= dt.time(8, 0)
        assert end.time() <= dt.time(17, 0)
        assert not (start.time() < dt.time(13, 0) and end.time() > dt.time(12, 0)), "lunch"
        by_room[(appt["office"], appt["exam_room"], start.date().isoformat())].append((start, end))
        by_doctor[appt["doctor"]].append((start, end))
    for slots in [*by_room.values(), *by_doctor.values()]:
        slots.sort()
        for (_, end), (next_start, _) in itertools.pairwise(slots):
            assert end <= next_start


def test_status_mix(default: Clinic) -> None:
    appts = list(default.tables["appointments"].values())
    assert {a["status"] for a in appts} <= STATUSES
    past = [a for a in appts if _start(a).date() < TODAY]
    counts = collections.Counter(a["status"] for a in past)
    assert 0.04 <= counts["No Show"] / len(past) <= 0.08
    assert 0.05 <= counts["Cancelled"] / len(past) <= 0.11
    assert counts["Rescheduled"] > 0
    assert counts["Complete"] / len(past) > 0.75
    assert set(counts) == {"Complete", "No Show", "Cancelled", "Rescheduled"}
    today = {a["status"] for a in appts if _start(a).date() == TODAY}
    assert "Complete" in today
    assert today & {"Arrived", "Checked In", "In Room"}
    assert today & {"", "Confirmed"}
    future = {a["status"] for a in appts if _start(a).date() > TODAY}
    assert future == {"", "Confirmed"}


def test_visit_timeline(default: Clinic) -> None:
    for appt in default.tables["appointments"].values():
        assert appt["created_at"] < appt["scheduled_time"] or appt["is_walk_in"]
        steps = appt["status_transitions"]
        moments = [s["datetime"] for s in steps]
        assert moments == sorted(moments)
        assert all(s["appointment"] == appt["id"] for s in steps)
        if steps:
            assert steps[-1]["to_status"] == appt["status"]
        if appt["status"] == "Complete":
            path = [s["to_status"] for s in steps]
            assert path[-4:] == ["Arrived", "Checked In", "In Room", "Complete"]
            vitals = appt["vitals"]
            assert vitals["height_units"] == "in"
            assert vitals["weight_units"] == "lb"
            assert 60 < vitals["blood_pressure_1"] < 220
            assert 94 < vitals["temperature"] < 104
            bmi = vitals["weight"] * 703 / vitals["height"] ** 2
            assert abs(float(vitals["bmi"]) - bmi) < 0.1
            assert appt["clinical_note"] is not None
            assert appt["icd10_codes"]
        else:
            assert appt["vitals"]["weight"] is None


def _aging_bucket(days: int) -> str:
    for limit, name in ((30, "0-30"), (60, "31-60"), (90, "61-90"), (120, "91-120")):
        if days <= limit:
            return name
    return "120+"


def test_ar_aging_has_balances_in_every_bucket(default: Clinic) -> None:
    buckets: collections.Counter[str] = collections.Counter()
    for item in default.tables["line_items"].values():
        balance = Decimal(item["balance_total"])
        if balance > 0:
            age = (TODAY - dt.date.fromisoformat(item["service_date"])).days
            buckets[_aging_bucket(age)] += balance
    assert set(buckets) == {"0-30", "31-60", "61-90", "91-120", "120+"}
    assert buckets["120+"] < sum(buckets.values()) / 2, "old A/R should not dominate"


def test_money_identities(default: Clinic) -> None:
    t = default.tables
    txn_sums: dict[int, dict[str, Decimal]] = collections.defaultdict(
        lambda: collections.defaultdict(Decimal)
    )
    for txn in t["transactions"].values():
        sums = txn_sums[txn["line_item"]]
        sums[f"ins{txn['ins_name']}_paid"] += Decimal(txn["ins_paid"])
        sums["adjustment"] += Decimal(txn["adjustment"])
    paid_by_patient: dict[int, Decimal] = collections.defaultdict(Decimal)
    for payment in t["patient_payments"].values():
        assert Decimal(payment["amount"]) > 0
        paid_by_patient[payment["line_item"]] += Decimal(payment["amount"])
    for item in t["line_items"].values():
        m = {k: Decimal(item[k]) for k in MONEY_FIELDS["line_items"]}
        assert m["billed"] == m["price"] * item["quantity"]
        assert m["billed"] == m["allowed"] + m["adjustment"]
        assert m["allowed"] == (
            m["ins1_paid"]
            + m["ins2_paid"]
            + m["ins3_paid"]
            + m["pt_paid"]
            + m["balance_ins"]
            + m["balance_pt"]
        )
        assert m["ins_total"] == m["ins1_paid"] + m["ins2_paid"] + m["ins3_paid"]
        assert m["paid_total"] == m["ins_total"] + m["pt_paid"]
        assert m["balance_total"] == m["balance_ins"] + m["balance_pt"]
        assert min(m.values()) >= 0
        sums = txn_sums.get(item["id"], {})
        assert sums.get("ins1_paid", Decimal(0)) == m["ins1_paid"]
        assert sums.get("ins2_paid", Decimal(0)) == m["ins2_paid"]
        assert sums.get("adjustment", Decimal(0)) == m["adjustment"]
        assert paid_by_patient.get(item["id"], Decimal(0)) == m["pt_paid"]


def test_denials_concentrate_on_some_payers(default: Clinic) -> None:
    t = default.tables
    payer_of = {a["id"]: a["primary_insurer_name"] for a in t["appointments"].values()}
    claims: collections.Counter[str] = collections.Counter()
    denied: collections.Counter[str] = collections.Counter()
    for item in t["line_items"].values():
        payer = payer_of[str(item["appointment"])]
        if payer:
            claims[payer] += 1
            denied[payer] += item["billing_status"] in ("ERA Denied", "Rejected Payer")
    rates = {p: denied[p] / n for p, n in claims.items() if n > 200}
    assert max(rates.values()) > 2 * min(rates.values())
    assert {"ERA Denied", "Rejected Payer"} <= {
        a["ins1_status"] for a in t["appointments"].values()
    }


def test_clinical_content(small: Clinic) -> None:
    t = small.tables
    assert {p["status"] for p in t["problems"].values()} >= {"active", "resolved"}
    assert all(p["icd_version"] == "10" and p["icd_code"] for p in t["problems"].values())
    assert all(m["rxnorm"].isdigit() for m in t["medications"].values())
    assert {r["abnormal_status"] for r in t["lab_results"].values()} >= {"N", "H"}
    for result in t["lab_results"].values():
        low, high = (float(x) for x in result["normal_range"].split())
        value = float(result["value"])
        assert result["is_abnormal"] == (not low <= value <= high)
    for note in t["clinical_notes"].values():
        names = [s["name"] for s in note["clinical_note_sections"]]
        assert names == ["Subjective", "Objective", "Assessment", "Plan"]


def test_line_items_target_scales_volume_and_practice() -> None:
    config = ClinicConfig(
        seed=3,
        patients=2000,
        months_back=3,
        months_ahead=0,
        today=TODAY,
        line_items_target=12000,
    )
    clinic = generate_clinic(config)
    assert 0.8 * 12000 <= len(clinic.tables["line_items"]) <= 1.2 * 12000
    assert len(clinic.tables["doctors"]) > config.doctors
    rooms: dict[tuple[int, int, str], list[tuple[dt.datetime, dt.datetime]]] = (
        collections.defaultdict(list)
    )
    for appt in clinic.tables["appointments"].values():
        start = _start(appt)
        end = start + dt.timedelta(minutes=appt["duration"])
        rooms[(appt["office"], appt["exam_room"], start.date().isoformat())].append((start, end))
    for slots in rooms.values():
        slots.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(slots))
