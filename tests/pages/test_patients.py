"""The Patients page against the connected demo sandbox: search, open, register, edit, delete.

Upstream effects are read from the sandbox itself (its store and request log) and from the
audit log, never from what the page claims. The form rules are also tested directly.

One demo app serves the whole module (building users and connecting the EHR takes seconds), so
each test works on its own patient and compares counts before and after rather than totals.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from ehr.errors import WriteOutcomeUnknownError
from ehr.models import Gender, Patient
from ehr.services import accounts
from ehr.services import patients as patients_service
from storage import audit_report
from tests.pages.conftest import PASSWORD, ROLES, caller_of, connect_demo_ehr, sign_in
from ui import wiring
from ui.patient_rules import (
    PatientForm,
    SearchQuery,
    changes_from,
    check_form,
    check_search,
    draft_from,
    form_from_patient,
)
from ui.session import TEST_TOKEN_KEY

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/patients.py"
SEARCH = "FormSubmitter:patients.search-Search"
REGISTER = "FormSubmitter:patients.create-Register patient"
TODAY = date(2026, 5, 1)
# The SECURITY.md fixture patient: odd strings that are easy to grep for.
NEW_PATIENT = {"first_name": "Zebulon", "last_name": "Quixote", "date_of_birth": date(1931, 3, 17)}


# --- one connected demo app for the module ------------------------------------------------------


@pytest.fixture(scope="module")
def connected(tmp_path_factory):
    """Signed-in sessions per role on a demo app with the sandbox EHR connected."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATA_DIR", str(tmp_path_factory.mktemp("patients") / "data"))
        env.setenv("SANDBOX_PATIENTS", "60")
        for name in ("DATABASE_URL", "DRCHRONO_CLIENT_ID", "DRCHRONO_CLIENT_SECRET"):
            env.delenv(name, raising=False)
        wiring.reset()
        try:
            accounts.create_first_admin(wiring.account_store(), "admin", PASSWORD)
            admin = caller_of(sign_in("admin"))
            for role in ROLES[1:]:
                username = role.replace("_", "")
                accounts.create_user(wiring.account_store(), admin, username, PASSWORD, role)
            users = {r: sign_in("admin" if r == "admin" else r.replace("_", "")) for r in ROLES}
            connect_demo_ehr(users["admin"])
            yield users
        finally:
            wiring.reset()


@pytest.fixture(scope="module")
def patients_on_file(connected) -> list[dict[str, Any]]:
    """Demo patients with a unique last name + birth date, as first loaded (one per test)."""
    records = sorted((r for _k, r, _s in store().scan("patients")), key=lambda r: r["id"])
    keys = [(r["last_name"].casefold(), r["date_of_birth"]) for r in records]
    unique = [
        dict(r)
        for r, key in zip(records, keys, strict=True)
        if r["first_name"] and r["chart_id"] and keys.count(key) == 1
    ]
    assert len(unique) >= 10, "the demo clinic should have distinct patients"
    return unique


# --- helpers -------------------------------------------------------------------------------------


def open_patients(session, *, patient: str | None = None, tab: str | None = None) -> AppTest:
    """The Patients page signed in as ``session``, optionally with ``?patient=`` and a tab."""
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.session_state[TEST_TOKEN_KEY] = session.token
    if patient is not None:
        at.query_params["patient"] = patient
    at.run()
    at.switch_page(PAGE)
    if tab is not None:
        at.session_state["patients.detail_tab" if patient else "patients.section"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def store():
    sandbox = wiring.demo_sandbox()
    assert sandbox is not None
    return sandbox.store


def request_count(method: str, path: str = "/api/patients") -> int:
    sandbox = wiring.demo_sandbox()
    assert sandbox is not None
    return sandbox.request_log.count(method=method, path_prefix=path)


@dataclasses.dataclass(frozen=True)
class Row:
    outcome: str
    resource_id: str | None
    details: dict[str, Any]


def audit_rows(action: str | None = None) -> list[Row]:
    """Patient audit rows (of one action), details decoded."""
    return [
        Row(str(r.outcome), r.resource_id, json.loads(r.details or "{}"))
        for r in audit_report.query(wiring.app_engine(), action=action, limit=1000)
        if r.resource_type == "patient"
    ]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def search(at: AppTest, *, name: str = "", chart: str = "") -> AppTest:
    at.text_input(key="patients.search.name").input(name)
    at.text_input(key="patients.search.chart").input(chart)
    return at.button(key=SEARCH).click().run()


def fill(at: AppTest, prefix: str, **values: Any) -> None:
    for field, value in values.items():
        if field == "date_of_birth":
            at.date_input(key=f"{prefix}.{field}").set_value(value)
        elif field in ("gender", "doctor_id"):
            at.selectbox(key=f"{prefix}.{field}").set_value(value)
        else:
            at.text_input(key=f"{prefix}.{field}").input(value)


def first_doctor() -> int:
    return min(int(k) for k, _r, _s in store().scan("doctors"))


def register(at: AppTest, **values: Any) -> AppTest:
    fill(at, "patients.create", gender=Gender.MALE, doctor_id=first_doctor(), **values)
    return at.button(key=REGISTER).click().run()


def column_with(at: AppTest, key: str):
    """The form column holding the widget ``key`` (its field errors render in it)."""
    for column in at.columns:
        if any(getattr(child, "key", None) == key for child in column.children.values()):
            return column
    raise AssertionError(f"no column holds {key}")


# --- every role ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "clinician", "front_desk", "billing"])
def test_every_role_can_open_the_page_and_only_writers_can_register(connected, role):
    at = open_patients(connected[role])
    assert at.title[0].value == "Patients"
    labels = [t.label for t in at.tabs]
    assert labels == (
        ["Find a patient"] if role == "billing" else ["Find a patient", "Register a patient"]
    )


def test_billing_gets_no_register_form_and_no_edit_even_when_asking_for_it(
    connected, patients_on_file
):
    at = open_patients(connected["billing"], tab="Register a patient")
    assert not [w for w in at.text_input if str(w.key).startswith("patients.create")]
    pid = str(patients_on_file[0]["id"])
    at = open_patients(connected["billing"], patient=pid, tab="Edit details")
    assert [t.label for t in at.tabs] == ["Overview"]
    assert not [w for w in at.text_input if str(w.key).startswith("patients.edit")]
    assert any("Upcoming appointments" in m.value for m in at.markdown)


# --- search --------------------------------------------------------------------------------------


def test_search_by_name_returns_the_patient_and_audits_only_the_criteria(
    connected, patients_on_file
):
    patient = patients_on_file[1]
    at = search(open_patients(connected["front_desk"]), name=patient["last_name"].upper())
    assert not at.exception
    table = at.dataframe[0].value
    assert patient["chart_id"] in set(table["Chart id"])
    assert all(patient["last_name"] in name for name in table["Name"])
    searches = audit_rows("SEARCH")
    assert any(r.details.get("criteria") == ["name"] for r in searches)
    assert patient["last_name"] not in str([r.details for r in searches])


def test_a_nonsense_name_shows_the_empty_state(connected):
    at = search(open_patients(connected["clinician"]), name="Xqzzyvw")
    assert any("No patients match" in i.value for i in at.info)
    assert not at.dataframe


def test_search_by_chart_id_finds_exactly_that_patient(connected, patients_on_file):
    patient = patients_on_file[2]
    at = search(open_patients(connected["billing"]), chart=patient["chart_id"])
    assert list(at.dataframe[0].value["Chart id"]) == [patient["chart_id"]]


def test_an_empty_search_is_refused_without_asking_the_ehr(connected):
    at = open_patients(connected["front_desk"])
    before = request_count("GET")
    at = search(at)
    assert any("Enter a name" in w.value for w in at.warning)
    assert request_count("GET") == before


def test_next_and_previous_walk_the_pages_with_one_request_each(connected, monkeypatch):
    # One patient per upstream page, so a shared last name spans several pages.
    monkeypatch.setattr("ehr.drchrono.backend.MAX_PAGE_SIZE", 1)
    names = [r["last_name"] for _k, r, _s in store().scan("patients")]
    shared = max(set(names), key=names.count)
    assert names.count(shared) >= 2, "the demo clinic should share at least one last name"
    at = search(open_patients(connected["front_desk"]), name=shared)
    first = list(at.dataframe[0].value["Chart id"])
    assert len(first) == 1
    assert at.button(key="patients.previous").disabled
    before = request_count("GET")
    at = at.button(key="patients.next").click().run()
    second = list(at.dataframe[0].value["Chart id"])
    assert second != first
    assert request_count("GET") == before + 1
    assert any("Page 2" in c.value for c in at.caption)
    at = at.button(key="patients.previous").click().run()
    assert list(at.dataframe[0].value["Chart id"]) == first
    assert request_count("GET") == before + 1  # the page seen a moment ago comes from the cache


# --- open a patient ------------------------------------------------------------------------------


@pytest.mark.parametrize("forged", ["abc", "-3", "0", "1e9", "../../admin", "12345678901234"])
def test_a_forged_patient_link_gets_a_clear_message_and_no_upstream_read(connected, forged):
    reads = len(audit_rows("READ"))
    at = open_patients(connected["front_desk"], patient=forged)
    assert any("patient link is not valid" in e.value for e in at.error)
    assert "patient" not in at.query_params
    assert len(audit_rows("READ")) == reads


def test_an_unknown_patient_id_is_reported_as_not_found(connected):
    at = open_patients(connected["front_desk"], patient="987654")
    assert any("not found" in e.value for e in at.error)
    assert not at.exception
    at.button(key="patients.back").click().run()  # not a dead end
    assert at.text_input(key="patients.search.name")
    assert any(r.resource_id == "987654" for r in audit_rows("READ"))


def test_opening_a_patient_shows_demographics_and_appointments(connected, patients_on_file):
    patient = patients_on_file[3]
    before = request_count("GET", "/api/appointments")
    at = open_patients(connected["clinician"], patient=str(patient["id"]))
    assert patient["last_name"] in at.subheader[0].value.replace("\\", "")
    markdown = " ".join(m.value for m in at.markdown)
    assert "Upcoming appointments" in markdown
    assert "Past appointments" in markdown
    assert any("took 3 requests" in c.value for c in at.caption)
    assert request_count("GET", "/api/appointments") - before >= 3


# --- register ------------------------------------------------------------------------------------


def test_a_missing_last_name_is_a_field_error_and_nothing_is_sent(connected):
    at = open_patients(connected["front_desk"], tab="Register a patient")
    creates, posts = len(audit_rows("CREATE")), request_count("POST")
    at = register(at, first_name="Zebulon", date_of_birth=date(1931, 3, 17))
    assert "Last name is required." in texts(column_with(at, "patients.create.last_name").error)
    assert request_count("POST") == posts
    assert len(audit_rows("CREATE")) == creates


def test_a_registered_patient_opens_and_is_then_found_by_search(connected):
    at = open_patients(connected["front_desk"], tab="Register a patient")
    posts = request_count("POST")
    at = register(at, **NEW_PATIENT, email="zq@example.com")
    assert not at.exception
    assert any("Patient registered" in s.value for s in at.success)
    new_id = at.query_params["patient"]
    created = store().get("patients", int(new_id))
    assert created["last_name"] == "Quixote"
    assert request_count("POST") == posts + 1
    at.session_state["patients.section"] = "Find a patient"
    at.button(key="patients.back").click().run()
    at = search(at, name="Quixote")
    assert created["chart_id"] in set(at.dataframe[0].value["Chart id"])


def test_an_unclear_create_is_checked_upstream_and_never_resent(connected, monkeypatch):
    """RL-02: the EHR saved the patient but the answer was lost; the page looks, never resends."""
    real_create = patients_service.create_patient

    def saved_but_reply_lost(gw, draft, *, allow_duplicate=False):
        real_create(gw, draft, allow_duplicate=allow_duplicate)
        raise WriteOutcomeUnknownError(correlation_id="lost1")

    monkeypatch.setattr(patients_service, "create_patient", saved_but_reply_lost)
    at = open_patients(connected["front_desk"], tab="Register a patient")
    posts = request_count("POST")
    at = register(at, first_name="Unclear", last_name="Outcomeson", date_of_birth=date(1950, 5, 6))
    assert not at.exception
    assert request_count("POST") == posts + 1  # sent once, never again
    assert any("could not confirm" in w.value for w in at.warning)
    assert any("Already in the EHR?" in m.value for m in at.markdown)
    assert "Outcomeson, Unclear" in set(at.dataframe[-1].value["Name"])


def test_a_duplicate_shows_the_matches_and_needs_the_explicit_override(connected, patients_on_file):
    existing = patients_on_file[4]
    count = store().count("patients")
    at = open_patients(connected["clinician"], tab="Register a patient")
    twin = {
        "first_name": existing["first_name"],
        "last_name": existing["last_name"],
        "date_of_birth": date.fromisoformat(existing["date_of_birth"]),
    }
    at = register(at, **twin)
    assert any("may already exist" in w.value for w in at.warning)
    matches = at.dataframe[0].value
    assert existing["chart_id"] in set(matches["Chart id"])
    again = at.button(key="patients.duplicate.register")
    assert again.disabled
    assert store().count("patients") == count
    at.checkbox(key="patients.duplicate.confirm").check().run()
    at.button(key="patients.duplicate.register").click().run()
    assert not at.exception
    assert any("Patient registered" in s.value for s in at.success)
    assert store().count("patients") == count + 1
    outcomes = [
        (r.outcome, r.details.get("duplicate_override"), r.details.get("stage"))
        for r in audit_rows("CREATE")[-4:]
    ]
    assert outcomes == [
        ("SUCCESS", False, "requested"),
        ("ERROR", False, None),  # the EHR's 409: possible duplicate
        ("SUCCESS", True, "requested"),
        ("SUCCESS", True, None),
    ]


def test_an_upstream_field_error_appears_under_its_field(connected):
    at = open_patients(connected["admin"], tab="Register a patient")
    doctor = max(int(k) for k, _r, _s in store().scan("doctors"))
    record = store().get("doctors", doctor)
    # The doctor list is cached for the session, so the form still offers a doctor the EHR
    # has just removed: the EHR's 400 names the field, and the page puts it there.
    fill(at, "patients.create", **NEW_PATIENT, gender=Gender.FEMALE, doctor_id=doctor)
    assert store().delete("doctors", doctor)
    try:
        at = at.button(key=REGISTER).click().run()
    finally:
        store().put("doctors", doctor, record)
    assert not at.exception
    assert texts(column_with(at, "patients.create.doctor_id").error)
    assert any("(ref " in e.value for e in at.error)
    assert not [w for w in at.success if "registered" in w.value]


# --- edit and delete -----------------------------------------------------------------------------


def test_an_edit_sends_only_the_changed_fields(connected, patients_on_file):
    patient = patients_on_file[5]
    pid = patient["id"]
    at = open_patients(connected["front_desk"], patient=str(pid), tab="Edit details")
    patches = request_count("PATCH")
    at.text_input(key=f"patients.edit.{pid}.city").input("Springfield")
    at = at.button(key=f"FormSubmitter:patients.edit.{pid}-Save changes").click().run()
    assert not at.exception
    assert any("Saved: city." in s.value for s in at.success)
    after = store().get("patients", pid)
    assert after["city"] == "Springfield"
    assert {k: v for k, v in after.items() if k not in ("city", "updated_at")} == {
        k: v for k, v in patient.items() if k not in ("city", "updated_at")
    }
    mine = [r for r in audit_rows("UPDATE") if r.resource_id == str(pid)]
    assert [r.details["fields"] for r in mine] == [["city"], ["city"]]  # intent, then outcome
    assert request_count("PATCH") == patches + 1


def test_an_unchanged_edit_form_sends_nothing(connected, patients_on_file):
    pid = patients_on_file[6]["id"]
    at = open_patients(connected["admin"], patient=str(pid), tab="Edit details")
    patches = request_count("PATCH")
    at = at.button(key=f"FormSubmitter:patients.edit.{pid}-Save changes").click().run()
    assert any("Nothing changed" in i.value for i in at.info)
    assert request_count("PATCH") == patches


def test_an_edit_of_a_patient_changed_upstream_is_refused_with_a_reload(
    connected, patients_on_file
):
    patient = patients_on_file[7]
    pid = patient["id"]
    at = open_patients(connected["front_desk"], patient=str(pid), tab="Edit details")
    store().put("patients", pid, {**patient, "cell_phone": "(555) 010-9999"})
    at.text_input(key=f"patients.edit.{pid}.city").input("Springfield")
    at = at.button(key=f"FormSubmitter:patients.edit.{pid}-Save changes").click().run()
    assert any("changed in the EHR" in e.value for e in at.error)
    assert store().get("patients", pid)["city"] == patient["city"]
    at.button(key="patients.reload_after_conflict").click().run()
    assert not at.exception
    assert at.text_input(key=f"patients.edit.{pid}.city").value == patient["city"]
    assert at.text_input(key=f"patients.edit.{pid}.cell_phone").value == "(555) 010-9999"


def test_only_admin_sees_delete_and_it_needs_the_exact_chart_id(connected, patients_on_file):
    patient = patients_on_file[8]
    pid = patient["id"]
    at = open_patients(connected["front_desk"], patient=str(pid), tab="Delete")
    assert [t.label for t in at.tabs] == ["Overview", "Edit details"]
    at = open_patients(connected["admin"], patient=str(pid), tab="Delete")
    submit = f"FormSubmitter:patients.delete.{pid}-Delete patient"
    at.text_input(key=f"patients.delete.{pid}.confirm").input(patient["chart_id"].lower())
    deletes = request_count("DELETE")
    at = at.button(key=submit).click().run()
    assert any("does not match" in e.value for e in at.error)
    assert request_count("DELETE") == deletes
    at.text_input(key=f"patients.delete.{pid}.confirm").input(patient["chart_id"])
    at = at.button(key=submit).click().run()
    assert any("deleted" in s.value for s in at.success)
    assert store().get("patients", pid) is None
    assert "patient" not in at.query_params


# --- the form rules, directly --------------------------------------------------------------------


def _form(**values: Any) -> PatientForm:
    base = {**NEW_PATIENT, "gender": Gender.MALE, "doctor_id": 1}
    return PatientForm(**{**base, **values})


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"last_name": "   "}, "last_name", "required"),
        ({"first_name": "Zeb\u202eulon"}, "first_name", "invisible"),
        ({"first_name": "Zeb\x00"}, "first_name", "control"),
        ({"last_name": "Q" * 51}, "last_name", "at most 50"),
        ({"date_of_birth": date(2026, 5, 2)}, "date_of_birth", "future"),
        ({"date_of_birth": date(1899, 12, 31)}, "date_of_birth", "before 1900"),
        ({"date_of_birth": None}, "date_of_birth", "required"),
        ({"gender": None}, "gender", "required"),
        ({"doctor_id": 99}, "doctor_id", "from the list"),
        ({"email": "not-an-email"}, "email", "e-mail"),
        ({"cell_phone": "12345"}, "cell_phone", "7 to 15 digits"),
        ({"state": "California"}, "state", "at most 2"),
        ({"zip_code": "9021"}, "zip_code", "ZIP"),
        ({"chart_id": "AB 12"}, "chart_id", "letters, digits"),
    ],
)
def test_the_register_rules_name_the_field_and_the_limit(values, field, message):
    checked = check_form(_form(**values), today=TODAY, doctor_ids=frozenset({1}))
    assert set(checked.errors) == {field}
    assert message in checked.errors[field]


def test_a_valid_form_becomes_a_clean_draft():
    checked = check_form(
        _form(first_name="  Zebulon ", state="ca", email=""),
        today=TODAY,
        doctor_ids=frozenset({1}),
    )
    assert checked.ok
    draft = draft_from(checked.form)
    assert (draft.first_name, draft.state, draft.email) == ("Zebulon", "CA", None)


def test_an_edit_keeps_only_changed_fields_and_tolerates_old_values_it_did_not_touch():
    patient = Patient(
        id=7,
        first_name="Zebulon",
        last_name="Quixote",
        date_of_birth=date(1931, 3, 17),
        state="California",  # an old value the rules would refuse today
        doctor_id=3,  # a doctor no longer offered
        city="Old Town ",
    )
    baseline = form_from_patient(patient)
    edited = dataclasses.replace(baseline, city="Old Town", email="zq@example.com")
    checked = check_form(edited, today=TODAY, doctor_ids=frozenset({1}), baseline=baseline)
    assert checked.ok, checked.errors
    assert changes_from(checked.form, baseline) == {"email": "zq@example.com"}
    cleared = dataclasses.replace(baseline, last_name="")
    assert set(
        check_form(cleared, today=TODAY, doctor_ids=frozenset(), baseline=baseline).errors
    ) == {"last_name"}


@pytest.mark.parametrize(
    ("name", "born", "chart", "problem"),
    [
        ("", None, "", "Enter a name"),
        ("x" * 51, None, "", "at most"),
        ("Zeb\u200bulon", None, "", "invisible"),
        ("", date(1899, 1, 1), "", "between 1900"),
    ],
)
def test_search_input_is_checked_before_any_request(name, born, chart, problem):
    query, message = check_search(name, born, chart, today=TODAY)
    assert query is None
    assert message is not None
    assert problem in message


def test_search_terms_are_trimmed_and_punctuation_is_kept_literally():
    query, message = check_search(" O'Brien; DROP ", None, " ", today=TODAY)
    assert message is None
    assert query == SearchQuery(name="O'Brien; DROP")
