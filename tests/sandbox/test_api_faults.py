"""Sandbox fault knobs, admin endpoints, request log, data reset and async batch lists."""

from __future__ import annotations

import json

import pytest
import requests

from ehr.sandbox.faults import FOREIGN_HOST
from tests.sandbox.conftest import Api


def _set(api: Api, **knobs: object) -> dict:
    response = api.admin("POST", "/sandbox-admin/faults", json=knobs)
    assert response.status_code == 200, response.text
    return response.json()["faults"]


@pytest.fixture
def faulty(start_sandbox) -> Api:
    return start_sandbox()


def test_admin_is_absent_unless_enabled_and_needs_the_key(start_sandbox, faulty: Api) -> None:
    closed = start_sandbox(faults_admin_enabled=False)
    assert closed.admin("GET", "/sandbox-admin/faults").status_code == 404
    no_key = requests.get(faulty.url("/sandbox-admin/faults"), timeout=10)
    assert no_key.status_code == 403
    assert faulty.admin("GET", "/sandbox-admin/faults").json()["faults"]["latency_ms"] == 0
    bad = faulty.admin("POST", "/sandbox-admin/faults", json={"error_500_rate": 2})
    assert bad.status_code == 400
    assert "error_500_rate" in bad.json()


def test_latency(faulty: Api) -> None:
    _set(faulty, latency_ms=150)
    response = faulty.get("/api/doctors")
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.15


@pytest.mark.parametrize("status", [500, 502, 503])
def test_error_rates(faulty: Api, status: int) -> None:
    _set(faulty, **{f"error_{status}_rate": 1.0})
    response = faulty.get("/api/doctors")
    assert response.status_code == status
    _set(faulty, reset=True)
    assert faulty.get("/api/doctors").status_code == 200


def test_seeded_error_draws_repeat(faulty: Api) -> None:
    def run() -> list[int]:
        _set(faulty, reset=True)
        _set(faulty, error_503_rate=0.5, seed=42)
        return [faulty.get("/api/doctors").status_code for _ in range(12)]

    first = run()
    assert set(first) == {200, 503}
    assert run() == first


def test_throttle_burst(faulty: Api) -> None:
    _set(faulty, throttle_next=2)
    assert [faulty.get("/api/doctors").status_code for _ in range(3)] == [429, 429, 200]


def test_token_faults(faulty: Api) -> None:
    assert faulty.get("/api/doctors").status_code == 200
    _set(faulty, expire_tokens=True)
    expired = faulty.get("/api/doctors")
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    faulty.token = faulty.token_for()
    assert faulty.get("/api/doctors").status_code == 200
    _set(faulty, revoke_tokens=True)
    assert faulty.get("/api/doctors").status_code == 401


def test_body_faults_on_list_responses(faulty: Api) -> None:
    _set(faulty, malformed_json_next=1, truncated_json_next=1)
    for _ in range(2):
        response = faulty.get("/api/doctors")
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.text)
    assert faulty.get("/api/doctors").json()["results"]


def test_html_page_with_200(faulty: Api) -> None:
    _set(faulty, html_200_next=1)
    response = faulty.get("/api/patients/1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert faulty.get("/api/doctors").headers["content-type"].startswith("application/json")


def test_next_link_on_another_host(faulty: Api) -> None:
    _set(faulty, foreign_next_link=True)
    body = faulty.get("/api/patients", params={"page_size": 2}).json()
    assert FOREIGN_HOST in body["next"]
    _set(faulty, reset=True)
    assert FOREIGN_HOST not in faulty.get("/api/patients", params={"page_size": 2}).json()["next"]


def test_faults_settable_from_python(faulty: Api) -> None:
    faulty.server.faults.update(throttle_next=1)
    assert faulty.get("/api/doctors").status_code == 429
    with pytest.raises(ValueError, match="invalid fault settings"):
        faulty.server.faults.update(latency_ms=-1)


def test_request_log_keeps_names_not_values(faulty: Api) -> None:
    log = faulty.server.request_log
    log.reset()
    faulty.get("/api/patients", params={"last_name": "Zebulon", "page_size": 2})
    faulty.get("/api/nothing")
    faulty.admin("GET", "/sandbox-admin/faults")
    entries = log.entries()
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("GET", "/api/patients", 200),
        ("GET", "/api/nothing", 404),
    ]
    assert entries[0].query_names == ("last_name", "page_size")
    assert entries[0].client_id == faulty.server.client_id
    assert entries[0].duration_ms >= 0
    assert "Zebulon" not in repr(entries)
    assert log.count(method="GET", path_prefix="/api/patients") == 1
    over_http = faulty.admin("GET", "/sandbox-admin/requests").json()["requests"]
    assert [e["path"] for e in over_http] == ["/api/patients", "/api/nothing"]
    assert "Zebulon" not in json.dumps(over_http)
    assert faulty.admin("DELETE", "/sandbox-admin/requests").status_code == 204
    assert log.entries() == []


def test_reset_data_regenerates_the_clinic(faulty: Api) -> None:
    before = faulty.server.store.count("patients")
    created = faulty.post(
        "/api/patients", json={"gender": "Male", "doctor": faulty.server.store.user["doctor"]}
    )
    assert created.status_code == 201
    response = faulty.admin("POST", "/sandbox-admin/reset-data")
    assert response.status_code == 200
    assert faulty.server.store.count("patients") == before
    assert faulty.get(f"/api/patients/{created.json()['id']}").status_code == 404


def test_batch_list_flow(start_sandbox) -> None:
    api = start_sandbox(batch_delay_s=0.0)
    started = api.post("/api/line_items_list", json={"page_size": 50, "order_by": "updated_at"})
    assert started.status_code == 201
    body = started.json()
    assert body["status"] == "In progress"
    assert body["uuid"]
    assert body["description"]
    results: list[dict] = []
    url = f"/api/line_items_list?uuid={body['uuid']}"
    while url:
        page = api.get(url).json()
        assert page["status"] == "Complete"
        assert page["uuid"] == body["uuid"]
        assert len(page["results"]) <= 50
        results.extend(page["results"])
        url = page["next"]
    assert len(results) == len({r["id"] for r in results}) == api.server.store.count("line_items")
    assert [r["updated_at"] for r in results] == sorted(r["updated_at"] for r in results)
    assert api.get("/api/line_items_list?uuid=nope").status_code == 404
    assert api.get("/api/line_items_list").status_code == 400
    assert api.post("/api/line_items_list", json={"page_size": 1001}).status_code == 400
    assert api.post("/api/line_items_list", json={"order_by": "name"}).status_code == 400


def test_batch_list_is_in_progress_until_the_delay(start_sandbox) -> None:
    api = start_sandbox(batch_delay_s=60.0)
    job = api.post("/api/patients_list", params={"gender": "Female"}).json()
    page = api.get(f"/api/patients_list?uuid={job['uuid']}").json()
    assert page["status"] == "In progress"
    assert page["results"] == []
    assert page["next"] is None
    reader = api.token_for("billing:read")
    assert api.get(f"/api/patients_list?uuid={job['uuid']}", token=reader).status_code == 403
