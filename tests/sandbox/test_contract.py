"""Contract: sandbox responses validate against DrChrono's published OpenAPI schema.

The schema (``/work/shared/ehr-api/drchrono-openapi-v4.yml``, DrChrono's own OAS 3.0 document)
is large, so it is loaded once per session. OpenAPI 3.0 schemas are not JSON Schema; the
conversion below (``to_json_schema``) inlines ``$ref``s, drops ``readOnly``/vendor keys and
treats every property as nullable: DrChrono's document marks almost nothing ``nullable`` yet
its API returns ``null`` for unset ids, dates and numbers. Likewise every string enum also
accepts ``""``: unset Django choice fields (``blank=True``) serialise as an empty string, which
the generated enums leave out. Known errata of the document, where
the real API demonstrably returns another type (drchrono.md §3 notes them), are listed in
``SCHEMA_ERRATA`` with the reason, and nowhere else.

The OAS names the list array ``data``; the real API (and every client, and the sandbox) uses
``results``. That one difference is handled in ONE place: ``list_schema``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.sandbox.conftest import Api

OAS_PATH = Path(os.environ.get("DRCHRONO_OAS", "/work/shared/ehr-api/drchrono-openapi-v4.yml"))

# (schema, property) -> JSON type(s) the real API returns, where the OAS document is wrong.
SCHEMA_ERRATA: dict[tuple[str, str], dict[str, Any]] = {
    # drchrono.md §3.4: exam_rooms is an array of {index, name, online_scheduling} objects.
    ("Office", "exam_rooms"): {"type": "array", "items": {"type": "object"}},
    # §1.5: ids, flags and the permission map of the user profile are typed string in the OAS.
    ("UserProfile", "id"): {"type": "integer"},
    ("UserProfile", "doctor"): {"type": "integer"},
    ("UserProfile", "practice_group"): {"type": "integer"},
    ("UserProfile", "is_doctor"): {"type": "boolean"},
    ("UserProfile", "is_staff"): {"type": "boolean"},
    ("UserProfile", "permissions"): {"type": "object"},
    ("Doctor", "practice_group"): {"type": "integer"},
    ("Office", "doctor"): {"type": "integer"},
    ("BillingProfile", "doctor"): {"type": "integer"},
    # §3.12/§3.6/§3.16: foreign ids typed string in read-only positions are integers.
    ("BillingLineItem", "patient"): {"type": "integer"},
    ("BillingLineItem", "doctor"): {"type": "integer"},
    ("ClinicalNote", "patient"): {"type": "integer"},
    ("ClinicalNote", "appointment"): {"type": "integer"},
    ("Coverage", "patient"): {"type": "integer"},
    ("Coverage", "appointment"): {"type": "integer"},
    ("LabResult", "lab_order"): {"type": "integer"},
    ("LabOrder", "documents"): {"type": "array", "items": {"type": "integer"}},
    ("PatientVaccineRecord", "administered_by"): {"type": "integer"},
    ("PatientVaccineRecord", "entered_by"): {"type": "integer"},
    ("Appointment", "created_by"): {"type": "integer"},
    ("CashPayment", "created_by"): {"type": "integer"},
    # Coverage details and subscriber are objects in the eligibility responses.
    ("Coverage", "coverage_details"): {"type": "object"},
    ("Coverage", "coverage_subscriber"): {"type": "object"},
    # §2.2: money is a 2-decimal string even where the OAS says number.
    **{
        ("BillingLineItem", name): {"type": "string"}
        for name in (
            "price", "billed", "allowed", "expected_reimbursement", "adjustment", "ins1_paid",
            "ins2_paid", "ins3_paid", "pt_paid", "balance_ins", "balance_pt",
        )
    },
    ("LineItemTransaction", "ins_paid"): {"type": "string"},
    ("LineItemTransaction", "adjustment"): {"type": "string"},
    ("CashPayment", "amount"): {"type": "string"},
    # The signing user of a clinical note is a user id.
    ("ClinicalNote.signee", "locked_by"): {"type": "integer"},
    ("ClinicalNote.signee", "supervisor_locked_by"): {"type": "integer"},
    # The OAS gives this array a nonsense enum ([["string"]]); it is a list of NCPDP ids.
    ("Patient", "preferred_pharmacies"): {"type": "array", "items": {"type": "string"}},
    # A lab result's abnormal flag is a boolean.
    ("LabResult", "is_abnormal"): {"type": "boolean"},
}  # fmt: skip

RESOURCES = {
    "users": {},
    "doctors": {},
    "offices": {},
    "appointment_profiles": {},
    "patients": {},
    "appointments": {"date_range": "2025-05-01/2025-06-30"},
    "problems": {},
    "medications": {},
    "allergies": {},
    "clinical_notes": {},
    "lab_orders": {},
    "lab_tests": {},
    "lab_results": {},
    "patient_vaccine_records": {},
    "line_items": {},
    "transactions": {},
    "patient_payments": {},
    "insurances": {"payer_type": "emdeon"},
    "eligibility_checks": {},
    "billing_profiles": {},
}
_DROP = {
    "readOnly",
    "writeOnly",
    "nullable",
    "title",
    "description",
    "example",
    "required",
    "format",
}


@pytest.fixture(scope="session")
def oas() -> dict[str, Any]:
    if not OAS_PATH.exists():
        pytest.skip(f"DrChrono OpenAPI document not found at {OAS_PATH}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with OAS_PATH.open() as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 - a SafeLoader (C version for speed)


def to_json_schema(node: Any, components: dict[str, Any], owner: str | None = None) -> Any:
    """Convert an OAS 3.0 schema node to JSON Schema (see module docstring)."""
    if isinstance(node, list):
        return [to_json_schema(item, components, owner) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return to_json_schema(components[name], components, name)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key.startswith("x-"):
            continue
        if key == "properties":
            props = {}
            for prop, sub in value.items():
                converted = copy.deepcopy(SCHEMA_ERRATA.get((owner, prop))) if owner else None
                inner = f"{owner}.{prop}" if owner else None
                props[prop] = _nullable(converted or to_json_schema(sub, components, inner))
            out[key] = props
        elif key in ("items", "allOf", "anyOf", "oneOf", "additionalProperties"):
            out[key] = to_json_schema(value, components, owner)
        else:
            out[key] = value
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "type" in schema and isinstance(schema["type"], str):
        schema = {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        blank = [""] if all(isinstance(v, str) for v in schema["enum"]) else []
        schema = {**schema, "enum": [*schema["enum"], *blank, None]}
    if "type" not in schema and "enum" not in schema:
        return schema
    return schema


def _response_schema(oas: dict[str, Any], path: str) -> dict[str, Any]:
    operation = oas["paths"][path]["get"]
    return operation["responses"]["200"]["content"]["application/json"]["schema"]


def list_schema(oas: dict[str, Any], resource: str) -> dict[str, Any]:
    """The list response schema with the OAS ``data`` key renamed to the real ``results``.

    This is the only place the ``data``/``results`` difference is handled.
    """
    schema = copy.deepcopy(_response_schema(oas, f"/api/{resource}"))
    schema["properties"]["results"] = schema["properties"].pop("data")
    schema["required"] = ["previous", "results", "next"]
    schema["additionalProperties"] = False
    converted = to_json_schema(schema, oas["components"]["schemas"])
    converted["required"] = ["previous", "results", "next"]
    return converted


def detail_schema(oas: dict[str, Any], resource: str) -> dict[str, Any]:
    return to_json_schema(
        _response_schema(oas, f"/api/{resource}/{{id}}"), oas["components"]["schemas"]
    )


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_list_and_detail_match_the_schema(api: Api, oas: dict[str, Any], resource: str) -> None:
    params = {**RESOURCES[resource], "verbose": "true"}
    body = api.get(f"/api/{resource}", params=params).json()
    assert body["results"], resource
    assert _errors(list_schema(oas, resource), body) == []
    first = body["results"][0]
    single = api.get(
        f"/api/{resource}/{first.get('id', first.get('payer_id'))}", params=RESOURCES[resource]
    )
    assert _errors(detail_schema(oas, resource), single.json()) == []


def test_created_objects_match_the_schema(api: Api, oas: dict[str, Any]) -> None:
    components = oas["components"]["schemas"]
    doctor = api.server.store.user["doctor"]
    patient = api.post(
        "/api/patients", json={"gender": "Male", "doctor": doctor, "last_name": "Contract"}
    )
    assert patient.status_code == 201
    assert (
        _errors(
            to_json_schema({"$ref": "#/components/schemas/Patient"}, components), patient.json()
        )
        == []
    )
    office = api.get("/api/offices").json()["results"][0]
    appointment = api.post(
        "/api/appointments",
        json={
            "doctor": doctor, "office": office["id"], "exam_room": office["exam_rooms"][0]["index"],
            "patient": patient.json()["id"], "scheduled_time": "2027-01-04T08:00", "duration": 15,
        },
    )  # fmt: skip
    assert appointment.status_code == 201, appointment.text
    schema = to_json_schema({"$ref": "#/components/schemas/Appointment"}, components)
    assert _errors(schema, appointment.json()) == []


def test_the_conversion_still_catches_type_errors(oas: dict[str, Any]) -> None:
    schema = to_json_schema({"$ref": "#/components/schemas/Patient"}, oas["components"]["schemas"])
    assert _errors(schema, {"id": "not-an-int"})
    assert _errors(schema, {"gender": "Robot"})
    assert _errors(schema, {"id": None, "gender": None}) == []
