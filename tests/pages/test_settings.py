"""Settings page: admin only; connection, users, audit log, key rotation, demo training faults.

Each test opens the page through Home.py as a signed-in user (see conftest.py). Tabs run only
while open, so a test picks its tab through the tab widget's session-state key before running.
Outcomes are checked in the database: the audit rows written and the accounts changed.
"""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from ehr.services import accounts
from storage import audit_report
from tests.pages.conftest import caller_of, sign_in
from ui import wiring

SETTINGS = "pages/settings.py"
TAB_KEY = "settings.tab"


def open_tab(open_app, session, tab: str | None = None) -> AppTest:
    at = open_app(session, SETTINGS)
    if tab is not None:
        at.session_state[TAB_KEY] = tab
        at.run()
    assert not at.exception, at.exception
    return at


def rows(resource_type: str | None = None, **filters):
    found = audit_report.query(wiring.app_engine(), **filters)
    return [r for r in found if resource_type is None or r.resource_type == resource_type]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def user_named(name: str):
    admin = caller_of(sign_in("admin"))
    return next(u for u in accounts.list_users(wiring.account_store(), admin) if u.username == name)


def submit(at: AppTest, label: str) -> AppTest:
    """Click the form submit button labelled ``label`` and rerun."""
    return next(b for b in at.button if b.label == label).click().run()


# ----------------------------------------------------------------------------- access


def test_the_admin_sees_every_section_and_the_ehr_state(users, open_app):
    at = open_tab(open_app, users["admin"])
    assert at.title[0].value == "Settings"
    assert [t.label for t in at.tabs] == [
        "EHR connection",
        "Users and roles",
        "Audit log",
        "Security",
        "Demo sandbox",
    ]
    assert any("Not connected" in m.value for m in at.markdown)
    assert not rows(resource_type="audit_log")  # the audit tab was not opened: no READ row


@pytest.mark.parametrize("role", ["clinician", "front_desk", "billing"])
def test_every_other_role_is_refused_and_the_refusal_is_audited(users, open_app, role):
    at = open_tab(open_app, users[role])
    assert any("does not allow" in e.value for e in at.error)
    assert not at.tabs
    denied = rows(outcome="DENIED", resource_id="settings")
    assert [(r.username, r.role, r.resource_type) for r in denied] == [
        (role.replace("_", ""), role, "page")
    ]


# ----------------------------------------------------------------------------- users


def test_an_admin_creates_a_user_through_the_form(users, open_app):
    at = open_tab(open_app, users["admin"], "Users and roles")
    at.text_input(key="settings.create_user.username").input("Grace Hopper")
    at.selectbox(key="settings.create_user.role").set_value("clinician")
    at.text_input(key="settings.create_user.password").input("a long enough passphrase 7")
    at.text_input(key="settings.create_user.confirm").input("a long enough passphrase 7")
    submit(at, "Create user")
    assert not at.exception, at.exception
    assert any("Created Grace Hopper" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert "Grace Hopper" in set(table["Username"])
    created = rows(action="PRIVILEGE_CHANGE", outcome="SUCCESS")[-1]
    assert created.username == "admin"
    assert "clinician" in created.details


def test_the_create_form_validates_before_anything_is_saved(users, open_app):
    at = open_tab(open_app, users["admin"], "Users and roles")
    before = len(rows())
    at.text_input(key="settings.create_user.username").input("ada")
    at.text_input(key="settings.create_user.password").input("a long enough passphrase 7")
    at.text_input(key="settings.create_user.confirm").input("a different passphrase 77")
    submit(at, "Create user")
    assert "The two passwords differ." in texts(at.error)
    assert len(rows()) == before
    # A duplicate username reaches the service, which refuses with a message for the form.
    at.text_input(key="settings.create_user.username").input("Admin")
    at.text_input(key="settings.create_user.password").input("a long enough passphrase 7")
    at.text_input(key="settings.create_user.confirm").input("a long enough passphrase 7")
    submit(at, "Create user")
    assert not at.exception
    assert at.error, "the AccountError message is shown under the form"
    assert all(
        u.username != "ada"
        for u in accounts.list_users(wiring.account_store(), caller_of(sign_in("admin")))
    )


def test_an_admin_changes_a_role_and_the_change_is_audited_old_to_new(users, open_app):
    at = open_tab(open_app, users["admin"], "Users and roles")
    target = user_named("frontdesk")
    at.selectbox(key="settings.user").set_value(target.id).run()
    at.selectbox(key=f"settings.role.{target.id}").set_value("billing")
    submit(at, "Change role")
    assert not at.exception, at.exception
    assert user_named("frontdesk").role == "billing"
    change = rows(action="PRIVILEGE_CHANGE", resource_id=str(target.id))[-1]
    details = json.loads(change.details)
    assert (details["old"], details["new"]) == ("front_desk", "billing")


def test_disabling_needs_a_confirmation(users, open_app):
    at = open_tab(open_app, users["admin"], "Users and roles")
    target = user_named("billing")
    at.selectbox(key="settings.user").set_value(target.id).run()
    button = at.button(key=f"settings.disable.{target.id}")
    assert button.disabled
    at.checkbox(key=f"settings.disable.{target.id}.confirm").check().run()
    at.button(key=f"settings.disable.{target.id}").click().run()
    assert not at.exception, at.exception
    assert not user_named("billing").is_active
    assert any("disabled" in s.value for s in at.success)


# ----------------------------------------------------------------------------- audit log


def test_viewing_the_audit_log_is_audited_and_filters_narrow_the_table(users, open_app):
    at = open_tab(open_app, users["admin"], "Audit log")
    everything = at.dataframe[0].value
    assert len(everything) > 3
    viewed = rows(resource_type="audit_log", action="READ")
    assert [r.username for r in viewed] == ["admin"]
    at.selectbox(key="settings.audit.action").set_value("PRIVILEGE_CHANGE")
    submit(at, "Apply filters")
    narrowed = at.dataframe[0].value
    assert 0 < len(narrowed) < len(everything)
    assert set(narrowed["Action"]) == {"PRIVILEGE_CHANGE"}
    last_view = rows(resource_type="audit_log", action="READ")[-1]
    assert json.loads(last_view.details)["filters"] == ["action", "since", "until"]
    at.text_input(key="settings.audit.patient").input("no-such-patient")
    submit(at, "Apply filters")
    assert any("No audit rows match" in i.value for i in at.info)


def test_export_requires_a_purpose_and_writes_an_export_row(users, open_app):
    at = open_tab(open_app, users["admin"], "Audit log")
    at.text_area(key="settings.export.statement").input("too short")
    submit(at, "Prepare CSV export")
    assert any("at least 10 characters" in e.value for e in at.error)
    assert not rows(action="EXPORT")
    statement = "Quarterly access review for the compliance officer"
    at.selectbox(key="settings.export.category").set_value("compliance_review")
    at.text_area(key="settings.export.statement").input(statement)
    submit(at, "Prepare CSV export")
    assert not at.exception, at.exception
    downloads = at.get("download_button")
    assert downloads
    assert "Download" in downloads[0].proto.label
    (export,) = rows(action="EXPORT")
    details = json.loads(export.details)
    assert details["purpose_category"] == "compliance_review"
    assert details["purpose_chars"] == len(statement)
    assert details["rows"] > 0
    assert "compliance officer" not in export.details  # the free text is never stored


def test_the_integrity_check_reports_ok(users, open_app):
    at = open_tab(open_app, users["admin"], "Audit log")
    at.button(key="settings.verify").click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("OK: the audit log is intact") for s in at.success)
    (check,) = rows(action="AUDIT_VERIFY")
    assert json.loads(check.details)["ok"] is True


# ----------------------------------------------------------------------------- connection


def test_disconnect_needs_confirmation_then_the_status_shows_not_connected(connected, open_app):
    at = open_tab(open_app, connected["admin"])
    assert any("Connected" in m.value for m in at.markdown)
    assert at.button(key="settings.disconnect").disabled
    at.checkbox(key="settings.disconnect.confirm").check().run()
    at.button(key="settings.disconnect").click().run()
    assert not at.exception, at.exception
    assert any("Disconnected" in m.value for m in [*at.success, *at.warning])
    assert any("Not connected" in m.value for m in at.markdown)
    assert rows(action="EHR_DISCONNECT", outcome="SUCCESS")


def test_refresh_now_refreshes_the_token_and_names_the_admin(connected, open_app):
    at = open_tab(open_app, connected["admin"])
    at.button(key="settings.refresh").click().run()
    assert not at.exception, at.exception
    assert any("Access token refreshed" in s.value for s in at.success)
    (refreshed,) = rows(action="TOKEN_REFRESHED", outcome="SUCCESS")
    assert refreshed.username == "admin"


# ----------------------------------------------------------------------------- security, demo


def test_key_rotation_needs_confirmation_and_is_audited(connected, open_app):
    at = open_tab(open_app, connected["admin"], "Security")
    at.checkbox(key="settings.rotate.confirm").check().run()
    at.button(key="settings.rotate").click().run()
    assert not at.exception, at.exception
    assert any("Re-encrypted" in s.value for s in at.success)
    outcome = rows(action="KEY_ROTATION")[-1]
    assert json.loads(outcome.details)["reencrypted"] >= 2  # access and refresh token at least


def test_a_demo_fault_makes_reads_fail_with_the_friendly_error(connected, open_app):
    at = open_tab(open_app, connected["admin"], "Demo sandbox")
    assert any("No faults" in i.value for i in at.info)
    probability = next(s for s in at.slider if s.label.startswith("Requests failing"))
    probability.set_value(100)
    submit(at, "Apply faults")
    assert not at.exception, at.exception
    assert any("fail with 503" in w.value for w in at.warning)
    home = open_app(connected["front_desk"])
    assert not home.exception, home.exception
    assert any("unavailable" in w.value for w in home.warning)
    at.button(key="settings.faults.clear").click().run()
    assert any("No faults" in i.value for i in at.info)
    changes = rows(resource_type="sandbox_faults", action="UPDATE", outcome="SUCCESS")
    assert any(json.loads(r.details).get("error_rate") == 1.0 for r in changes)
