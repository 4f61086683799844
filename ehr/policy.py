"""The role policy: one table of role x action, and the one ``authorize`` check (SECURITY.md AC-03).

``POLICY`` is DESIGN.md section 5 transcribed row by row: each action maps to the roles allowed
to perform it. Anything not in the table is denied: an unknown role, an unknown action, an
inactive user, a malformed principal, and any exception raised while deciding. The service layer
calls ``authorize`` before every data function and writes the audit row (DENIED on
``PermissionDenied``); pages use ``is_allowed`` only to decide what to show in navigation, which
is a convenience, never the control.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from ehr.errors import PermissionDeniedError
from storage.identity import Role, UserInfo

__all__ = [
    "POLICY",
    "READ_ACTIONS",
    "Action",
    "PermissionDenied",
    "Principal",
    "Role",
    "authorize",
    "authorize_export",
    "is_allowed",
]

# A resource reference longer than this is cut in exception text (it should be "patient/42").
MAX_RESOURCE_TEXT = 100


class Action(StrEnum):
    """What a user asks to do; one member per row of DESIGN.md section 5."""

    PATIENT_READ = "patient.read"  # search and read demographics
    PATIENT_WRITE = "patient.write"  # create and update
    PATIENT_DELETE = "patient.delete"
    APPOINTMENT_READ = "appointment.read"
    APPOINTMENT_WRITE = "appointment.write"  # create, update, change status
    CLINICAL_READ = "clinical.read"
    CLINICAL_WRITE = "clinical.write"  # problems, allergies, medications
    BILLING_READ = "billing.read"  # including billing analytics
    SCHEDULE_ANALYTICS = "schedule.analytics"  # no-show, utilisation, lead time (issue 6)
    EXPORT = "export"  # with a stated purpose; see authorize_export
    ADMIN = "admin"  # settings, users, EHR connection, audit log


_ALL = frozenset(Role)

POLICY: Final[Mapping[Action, frozenset[Role]]] = MappingProxyType(
    {
        Action.PATIENT_READ: _ALL,
        Action.PATIENT_WRITE: frozenset({Role.ADMIN, Role.CLINICIAN, Role.FRONT_DESK}),
        Action.PATIENT_DELETE: frozenset({Role.ADMIN}),
        Action.APPOINTMENT_READ: _ALL,
        Action.APPOINTMENT_WRITE: frozenset({Role.ADMIN, Role.CLINICIAN, Role.FRONT_DESK}),
        Action.CLINICAL_READ: frozenset({Role.ADMIN, Role.CLINICIAN}),
        Action.CLINICAL_WRITE: frozenset({Role.ADMIN, Role.CLINICIAN}),
        Action.BILLING_READ: frozenset({Role.ADMIN, Role.BILLING}),
        Action.SCHEDULE_ANALYTICS: frozenset({Role.ADMIN, Role.FRONT_DESK}),
        Action.EXPORT: _ALL,
        Action.ADMIN: frozenset({Role.ADMIN}),
    }
)

# The data an export may contain: a role exports only what it may read.
READ_ACTIONS: Final = frozenset(
    {Action.PATIENT_READ, Action.APPOINTMENT_READ, Action.CLINICAL_READ, Action.BILLING_READ}
)


@dataclass(frozen=True)
class Principal:
    """Who is asking: the signed-in user as the policy sees them (no secrets, no PHI)."""

    user_id: int
    username: str
    role: str
    is_active: bool

    @classmethod
    def from_user(cls, user: UserInfo) -> Principal:
        """The principal for an account read from ``storage.identity``."""
        return cls(
            user_id=user.id, username=user.username, role=user.role, is_active=user.is_active
        )


class PermissionDenied(PermissionDeniedError):
    """The policy refused an action: the ``PermissionDeniedError`` of the error tree.

    Carries the action and a resource reference (an id such as ``patient/42``, never PHI) for
    the audit row, both also in ``details``; ``message`` is the tree's safe text.
    """

    def __init__(self, action: str, resource: str | None = None) -> None:
        self.action = action
        self.resource = resource[:MAX_RESOURCE_TEXT] if resource is not None else None
        details = {"action": self.action}
        if self.resource is not None:
            details["resource"] = self.resource
        super().__init__(details=details)

    def __str__(self) -> str:
        return f"permission denied: action={self.action} resource={self.resource}"


def _lookup(action: Action, role: Role) -> bool:
    """The table lookup, kept separate so a test can make it fail."""
    return role in POLICY[action]


def _decide(user: Principal, action: str | Action) -> bool:
    if not isinstance(user, Principal) or user.is_active is not True:
        return False
    return _lookup(Action(action), Role(user.role))


def is_allowed(user: Principal, action: str | Action) -> bool:
    """True when ``user`` may perform ``action``; False on any doubt (never raises)."""
    try:
        return _decide(user, action) is True
    except Exception:  # deny by default: a failure to decide is a denial (AC-03)
        return False


def _action_text(action: str | Action) -> str:
    # Only a known action name goes into exception text; arbitrary caller input does not.
    try:
        return Action(action).value
    except Exception:  # unknown or unhashable input
        return "unknown"


def authorize(user: Principal, action: str | Action, resource: str | None = None) -> None:
    """Return if ``user`` may perform ``action`` on ``resource``; else raise ``PermissionDenied``.

    The one choke point every service function calls first. ``resource`` is only carried into
    the exception for the audit row; the decision depends on role and action alone.
    """
    if not is_allowed(user, action):
        raise PermissionDenied(_action_text(action), resource)


def authorize_export(
    user: Principal, data_action: str | Action, resource: str | None = None
) -> None:
    """Allow an export of data guarded by ``data_action`` only if ``user`` may read that data.

    Needs both ``Action.EXPORT`` and ``data_action``, which must be one of ``READ_ACTIONS``
    (exporting a write or delete makes no sense). Raises ``PermissionDenied`` for ``EXPORT``.
    """
    try:
        allowed = (
            Action(data_action) in READ_ACTIONS
            and is_allowed(user, Action.EXPORT)
            and is_allowed(user, data_action)
        )
    except Exception:  # an unknown data action is a denial
        allowed = False
    if not allowed:
        raise PermissionDenied(Action.EXPORT.value, resource)
