"""Admin services: key rotation, forced token refresh, the demo sandbox's training controls.

Runs against the demo composition (``ui.wiring`` in demo mode: a real sandbox on loopback, the
EHR connected through the real OAuth consent flow), because these services act on exactly
those parts. Every call's audit rows are checked, refusals included.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ehr.errors import ConfigurationError, NotConnectedError
from ehr.policy import PermissionDenied
from ehr.services import accounts, admin
from ehr.services.admin import FaultChange, SandboxAdmin
from ehr.services.connection import current_connection
from ehr.services.gateway import Caller, Gateway
from storage import audit_report
from storage.crypto import Cipher
from storage.tokens import NeedsReconnect, load_tokens
from tests.pages.conftest import PASSWORD, caller_of, connect_demo_ehr, sign_in
from ui import wiring


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Caller]]:
    """A demo app with an admin and a clinician; the EHR not yet connected."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SANDBOX_PATIENTS", "30")
    for name in ("DATABASE_URL", "DRCHRONO_CLIENT_ID", "DRCHRONO_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    wiring.reset()
    store = wiring.account_store()
    accounts.create_first_admin(store, "admin", PASSWORD)
    first = caller_of(sign_in("admin"))
    accounts.create_user(store, first, "clin", PASSWORD, "clinician")
    yield {"admin": first, "clinician": caller_of(sign_in("clin"))}
    wiring.reset()


def rows(action: str) -> list:
    return audit_report.query(wiring.app_engine(), action=action)


def gateway(caller: Caller) -> Gateway:
    return wiring.new_gateway(caller)


def sandbox() -> SandboxAdmin:
    found = wiring.sandbox_admin()
    assert found is not None
    return found


# ----------------------------------------------------------------------------- key rotation


def test_rotation_reencrypts_under_a_new_first_key_and_is_audited(demo) -> None:
    connect_demo_ehr(sign_in("admin"))
    old_keys = wiring.app_settings().token_keys
    new_key = Fernet.generate_key()
    connector = dataclasses.replace(wiring.connector(), cipher=Cipher([new_key, *old_keys]))
    count = admin.rotate_token_keys(connector, demo["admin"])
    assert count >= 2  # the access and the refresh token
    status = current_connection(connector)
    assert status is not None
    tokens = load_tokens(wiring.app_engine(), Cipher([new_key]), status.connection_id)
    assert not isinstance(tokens, NeedsReconnect)  # readable with the new key alone
    requested, done = rows("KEY_ROTATION")
    assert json.loads(requested.details) == {"stage": "requested"}
    assert (done.username, json.loads(done.details)["reencrypted"]) == ("admin", count)


def test_rotation_is_refused_to_other_roles(demo) -> None:
    with pytest.raises(PermissionDenied):
        admin.rotate_token_keys(wiring.connector(), demo["clinician"])
    (row,) = rows("KEY_ROTATION")
    assert (row.outcome, row.username) == ("DENIED", "clin")


# ----------------------------------------------------------------------------- token refresh


def test_refresh_now_gets_a_new_token_and_names_the_admin(demo) -> None:
    connect_demo_ehr(sign_in("admin"))
    connector = wiring.connector()
    before = current_connection(connector)
    assert before is not None
    assert before.last_refreshed_at is None
    expires = admin.force_token_refresh(connector, demo["admin"])
    after = current_connection(connector)
    assert after is not None
    assert after.last_refreshed_at is not None
    assert expires == after.expires_at
    (row,) = rows("TOKEN_REFRESHED")
    assert (row.outcome, row.username) == ("SUCCESS", "admin")


def test_refresh_now_is_refused_to_other_roles_and_needs_a_connection(demo) -> None:
    with pytest.raises(NotConnectedError):
        admin.force_token_refresh(wiring.connector(), demo["admin"])
    connect_demo_ehr(sign_in("admin"))
    with pytest.raises(PermissionDenied):
        admin.force_token_refresh(wiring.connector(), demo["clinician"])
    status = current_connection(wiring.connector())
    assert status is not None
    assert status.last_refreshed_at is None
    assert [(r.outcome, r.username) for r in rows("TOKEN_REFRESHED")] == [("DENIED", "clin")]


# ----------------------------------------------------------------------------- demo sandbox


def test_fault_changes_reach_the_sandbox_and_are_audited(demo) -> None:
    gw = gateway(demo["admin"])
    assert not admin.sandbox_faults(gw, sandbox()).any_active
    state = admin.set_sandbox_faults(
        gw,
        sandbox(),
        FaultChange(latency_ms=200, error_rate=0.5, error_status=502, throttle_next=3),
    )
    assert (state.latency_ms, state.error_status, state.error_rate, state.throttle_next) == (
        200,
        502,
        0.5,
        3,
    )
    server = wiring.demo_sandbox()
    assert server is not None
    live = server.faults.settings()
    assert (live.error_502_rate, live.error_503_rate, live.throttle_next) == (0.5, 0.0, 3)
    cleared = admin.set_sandbox_faults(gw, sandbox(), FaultChange(clear_first=True))
    assert not cleared.any_active
    updates = [r for r in rows("UPDATE") if r.resource_type == "sandbox_faults"]
    assert [json.loads(r.details).get("stage") for r in updates] == [
        "requested",
        None,
        "requested",
        None,
    ]
    assert json.loads(updates[1].details)["error_status"] == 502


def test_reset_data_answers_the_new_generation(demo) -> None:
    gw = gateway(demo["admin"])
    first = admin.reset_sandbox_data(gw, sandbox())
    assert admin.reset_sandbox_data(gw, sandbox()) == first + 1


def test_sandbox_controls_are_refused_to_other_roles(demo) -> None:
    gw = gateway(demo["clinician"])
    with pytest.raises(PermissionDenied):
        admin.set_sandbox_faults(gw, sandbox(), FaultChange(error_rate=1.0))
    server = wiring.demo_sandbox()
    assert server is not None
    assert server.faults.settings().error_503_rate == 0.0
    (row,) = rows("UPDATE")
    assert (row.outcome, row.resource_type) == ("DENIED", "sandbox_faults")


def test_a_wrong_admin_key_is_a_configuration_error(demo) -> None:
    wrong = SandboxAdmin(sandbox().base_url, "not-the-key")
    with pytest.raises(ConfigurationError):
        admin.sandbox_faults(gateway(demo["admin"]), wrong)
    (row,) = rows("READ")
    assert (row.outcome, json.loads(row.details)["error"]) == ("ERROR", "configuration")


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:8000", "http://sandbox.example.com", "ftp://127.0.0.1", "https://"]
)
def test_the_admin_key_is_never_sent_in_clear_off_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        SandboxAdmin(url, "key")
    assert SandboxAdmin("http://127.0.0.1:9", "key").url("/x") == "http://127.0.0.1:9/x"
    assert "s3cr3t" not in repr(SandboxAdmin("https://sandbox.example.com", "s3cr3t-admin"))


def test_fault_changes_are_checked_before_anything_is_sent() -> None:
    change = FaultChange(latency_ms=-1, error_rate=1.5, throttle_next=10**6)
    assert set(change.problems()) == {"latency_ms", "error_rate", "throttle_next"}
    assert FaultChange(error_rate=0.2, error_status=500).payload() == {
        "error_500_rate": 0.2,
        "error_502_rate": 0.0,
        "error_503_rate": 0.0,
    }
