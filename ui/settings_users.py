"""The Settings page's users tab: the accounts table, and forms to add an account, change its
role, reset its password and disable or enable it. Every change is audited by
``ehr.services.accounts``."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Final, Protocol

import pandas as pd
import streamlit as st

from ehr.policy import Role
from ehr.services import accounts
from ehr.services.accounts import AccountError
from ehr.services.gateway import Caller
from ui import wiring
from ui.settings_view import confirmed_button, flash_and_rerun, local_time, show_problems

__all__ = ["users_section"]

ROLE_LABELS: Final[dict[str, str]] = {
    Role.ADMIN: "Administrator",
    Role.CLINICIAN: "Clinician",
    Role.FRONT_DESK: "Front desk",
    Role.BILLING: "Billing",
}
MAX_USERNAME_CHARS: Final = 64
MIN_PASSWORD_CHARS: Final = 12
MAX_PASSWORD_CHARS: Final = 128


def _bad_text(value: str, limit: int) -> bool:
    """Empty, too long, or holding control/format characters (RTL overrides, NUL...)."""
    return (
        not value.strip()
        or len(value) > limit
        or any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in value)
    )


class _Account(Protocol):
    """What the users table needs of an account (``accounts.list_users`` items)."""

    @property
    def id(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def locked_until(self) -> datetime | None: ...
    @property
    def password_changed_at(self) -> datetime: ...
    def is_locked(self, now: datetime) -> bool: ...


def _users_frame(users: Sequence[_Account], tz: tzinfo) -> pd.DataFrame:
    now = datetime.now(tz)
    return pd.DataFrame(
        [
            {
                "Username": u.username,
                "Role": ROLE_LABELS.get(u.role, u.role),
                "Active": u.is_active,
                "Locked until": local_time(u.locked_until, tz, "") if u.is_locked(now) else "",
                "Password changed": local_time(u.password_changed_at, tz),
            }
            for u in users
        ]
    )


def _password_problems(password: str, confirm: str) -> list[str]:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        return [f"Use {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters for the password."]
    if password != confirm:
        return ["The two passwords differ."]
    return []


def _role_select(label: str, key: str, current: str = Role.FRONT_DESK) -> str:
    roles = list(ROLE_LABELS)
    chosen = st.selectbox(
        label, roles, index=roles.index(current), format_func=lambda r: ROLE_LABELS[r], key=key
    )
    return str(chosen)


def _create_user_form(caller: Caller) -> None:
    st.subheader("Add a user")
    with st.form("settings.create_user", clear_on_submit=True):
        username = st.text_input(
            "Username", max_chars=MAX_USERNAME_CHARS, key="settings.create_user.username"
        )
        role = _role_select("Role", "settings.create_user.role")
        password = st.text_input(
            "Password",
            type="password",
            max_chars=MAX_PASSWORD_CHARS,
            key="settings.create_user.password",
        )
        confirm = st.text_input(
            "Repeat the password", type="password", key="settings.create_user.confirm"
        )
        st.caption(f"At least {MIN_PASSWORD_CHARS} characters; common passwords are refused.")
        submitted = st.form_submit_button("Create user", type="primary")
    if not submitted:
        return
    problems = (
        ["Enter a username (letters, digits, spaces, . _ - @ + ')."]
        if _bad_text(username, MAX_USERNAME_CHARS)
        else []
    )
    problems += _password_problems(password, confirm)
    if problems:
        show_problems(problems)
        return
    try:
        user = accounts.create_user(wiring.account_store(), caller, username, password, role)
    except AccountError as exc:
        st.error(exc.message)
        return
    flash_and_rerun(f"Created {user.username} ({ROLE_LABELS.get(user.role, user.role)}).")


def _manage_user(caller: Caller, users: Sequence[_Account]) -> None:
    st.subheader("Change an account")
    by_id = {u.id: u for u in users}
    chosen = st.selectbox(
        "Account",
        list(by_id),
        format_func=lambda uid: f"{by_id[uid].username} · {ROLE_LABELS.get(by_id[uid].role, '')}",
        key="settings.user",
    )
    if chosen is None:
        return
    user = by_id[chosen]
    store = wiring.account_store()
    with st.form("settings.change_role"):
        role = _role_select("New role", f"settings.role.{user.id}", user.role)
        change = st.form_submit_button("Change role")
    if change:
        try:
            updated = accounts.change_role(store, caller, user.id, role)
        except AccountError as exc:
            st.error(exc.message)
        else:
            label = ROLE_LABELS.get(updated.role, updated.role)
            flash_and_rerun(f"{updated.username} is now {label}; their sessions were ended.")
    with st.form("settings.reset_password", clear_on_submit=True):
        password = st.text_input("New password", type="password", max_chars=MAX_PASSWORD_CHARS)
        confirm = st.text_input("Repeat the new password", type="password")
        reset = st.form_submit_button("Reset password")
    if reset:
        problems = _password_problems(password, confirm)
        try:
            if not problems:
                accounts.reset_password(store, caller, user.id, password)
                flash_and_rerun(f"Password of {user.username} reset; their sessions were ended.")
        except AccountError as exc:
            problems = [exc.message]
        show_problems(problems)
    if user.id == caller.principal.user_id:
        st.caption("You cannot disable your own account; another administrator can.")
    else:
        _active_toggle(caller, user)


def _active_toggle(caller: Caller, user: _Account) -> None:
    store = wiring.account_store()
    try:
        if user.is_active:
            if confirmed_button(
                "Disable account",
                f"Yes, disable {user.username} and end their sessions",
                f"settings.disable.{user.id}",
            ):
                accounts.set_active(store, caller, user.id, False)
                flash_and_rerun(f"{user.username} is disabled and signed out.")
        elif st.button("Enable account", key=f"settings.enable.{user.id}"):
            accounts.set_active(store, caller, user.id, True)
            flash_and_rerun(f"{user.username} can sign in again.")
    except AccountError as exc:
        st.error(exc.message)


def users_section(caller: Caller, tz: tzinfo) -> None:
    """The accounts table, then forms to add, re-role, reset and disable or enable accounts."""
    users = accounts.list_users(wiring.account_store(), caller)
    st.dataframe(_users_frame(users, tz), hide_index=True)
    st.caption("Every change is written to the audit log with the old and new value.")
    left, right = st.columns(2, gap="large")
    with left:
        _create_user_form(caller)
    with right:
        _manage_user(caller, users)
