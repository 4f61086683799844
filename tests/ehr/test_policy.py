"""The role policy against DESIGN.md section 5, cell by cell, and deny-by-default (AC-03)."""

from datetime import UTC, datetime

import pytest

from ehr import policy
from ehr.errors import PermissionDeniedError
from ehr.policy import (
    POLICY,
    READ_ACTIONS,
    Action,
    PermissionDenied,
    Principal,
    Role,
    authorize,
    authorize_export,
    is_allowed,
)
from storage.identity import UserInfo

# DESIGN.md section 5 typed out independently of ehr/policy.py, in the document's row order.
# Columns: admin, clinician, front_desk, billing.
DESIGN_TABLE = {
    Action.PATIENT_READ: (True, True, True, True),
    Action.PATIENT_WRITE: (True, True, True, False),
    Action.PATIENT_DELETE: (True, False, False, False),
    Action.APPOINTMENT_READ: (True, True, True, True),
    Action.APPOINTMENT_WRITE: (True, True, True, False),
    Action.CLINICAL_READ: (True, True, False, False),
    Action.CLINICAL_WRITE: (True, True, False, False),
    Action.BILLING_READ: (True, False, False, True),
    Action.SCHEDULE_ANALYTICS: (True, False, True, False),
    Action.EXPORT: (True, True, True, True),
    Action.ADMIN: (True, False, False, False),
}
COLUMNS = ("admin", "clinician", "front_desk", "billing")
MATRIX = [
    (role, action, row[i]) for action, row in DESIGN_TABLE.items() for i, role in enumerate(COLUMNS)
]


def _user(role="admin", active=True):
    return Principal(user_id=7, username="someone", role=role, is_active=active)


def test_the_table_covers_every_role_and_action():
    assert set(DESIGN_TABLE) == set(Action) == set(POLICY)
    assert set(COLUMNS) == {r.value for r in Role}
    assert len(MATRIX) == 44  # 11 actions x 4 roles


@pytest.mark.parametrize(("role", "action", "expected"), MATRIX)
def test_policy_matches_design_section_5(role, action, expected):
    user = _user(role)
    assert is_allowed(user, action) is expected
    assert is_allowed(user, action.value) is expected  # plain strings work the same
    if expected:
        authorize(user, action, "patient/42")
    else:
        with pytest.raises(PermissionDenied) as err:
            authorize(user, action, "patient/42")
        assert err.value.action == action.value
        assert err.value.resource == "patient/42"


@pytest.mark.parametrize("role", ["superuser", "", "ADMIN", "Admin", None, 1])
@pytest.mark.parametrize("action", list(Action))
def test_unknown_role_denies_everything(role, action):
    assert not is_allowed(_user(role), action)
    with pytest.raises(PermissionDenied):
        authorize(_user(role), action)


@pytest.mark.parametrize("action", ["patient.nuke", "", "PATIENT_READ", "admin ", None, 3])
def test_unknown_action_denies_even_for_admin(action):
    assert not is_allowed(_user("admin"), action)
    with pytest.raises(PermissionDenied) as err:
        authorize(_user("admin"), action)
    assert err.value.action == "unknown"  # the raw input is not echoed


@pytest.mark.parametrize("action", list(Action))
def test_inactive_user_denies_everything(action):
    assert not is_allowed(_user("admin", active=False), action)
    with pytest.raises(PermissionDenied):
        authorize(_user("admin", active=False), action)


@pytest.mark.parametrize("not_a_principal", [None, {"role": "admin", "is_active": True}, "admin"])
def test_anything_but_a_principal_denies(not_a_principal):
    assert not is_allowed(not_a_principal, Action.PATIENT_READ)
    with pytest.raises(PermissionDenied):
        authorize(not_a_principal, Action.PATIENT_READ)


def test_a_truthy_non_bool_active_flag_denies():
    assert not is_allowed(Principal(1, "x", "admin", is_active="yes"), Action.PATIENT_READ)


def test_an_exception_while_deciding_denies(monkeypatch):
    def broken(action, role):
        raise RuntimeError("policy store unavailable")

    monkeypatch.setattr(policy, "_lookup", broken)
    assert not is_allowed(_user("admin"), Action.PATIENT_READ)
    with pytest.raises(PermissionDenied):
        authorize(_user("admin"), Action.PATIENT_READ, "patient/1")
    with pytest.raises(PermissionDenied):
        authorize_export(_user("admin"), Action.PATIENT_READ)


def test_a_lookup_that_returns_a_non_bool_denies(monkeypatch):
    monkeypatch.setattr(policy, "_lookup", lambda action, role: "yes")
    assert not is_allowed(_user("admin"), Action.PATIENT_READ)


def test_the_policy_table_cannot_be_edited_at_runtime():
    with pytest.raises(TypeError):
        POLICY[Action.ADMIN] = frozenset(Role)  # type: ignore[index]


EXPORT_CASES = [
    (role, data_action, DESIGN_TABLE[data_action][i])
    for data_action in sorted(READ_ACTIONS)
    for i, role in enumerate(COLUMNS)
]


@pytest.mark.parametrize(("role", "data_action", "expected"), EXPORT_CASES)
def test_export_is_allowed_only_for_data_the_role_may_read(role, data_action, expected):
    if expected:
        authorize_export(_user(role), data_action)
    else:
        with pytest.raises(PermissionDenied) as err:
            authorize_export(_user(role), data_action, "report/billing-aging")
        assert err.value.action == "export"


@pytest.mark.parametrize(
    "data_action", [Action.PATIENT_WRITE, Action.ADMIN, Action.EXPORT, "bogus"]
)
def test_export_of_a_non_read_action_is_denied(data_action):
    with pytest.raises(PermissionDenied):
        authorize_export(_user("admin"), data_action)


def test_export_by_an_inactive_user_is_denied():
    with pytest.raises(PermissionDenied):
        authorize_export(_user("admin", active=False), Action.PATIENT_READ)


def test_permission_denied_shape():
    err = PermissionDenied("patient.delete", "patient/42" + "x" * 500)
    assert isinstance(err, PermissionDeniedError)  # one error tree: pages handle it like any
    assert err.code == "permission_denied"
    assert err.message == PermissionDeniedError.default_message
    assert len(err.resource) == policy.MAX_RESOURCE_TEXT
    assert err.to_dict()["details"] == {"action": "patient.delete", "resource": err.resource}
    assert str(err).startswith("permission denied: action=patient.delete resource=patient/42")


def test_principal_from_the_identity_read_model():
    now = datetime(2026, 3, 2, tzinfo=UTC)
    info = UserInfo(3, "bob", "billing", True, 0, None, now, now, now, False, False)
    principal = Principal.from_user(info)
    assert principal == Principal(3, "bob", "billing", True)
    assert is_allowed(principal, Action.BILLING_READ)
    assert not is_allowed(principal, Action.CLINICAL_READ)
