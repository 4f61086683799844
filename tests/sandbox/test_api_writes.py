"""Sandbox writes over real HTTP: 201/204 shapes, 409 duplicates and overlaps, status history,
``since`` after a write, and bad input that must answer 400 (never 500) without writing."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from tests.sandbox.conftest import TODAY, Api, FakeClock

_names = itertools.count(1)


def _new_patient(api: Api, **extra: Any) -> dict[str, Any]:
    n = next(_names)
    body = {
        "gender": "Female",
        "doctor": api.server.store.user["doctor"],
        "first_name": f"Testa{n}",
        "last_name": f"Writer{n}",
        "date_of_birth": "1980-02-03",
        **extra,
    }
    response = api.post("/api/patients", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _slot(api: Api, day: dt.date, hour: int) -> dict[str, Any]:
    """A free slot on a future day: the first doctor's room in the first office."""
    office = api.get("/api/offices").json()["results"][0]
    doctor = office["doctor"]
    return {
        "doctor": doctor,
        "office": office["id"],
        "exam_room": office["exam_rooms"][-1]["index"],
        "scheduled_time": f"{day.isoformat()}T{hour:02d}:00",
        "duration": 30,
    }


FREE_DAY = TODAY + dt.timedelta(days=400)  # beyond the generated schedule


def test_create_patient_returns_the_object_and_get_matches(api: Api) -> None:
    created = _new_patient(api, email="t@example.com", copay=20)
    assert isinstance(created["id"], int)
    assert created["copay"] == "20.00"
    assert created["chart_id"]
    assert api.get(f"/api/patients/{created['id']}").json() == created


def test_put_patch_delete_are_204_with_empty_body(api: Api) -> None:
    patient = _new_patient(api)
    path = f"/api/patients/{patient['id']}"
    patched = api.patch(path, json={"city": "Salem", "id": 1, "created_at": "2000-01-01T00:00:00"})
    assert (patched.status_code, patched.content) == (204, b"")
    after = api.get(path).json()
    assert after["city"] == "Salem"
    assert after["id"] == patient["id"]
    assert after["created_at"] == patient["created_at"]
    assert after["updated_at"] >= patient["updated_at"]
    missing = api.put(path, json={"city": "Lynn"})
    assert missing.status_code == 400
    assert set(missing.json()) == {"gender", "doctor"}
    put = api.put(path, json={"gender": "Male", "doctor": patient["doctor"], "city": "Lynn"})
    assert put.status_code == 204
    assert api.get(path).json()["city"] == "Lynn"
    deleted = api.delete(path)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert api.get(path).status_code == 404


def test_form_encoded_bodies_are_accepted(api: Api) -> None:
    response = api.post(
        "/api/patients",
        data={
            "gender": "Male",
            "doctor": str(api.server.store.user["doctor"]),
            "first_name": "Formy",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["first_name"] == "Formy"


def test_duplicate_patient_is_409_unless_allowed(api: Api) -> None:
    patient = _new_patient(api)
    twin = {
        "gender": "Female",
        "doctor": patient["doctor"],
        "first_name": patient["first_name"].upper(),
        "last_name": patient["last_name"].lower(),
        "date_of_birth": patient["date_of_birth"],
    }
    before = api.server.store.count("patients")
    refused = api.post("/api/patients", json=twin)
    assert refused.status_code == 409
    assert refused.json() == {"detail": "Potential duplicate patient(s) found."}
    assert api.server.store.count("patients") == before
    allowed = api.post("/api/patients", params={"allow_duplicates": "true"}, json=twin)
    assert allowed.status_code == 201


def test_overlapping_appointment_is_409_unless_allowed(api: Api) -> None:
    patient = _new_patient(api)
    slot = {**_slot(api, FREE_DAY, 9), "patient": patient["id"]}
    first = api.post("/api/appointments", json=slot)
    assert first.status_code == 201, first.text
    assert isinstance(first.json()["id"], str)
    later = {**slot, "scheduled_time": f"{FREE_DAY.isoformat()}T09:15"}
    refused = api.post("/api/appointments", json=later)
    assert refused.status_code == 409
    assert set(refused.json()) == {"detail"}
    assert (
        api.post("/api/appointments", json={**later, "allow_overlapping": True}).status_code == 201
    )
    assert (
        api.post("/api/appointments", params={"allow_overlapping": "true"}, json=later).status_code
        == 201
    )
    adjacent = {**slot, "scheduled_time": f"{FREE_DAY.isoformat()}T09:45"}  # after 09:15+30
    assert api.post("/api/appointments", json=adjacent).status_code == 201


def test_reschedule_onto_a_busy_slot_is_409(api: Api) -> None:
    patient = _new_patient(api)
    day = FREE_DAY + dt.timedelta(days=1)
    a = api.post("/api/appointments", json={**_slot(api, day, 10), "patient": patient["id"]}).json()
    b = api.post("/api/appointments", json={**_slot(api, day, 11), "patient": patient["id"]}).json()
    path = f"/api/appointments/{b['id']}"
    clash = api.patch(path, json={"scheduled_time": a["scheduled_time"]})
    assert clash.status_code == 409
    assert api.get(path).json()["scheduled_time"] == b["scheduled_time"]
    moved = api.patch(path, json={"scheduled_time": a["scheduled_time"], "allow_overlapping": True})
    assert moved.status_code == 204
    full = {**_slot(api, day, 12), "patient": patient["id"]}
    assert api.put(f"/api/appointments/{a['id']}", json=full).status_code == 204


def test_status_patch_records_transitions(api: Api) -> None:
    patient = _new_patient(api)
    day = FREE_DAY + dt.timedelta(days=2)
    created = api.post(
        "/api/appointments",
        json={**_slot(api, day, 9), "patient": patient["id"], "status": "Confirmed"},
    ).json()
    path = f"/api/appointments/{created['id']}"
    for status in ("Arrived", "In Session", "Complete"):
        assert api.patch(path, json={"status": status}).status_code == 204
    record = api.get(path).json()
    assert record["status"] == "Complete"
    steps = [(t["from_status"], t["to_status"]) for t in record["status_transitions"]]
    assert steps == [
        ("", "Confirmed"),
        ("Confirmed", "Arrived"),
        ("Arrived", "In Session"),
        ("In Session", "Complete"),
    ]
    assert api.patch(path, json={"status": "Finished"}).status_code == 400


def test_deleted_appointments_only_with_show_archived(api: Api) -> None:
    patient = _new_patient(api)
    day = FREE_DAY + dt.timedelta(days=3)
    created = api.post(
        "/api/appointments", json={**_slot(api, day, 9), "patient": patient["id"]}
    ).json()
    assert api.delete(f"/api/appointments/{created['id']}").status_code == 204
    params = {"date": day.isoformat()}
    assert created["id"] not in [a["id"] for a in api.walk("/api/appointments", params=params)]
    archived = api.walk("/api/appointments", params={**params, "show_archived": "true"})
    assert [a["deleted_flag"] for a in archived if a["id"] == created["id"]] == [True]
    # The freed slot can be booked again.
    again = api.post("/api/appointments", json={**_slot(api, day, 9), "patient": patient["id"]})
    assert again.status_code == 201


def test_since_after_a_write_returns_exactly_the_changed_records(start_sandbox, clinic) -> None:
    clock = FakeClock()
    api = start_sandbox(clock=clock)  # its own server and clock: no other writes interleave
    existing = next(iter(clinic.tables["patients"].values()))
    assert api.walk("/api/patients", params={"since": "2025-06-12"}) == []
    assert (
        api.patch(f"/api/patients/{existing['id']}", json={"nick_name": "Changed"}).status_code
        == 204
    )
    stamp = api.get(f"/api/patients/{existing['id']}").json()["updated_at"]
    clock.advance(5)
    created = _new_patient(api)
    changed = api.walk("/api/patients", params={"since": stamp})
    assert [p["id"] for p in changed] == [existing["id"], created["id"]]
    later = api.walk("/api/patients", params={"since": created["updated_at"]})
    assert [p["id"] for p in later] == [created["id"]]
    assert api.walk("/api/patients", params={"since": stamp[:10]}) == changed
    assert api.get("/api/patients", params={"since": "last week"}).status_code == 400


def test_line_item_and_payment_derive_their_read_only_fields(api: Api, clinic) -> None:
    appointment = next(
        a for a in clinic.tables["appointments"].values() if a["status"] == "Complete"
    )
    item = api.post(
        "/api/line_items",
        json={
            "appointment": int(appointment["id"]),
            "code": "99213",
            "procedure_type": "C",
            "diagnosis_pointers": ["A"],
            "price": 100,
            "quantity": 2,
            "billed": "1.00",
        },
    )
    assert item.status_code == 201, item.text
    line = item.json()
    assert line["patient"] == appointment["patient"]
    assert line["doctor"] == appointment["doctor"]
    assert line["service_date"] == appointment["scheduled_time"][:10]
    assert (line["price"], line["billed"], line["balance_total"]) == ("100.00", "200.00", "200.00")
    payment = api.post(
        "/api/patient_payments",
        json={"patient": line["patient"], "line_item": line["id"], "amount": "25"},
    )
    assert payment.status_code == 201, payment.text
    assert payment.json()["appointment"] == line["appointment"]
    assert payment.json()["amount"] == "25.00"
    zero = api.post("/api/patient_payments", json={"patient": line["patient"], "amount": 0})
    assert zero.status_code == 400
    assert "amount" in zero.json()


def test_other_writable_resources_create(api: Api, clinic) -> None:
    patient = _new_patient(api)
    doctor = patient["doctor"]
    problem = api.post(
        "/api/problems",
        json={"doctor": doctor, "patient": patient["id"], "name": "Test", "icd_code": "R51.9"},
    )
    assert problem.status_code == 201
    assert problem.json()["status"] == "active"
    order = api.post(
        "/api/lab_orders", json={"doctor": doctor, "patient": patient["id"], "sublab": 1}
    )
    assert order.status_code == 201
    test = api.post("/api/lab_tests", json={"lab_order": order.json()["id"], "name": "CBC"})
    assert test.status_code == 201
    result = api.post(
        "/api/lab_results",
        json={
            "document": 1,
            "lab_test": test.json()["id"],
            "test_performed": "WBC",
            "status": "F",
            "value": "5.1",
        },
    )
    assert result.status_code == 201
    assert result.json()["lab_order"] == order.json()["id"]
    profile = api.post(
        "/api/appointment_profiles",
        json={"name": "Quick", "color": "#FFFFFF", "online_scheduling": False},
    )
    assert profile.status_code == 201
    assert api.delete(f"/api/appointment_profiles/{profile.json()['id']}").status_code == 204
    assert api.get(f"/api/appointment_profiles/{profile.json()['id']}").json()["archived"] is True
    office = next(iter(clinic.tables["offices"].values()))
    assert (
        api.patch(f"/api/offices/{office['id']}", json={"online_scheduling": True}).status_code
        == 204
    )


BAD_BODIES = [
    ({"gender": "Female", "doctor": "abc"}, "doctor"),
    ({"gender": "Female", "doctor": 999}, "doctor"),
    ({"gender": "Robot", "doctor": 120001}, "gender"),
    ({"gender": "Female", "doctor": 120001, "date_of_birth": "02/03/1980"}, "date_of_birth"),
    ({"gender": "Female", "doctor": 120001, "date_of_birth": "1980-02-30"}, "date_of_birth"),
    ({"gender": "Female", "doctor": 120001, "first_name": {"x": 1}}, "first_name"),
    ({"gender": "Female", "doctor": 120001, "offices": "nope"}, "offices"),
    (
        {"gender": "Female", "doctor": 120001, "disable_sms_messages": "maybe"},
        "disable_sms_messages",
    ),
    ({"gender": "Female", "doctor": 120001, "copay": "lots"}, "copay"),
    ({"gender": "Female", "doctor": 120001, "copay": "1e999999"}, "copay"),
    ({"gender": None, "doctor": 120001}, "gender"),
    ({"gender": "Female", "doctor": True}, "doctor"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_fields_are_400_and_write_nothing(api: Api, body: dict[str, Any], field: str) -> None:
    before = api.server.store.count("patients")
    response = api.post("/api/patients", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()
    assert isinstance(response.json()[field], list)
    assert api.server.store.count("patients") == before


def test_bad_appointment_values_are_400(api: Api) -> None:
    patient = _new_patient(api)
    slot = {**_slot(api, FREE_DAY + dt.timedelta(days=5), 9), "patient": patient["id"]}
    for change, field in (
        ({"scheduled_time": "tomorrow"}, "scheduled_time"),
        ({"exam_room": 99}, "exam_room"),
        ({"duration": -5}, "duration"),
        ({"duration": "long"}, "duration"),
    ):
        response = api.post("/api/appointments", json={**slot, **change})
        assert response.status_code == 400, (change, response.text)
        assert field in response.json(), (change, response.text)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"gender": "Female", "doctor": 1', "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"just a string"', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"gender=Female", "text/plain"),
    ],
)
def test_malformed_bodies_are_client_errors(api: Api, data: bytes, content_type: str) -> None:
    before = api.server.store.count("patients")
    response = api.post("/api/patients", data=data, headers={"Content-Type": content_type})
    assert response.status_code in (400, 415), response.text
    assert response.json()
    if data.startswith(b"{"):
        assert response.json()["detail"].startswith("JSON parse error - ")
    assert api.server.store.count("patients") == before


def test_patch_with_bad_value_changes_nothing(api: Api) -> None:
    patient = _new_patient(api)
    path = f"/api/patients/{patient['id']}"
    response = api.patch(path, json={"city": "Changed", "date_of_birth": "never"})
    assert response.status_code == 400
    assert api.get(path).json() == patient
