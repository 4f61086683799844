"""The Clinical page against the connected demo sandbox: picker, chart, vitals, labs, notes,
status changes and the "add" forms, for every role.

One demo clinic (users per role, EHR connected through the real OAuth flow) serves the whole
module, because building it is most of a page test's time; each test works on its own patient
and filters the audit log by user and patient. Upstream effects are read back through a
separate gateway (never the page's cache), the sandbox's request log and the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ehr.models_clinical import ClinicalStatus
from ehr.services import accounts, clinical, patients
from ehr.services.accounts import SignedInSession
from ehr.services.gateway import Gateway
from storage import audit_report
from storage.settings import SETTINGS
from tests.pages.conftest import PASSWORD, ROLES, caller_of, connect_demo_ehr, sign_in
from ui import wiring
from ui.charts import BAND_NOTE
from ui.clinical_forms import StatusChange
from ui.session import TEST_TOKEN_KEY

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/clinical.py"
TAB_KEY = "clinical.tab"
SEARCH = "FormSubmitter:clinical.search-Search"
ADD_ALLERGY = "FormSubmitter:clinical.add_allergy-Add allergy"
# The app's default scopes lack labs:read (reported to the lead); the Labs tab needs it.
DEFAULT_SCOPES = next(s.default for s in SETTINGS if s.key == "DRCHRONO_SCOPES")


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SignedInSession]]:
    """A demo app with one signed-in session per role and the sandbox EHR connected."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATA_DIR", str(tmp_path_factory.mktemp("clinical") / "data"))
        env.setenv("SANDBOX_PATIENTS", "60")
        env.setenv("DRCHRONO_SCOPES", f"{DEFAULT_SCOPES} labs:read")
        for name in ("DATABASE_URL", "DRCHRONO_CLIENT_ID", "DRCHRONO_CLIENT_SECRET"):
            env.delenv(name, raising=False)
        wiring.reset()
        store = wiring.account_store()
        accounts.create_first_admin(store, "admin", PASSWORD)
        admin = caller_of(sign_in("admin"))
        for role in ROLES[1:]:
            accounts.create_user(store, admin, role.replace("_", ""), PASSWORD, role)
        sessions = {r: sign_in("admin" if r == "admin" else r.replace("_", "")) for r in ROLES}
        connect_demo_ehr(sessions["admin"])
        try:
            yield sessions
        finally:
            wiring.reset()


@pytest.fixture(scope="module")
def reader(clinic) -> Gateway:
    """A separate admin session's gateway: what the EHR holds, not what the page cached."""
    return wiring.new_gateway(caller_of(sign_in("admin")))


@pytest.fixture(scope="module")
def charted(reader):
    """Demo patients whose charts have vitals, labs and notes, lowest id first."""
    found = []
    for patient in sorted(patients.patient_directory(reader).items, key=lambda p: p.id):
        if all(
            listing(reader, patient.id).items
            for listing in (
                clinical.list_vitals,
                clinical.list_lab_results,
                clinical.list_clinical_notes,
            )
        ):
            found.append(patient)
        if len(found) == 4:
            return found
    raise AssertionError("the demo clinic has too few patients with full charts")


# --- helpers -------------------------------------------------------------------------------------


def open_clinical(session, *, patient: int | str | None = None, tab: str | None = None) -> AppTest:
    """The Clinical page signed in as ``session``, optionally with ``?patient=`` and a tab."""
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.session_state[TEST_TOKEN_KEY] = session.token
    if patient is not None:
        at.query_params["patient"] = str(patient)
    at.run()
    at.switch_page(PAGE)
    if tab is not None:
        at.session_state[TAB_KEY] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def fresh(reader: Gateway) -> Gateway:
    """``reader`` with its cache emptied, so the next read asks the EHR."""
    reader.cache.clear()
    return reader


def table(at: AppTest, column: str):
    """The data frame shown with ``column`` (AppTest finds frames by position, not key)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def rows(**filters) -> list:
    return audit_report.query(wiring.app_engine(), limit=5000, **filters)


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def requests_to(method: str, path: str) -> int:
    sandbox = wiring.demo_sandbox()
    assert sandbox is not None
    return sandbox.request_log.count(method=method, path_prefix=path)


def fill_allergy(at: AppTest, **values: str) -> AppTest:
    for field, value in values.items():
        if field == "severity":
            at.selectbox(key="clinical.add_allergy.severity").set_value(value)
        else:
            at.text_input(key=f"clinical.add_allergy.{field}").input(value)
    return at.button(key=ADD_ALLERGY).click().run()


# --- access and the chart --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "clinician"])
def test_clinical_roles_find_a_patient_and_open_the_chart(clinic, charted, reader, role):
    patient = charted[0]
    at = open_clinical(clinic[role])
    assert at.title[0].value == "Clinical"
    assert not at.tabs, "no chart before a patient is chosen"
    # A name finds the patient; a chart id (it has digits) does too.
    for term in (patient.last_name, patient.chart_id):
        at.text_input(key="clinical.search.term").input(term)
        at.button(key=SEARCH).click().run()
        assert not at.exception, at.exception
        options = at.selectbox(key="clinical.pick").options  # labels: name · chart id · birth
        assert any(patient.chart_id in option for option in options)
    at.selectbox(key="clinical.pick").set_value(patient.id).run()
    at.button(key="clinical.open").click().run()
    assert not at.exception, at.exception
    assert at.query_params["patient"] == str(patient.id)
    assert [t.label for t in at.tabs] == ["Summary", "Vitals", "Labs", "Notes"]
    assert {"Problems", "Allergies", "Medications"} <= set(texts(at.subheader))
    username = "admin" if role == "admin" else role
    read = {
        r.resource_type
        for r in rows(user=username, action="READ", patient_id=patient.id)
        if r.outcome == "SUCCESS"
    }
    assert {"problem", "allergy", "medication"} <= read  # opening the chart is audited
    active = [p for p in clinical.list_problems(reader, patient.id).items if p.status == "active"]
    if active:
        codes = table(at, "ICD-10")["ICD-10"]
        assert sorted(codes) == sorted(p.icd_code or "—" for p in active)


@pytest.mark.parametrize("role", ["front_desk", "billing"])
def test_other_roles_are_refused_and_the_refusal_is_audited(clinic, charted, role):
    at = open_clinical(clinic[role], patient=charted[0].id)
    assert any("does not allow" in e.value for e in at.error)
    assert not at.tabs
    username = role.replace("_", "")
    denied = rows(user=username, outcome="DENIED", resource_id="clinical")
    assert [(r.role, r.resource_type) for r in denied] == [(role, "page")]
    assert not rows(user=username, patient_id=charted[0].id), "no chart data was read"


def test_a_forged_or_unknown_patient_link_is_refused(clinic):
    at = open_clinical(clinic["clinician"], patient="12;DROP")
    assert any("not valid" in e.value for e in at.error)
    assert not at.tabs
    at = open_clinical(clinic["clinician"], patient=999_999_999)
    assert any("No patient 999999999" in e.value for e in at.error)
    assert not at.tabs


# --- vitals, labs, notes -------------------------------------------------------------------------


def test_the_vitals_labs_and_notes_tabs_show_the_chart(clinic, charted, reader):
    patient = charted[1]
    at = open_clinical(clinic["clinician"], patient=patient.id, tab="Vitals")
    assert {m.label for m in at.metric} == {
        "Blood pressure (mmHg)",
        "Heart rate",
        "Weight",
        "BMI",
        "Temperature",
    }
    assert len(at.get("plotly_chart")) == 4
    assert BAND_NOTE in texts(at.caption)

    at.session_state[TAB_KEY] = "Labs"
    at.run()
    assert not at.exception, at.exception
    results = clinical.list_lab_results(reader, patient.id).items
    labs = table(at, "Reference range")
    assert len(labs) == len(results)
    abnormal = sum(1 for r in results if r.is_abnormal)
    assert (labs["Flag"] != "Normal").sum() == abnormal
    assert at.selectbox(key="clinical.lab_test").options, "a test to trend"
    assert len(at.get("plotly_chart")) == 1

    at.session_state[TAB_KEY] = "Notes"
    at.run()
    assert not at.exception, at.exception
    notes = clinical.list_clinical_notes(reader, patient.id).items
    assert len(at.selectbox(key="clinical.note").options) == len(notes)
    newest = max(notes, key=lambda n: n.created_at)
    shown = texts(at.text)
    assert [v.value for s in newest.sections for v in s.values] == shown  # as plain text
    assert rows(user="clinician", action="READ", resource_id=newest.id)  # the read is audited


def test_a_patient_with_an_empty_chart_gets_empty_states(clinic, reader):
    empty = next(
        p
        for p in sorted(patients.patient_directory(reader).items, key=lambda p: p.id)
        if not clinical.list_vitals(reader, p.id).items
        and not clinical.list_lab_results(reader, p.id).items
        and not clinical.list_clinical_notes(reader, p.id).items
    )
    for tab, message in (
        ("Vitals", "No vital signs"),
        ("Labs", "No lab results"),
        ("Notes", "No clinical notes"),
    ):
        at = open_clinical(clinic["admin"], patient=empty.id, tab=tab)
        assert any(message in i.value for i in at.info), tab
        assert not at.get("plotly_chart")


# --- writes --------------------------------------------------------------------------------------


def test_an_allergy_added_through_the_form_is_in_the_ehr(clinic, charted, reader):
    patient = charted[2]
    at = open_clinical(clinic["clinician"], patient=patient.id)
    at = fill_allergy(at, description="Zebulonium", reaction="Wheeze", severity="severe")
    assert not at.exception, at.exception
    assert "Allergy added." in texts(at.success)
    stored = [
        a
        for a in clinical.list_allergies(fresh(reader), patient.id).items
        if a.description == "Zebulonium"
    ]
    assert len(stored) == 1
    assert (stored[0].reaction, stored[0].notes) == ("Wheeze", "Severity: severe")
    assert "Zebulonium" in set(table(at, "Allergen")["Allergen"])
    assert at.text_input(key="clinical.add_allergy.description").value == "", "form emptied"
    at = fill_allergy(at, description="zebulonium", reaction="Wheeze")  # the same, again
    assert "This allergen is already on the patient's list." in texts(at.error)
    assert (
        len(
            [
                a
                for a in clinical.list_allergies(fresh(reader), patient.id).items
                if a.description == "Zebulonium"
            ]
        )
        == 1
    )


def test_a_form_missing_a_required_field_shows_an_error_and_sends_nothing(clinic, charted):
    patient = charted[2]
    at = open_clinical(clinic["clinician"], patient=patient.id)
    posts = requests_to("POST", "/api/allergies")
    creates = len(rows(action="CREATE"))
    at = fill_allergy(at, reaction="Hives")
    assert not at.exception, at.exception
    assert "Allergen is required." in texts(at.error)
    assert requests_to("POST", "/api/allergies") == posts
    assert len(rows(action="CREATE")) == creates
    assert at.text_input(key="clinical.add_allergy.reaction").value == "Hives", "input kept"


def test_a_status_change_sends_the_record_as_read(clinic, charted, reader):
    patient = charted[3]
    at = open_clinical(clinic["clinician"], patient=patient.id)
    at = fill_allergy(at, description="Quixotine", reaction="Rash")
    added = next(
        a
        for a in clinical.list_allergies(fresh(reader), patient.id).items
        if a.description == "Quixotine"
    )
    at.selectbox(key="clinical.status.allergy").set_value(added.id).run()
    at.selectbox(key="clinical.status.allergy.value").set_value(ClinicalStatus.INACTIVE).run()
    at.button(key="clinical.status.allergy.save").click().run()
    assert not at.exception, at.exception
    assert "The allergy is now inactive." in texts(at.success)
    now = next(
        a for a in clinical.list_allergies(fresh(reader), patient.id).items if a.id == added.id
    )
    assert now.status == ClinicalStatus.INACTIVE
    update = rows(user="clinician", action="UPDATE", resource_id=added.id)[-1]
    details = json.loads(update.details)
    assert (details["old_status"], details["new_status"]) == ("active", "inactive")


def test_a_record_changed_upstream_is_refused_with_a_reload_message(clinic, charted, reader):
    patient = charted[3]
    at = open_clinical(clinic["clinician"], patient=patient.id)
    at = fill_allergy(at, description="Rocinantol", reaction="Cough")
    added = next(
        a
        for a in clinical.list_allergies(fresh(reader), patient.id).items
        if a.description == "Rocinantol"
    )
    at.selectbox(key="clinical.status.allergy").set_value(added.id).run()
    at.selectbox(key="clinical.status.allergy.value").set_value(ClinicalStatus.INACTIVE).run()
    # Someone else marks it inactive after the page read it: the page's copy is now stale.
    clinical.update_allergy_status(reader, added.id, ClinicalStatus.INACTIVE, expected=added)
    patches = requests_to("PATCH", "/api/allergies")
    at.button(key="clinical.status.allergy.save").click().run()
    assert not at.exception, at.exception
    assert any("changed in the EHR" in w.value for w in at.warning)
    assert requests_to("PATCH", "/api/allergies") == patches, "nothing was sent"
    assert at.button(key="clinical.reload.allergy")


def test_a_status_the_ehr_cannot_record_is_refused_clearly(clinic, charted, reader):
    # The demo clinic is generated relative to today, so pick a charted patient with a medication.
    patient, medication = next(
        (p, meds[0]) for p in charted if (meds := clinical.list_medications(reader, p.id).items)
    )
    at = open_clinical(clinic["clinician"], patient=patient.id)
    # The control offers only supported statuses; another backend or a stale form could ask.
    at.session_state["clinical.pending"] = StatusChange(
        "medication", medication, ClinicalStatus.RESOLVED
    )
    at.run()
    assert not at.exception, at.exception
    assert any("cannot mark a medication as resolved" in e.value for e in at.error)
