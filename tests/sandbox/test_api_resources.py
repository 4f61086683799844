"""Sandbox REST resources over real HTTP: method matrix, scopes, error shapes, filters, verbose.

The method matrix and required fields come from drchrono.md §3; every method a resource does
not support must answer 405 ``{"detail": "Method \"X\" not allowed."}``.
"""

from __future__ import annotations

import pytest

from ehr.sandbox.api_resources import RESOURCES
from ehr.sandbox.clinic import VERBOSE_ONLY_FIELDS
from tests.sandbox.conftest import TODAY, Api

# drchrono.md §3: the supported methods of every resource (L list, R retrieve, C create,
# U put, P patch, D delete). Written out here, not read from the code, so a drift fails.
MATRIX = {
    "users": "LR",
    "doctors": "LR",
    "offices": "LRUP",
    "appointment_profiles": "LCRUPD",
    "patients": "LCRUPD",
    "appointments": "LCRUPD",
    "problems": "LCRUP",
    "medications": "LCRUP",
    "allergies": "LCRUP",
    "clinical_notes": "LR",
    "lab_orders": "LCRUPD",
    "lab_tests": "LCRUPD",
    "lab_results": "LCRUPD",
    "patient_vaccine_records": "LCRUP",
    "line_items": "LCRUPD",
    "transactions": "LR",
    "patient_payments": "LCR",
    "insurances": "LR",
    "eligibility_checks": "LR",
    "billing_profiles": "LR",
}
# drchrono.md §3: fields required on create.
REQUIRED = {
    "appointment_profiles": {"name", "color", "online_scheduling"},
    "patients": {"gender", "doctor"},
    "appointments": {"doctor", "exam_room", "office", "patient", "scheduled_time"},
    "problems": {"doctor", "patient"},
    "medications": {"doctor", "patient"},
    "allergies": {"doctor", "patient"},
    "lab_orders": {"sublab", "doctor", "patient"},
    "lab_tests": {"lab_order"},
    "lab_results": {"document", "lab_test", "test_performed", "status", "value"},
    "patient_vaccine_records": {"patient", "cvx_code", "name"},
    "line_items": {"appointment", "code", "procedure_type", "diagnosis_pointers"},
    "patient_payments": {"patient"},
}
LIST_QUERY = {
    "appointments": {"date_range": "2025-05-01/2025-06-30"},
    "insurances": {"payer_type": "emdeon"},
}


def _first_id(api: Api, resource: str) -> str:
    response = api.get(f"/api/{resource}", params={**LIST_QUERY.get(resource, {}), "page_size": 1})
    assert response.status_code == 200, response.text
    record = response.json()["results"][0]
    return str(record.get("id", record.get("payer_id")))


def test_matrix_covers_every_resource() -> None:
    assert set(MATRIX) == set(RESOURCES)


@pytest.mark.parametrize("resource", sorted(MATRIX))
def test_method_matrix(api: Api, resource: str) -> None:
    allowed = MATRIX[resource]
    query = LIST_QUERY.get(resource, {})
    listing = api.get(f"/api/{resource}", params=query)
    assert listing.status_code == 200, listing.text
    assert set(listing.json()) == {"previous", "results", "next"}
    item = _first_id(api, resource)
    detail = api.get(f"/api/{resource}/{item}", params=query)
    assert detail.status_code == 200
    for letter, method, path in (
        ("C", "POST", f"/api/{resource}"),
        ("U", "PUT", f"/api/{resource}/{item}"),
        ("P", "PATCH", f"/api/{resource}/{item}"),
        ("D", "DELETE", f"/api/{resource}/999999999"),
    ):
        response = api.call(method, path, json={})
        if letter in allowed:
            assert response.status_code != 405, (method, path)
        else:
            assert response.status_code == 405, (method, path, response.text)
            assert response.json() == {"detail": f'Method "{method}" not allowed.'}
    for method in ("PUT", "PATCH", "DELETE"):
        assert api.call(method, f"/api/{resource}", json={}).status_code == 405
    assert api.call("POST", f"/api/{resource}/{item}", json={}).status_code == 405


@pytest.mark.parametrize("resource", sorted(REQUIRED))
def test_required_fields_on_create(api: Api, resource: str) -> None:
    before = api.server.store.count(resource)
    response = api.post(f"/api/{resource}", json={"unknown_field": 1})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == REQUIRED[resource]
    assert all(messages == ["This field is required."] for messages in body.values())
    assert api.server.store.count(resource) == before


def test_users_current_redirects_to_the_user(api: Api, clinic) -> None:
    response = api.get("/api/users/current")
    assert response.status_code == 302
    location = response.headers["Location"]
    user_id = clinic.user["id"]
    assert location.endswith(f"/api/users/{user_id}")
    assert location.startswith(api.server.base_url) or location.startswith("/")
    followed = api.get(location)
    assert followed.status_code == 200
    assert followed.json()["id"] == user_id
    assert followed.json()["username"] == clinic.user["username"]


def test_unauthenticated_and_bad_tokens_get_401(api: Api) -> None:
    assert api.get("/api/patients", token="").status_code == 401
    response = api.get("/api/patients", token="not-a-real-token")
    assert response.status_code == 401
    assert set(response.json()) == {"detail"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_scope_is_403_and_write_needs_write_scope(api: Api) -> None:
    calendar_only = api.token_for("calendar:read")
    response = api.get("/api/patients", token=calendar_only)
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    reader = api.token_for("patients:read")
    assert api.get("/api/patients", token=reader).status_code == 200
    write = api.post("/api/patients", token=reader, json={"gender": "Male", "doctor": 1})
    assert write.status_code == 403
    writer = api.token_for("patients:write")
    assert api.get("/api/patients", token=writer).status_code == 200
    # Eligibility checks accept either the calendar or the patients pair (OAS security).
    assert api.get("/api/eligibility_checks", token=calendar_only).status_code == 200


def test_not_found_shapes(api: Api) -> None:
    for path in ("/api/patients/1", "/api/patients/abc", "/api/appointments/nope", "/api/nothing"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not found."}


def test_offices_expose_exam_rooms_as_objects(api: Api) -> None:
    office = api.get("/api/offices").json()["results"][0]
    assert isinstance(office["exam_rooms"], list)
    assert office["exam_rooms"]
    assert set(office["exam_rooms"][0]) == {"index", "name", "online_scheduling"}


def test_appointments_need_a_date_filter(api: Api) -> None:
    response = api.get("/api/appointments")
    assert response.status_code == 400
    assert "detail" in response.json()
    for params in ({"date": TODAY.isoformat()}, {"since": "2025-01-01"}):
        assert api.get("/api/appointments", params=params).status_code == 200


def test_date_range_longer_than_190_days_is_400(api: Api) -> None:
    ok = api.get("/api/appointments", params={"date_range": "2025-01-01/2025-07-10"})
    assert ok.status_code == 200  # 190 days
    too_long = api.get("/api/appointments", params={"date_range": "2025-01-01/2025-07-11"})
    assert too_long.status_code == 400
    assert "date_range" in too_long.json()
    garbage = api.get("/api/appointments", params={"date_range": "yesterday"})
    assert garbage.status_code == 400


def test_appointment_filters(api: Api) -> None:
    day = api.walk("/api/appointments", params={"date": TODAY.isoformat()})
    assert day
    assert all(a["scheduled_time"].startswith(TODAY.isoformat()) for a in day)
    doctor = day[0]["doctor"]
    mine = api.walk(
        "/api/appointments", params={"date_range": "2025-05-01/2025-06-30", "doctor": doctor}
    )
    assert mine
    assert all(a["doctor"] == doctor for a in mine)
    times = [(a["scheduled_time"], int(a["id"])) for a in mine]
    assert times == sorted(times), "appointments are ordered by scheduled time"
    assert all(isinstance(a["id"], str) for a in mine)
    bad = api.get("/api/appointments", params={"date": TODAY.isoformat(), "doctor": "x"})
    assert bad.status_code == 400
    assert "doctor" in bad.json()


def test_patient_filters(api: Api, clinic) -> None:
    target = next(iter(clinic.tables["patients"].values()))
    found = api.walk(
        "/api/patients",
        params={"last_name": target["last_name"].upper(), "first_name": target["first_name"]},
    )
    assert target["id"] in [p["id"] for p in found]
    assert all(p["last_name"].lower() == target["last_name"].lower() for p in found)
    by_dob = api.walk("/api/patients", params={"date_of_birth": target["date_of_birth"]})
    assert all(p["date_of_birth"] == target["date_of_birth"] for p in by_dob)
    by_doctor = api.walk("/api/patients", params={"doctor": target["doctor"]})
    expected = [
        p["id"] for p in clinic.tables["patients"].values() if p["doctor"] == target["doctor"]
    ]
    assert set(expected) <= {p["id"] for p in by_doctor}


def test_related_filters(api: Api, clinic) -> None:
    line = next(iter(clinic.tables["line_items"].values()))
    items = api.walk("/api/line_items", params={"appointment": line["appointment"]})
    assert line["id"] in [i["id"] for i in items]
    assert all(i["appointment"] == line["appointment"] for i in items)
    appointment = clinic.tables["appointments"][str(line["appointment"])]
    by_office = api.walk("/api/line_items", params={"office": appointment["office"]})
    assert line["id"] in [i["id"] for i in by_office]
    tests = api.walk("/api/lab_tests", params={"order": next(iter(clinic.tables["lab_orders"]))})
    assert tests
    assert len({t["lab_order"] for t in tests}) == 1


def test_insurances_need_payer_type(api: Api) -> None:
    assert api.get("/api/insurances").json() == {"payer_type": ["This field is required."]}
    assert api.get("/api/insurances", params={"payer_type": "bogus"}).status_code == 400
    hits = api.walk("/api/insurances", params={"payer_type": "emdeon", "term": "medicare"})
    assert hits
    assert all("medicare" in h["payer_name"].lower() for h in hits)


@pytest.mark.parametrize("resource", ["patients", "appointments", "offices"])
def test_verbose_only_fields_are_stripped_from_lists(api: Api, resource: str) -> None:
    query = LIST_QUERY.get(resource, {})
    hidden = VERBOSE_ONLY_FIELDS[resource]
    plain = api.get(f"/api/{resource}", params=query).json()["results"]
    assert plain
    assert all(not hidden & set(r) for r in plain)
    verbose = api.get(f"/api/{resource}", params={**query, "verbose": "true"}).json()["results"]
    assert all(hidden <= set(r) for r in verbose)
    # A single object always carries them (verbose is a list switch).
    single = api.get(f"/api/{resource}/{plain[0]['id']}").json()
    assert hidden <= set(single)


def test_vitals_only_in_verbose_appointments(api: Api) -> None:
    params = {"date_range": "2025-05-01/2025-06-10"}
    assert all(
        "vitals" not in a for a in api.get("/api/appointments", params=params).json()["results"]
    )
    verbose = api.get("/api/appointments", params={**params, "verbose": "true"}).json()["results"]
    assert verbose
    assert all("vitals" in a for a in verbose)


def test_same_seed_gives_identical_data(start_sandbox) -> None:
    first, second = start_sandbox(), start_sandbox()
    for path, params in (
        ("/api/patients", {}),
        ("/api/appointments", {"date_range": "2025-03-01/2025-06-30", "verbose": "true"}),
        ("/api/line_items", {}),
    ):
        assert first.walk(path, params=params) == second.walk(path, params=params)
