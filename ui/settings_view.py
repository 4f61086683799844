"""The sections of the Settings page (admins only): EHR connection, users, audit log, security,
and in demo mode the sandbox's training controls.

Each ``*_section`` reads through ``ehr.services`` and renders one tab. Actions follow one
pattern: validate the form first (nothing is sent while a field is wrong), call the service,
then keep a one-line confirmation in ``st.session_state`` and rerun, so the status shown above
the buttons is read again after the change. Refusals and EHR errors are shown by the page's
``guarded`` block; ``AccountError`` messages are safe by contract and are shown under the form
that caused them. Text from users or upstream is rendered with ``st.text``/data frames, never
as Markdown.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Final, Literal, Protocol, cast

import pandas as pd
import streamlit as st

from ehr.policy import Role
from ehr.services import accounts, admin, audit_log, connection
from ehr.services.accounts import AccountError
from ehr.services.admin import ERROR_STATUSES, FaultChange, SandboxAdmin
from ehr.services.audit_log import AuditFilter, ChainCheck, ExportPurpose, PurposeCategory
from ehr.services.connection import ConnectionSummary
from ehr.services.gateway import Caller, Gateway
from ui import wiring
from ui.components import nav_link

__all__ = [
    "audit_section",
    "connection_section",
    "sandbox_section",
    "security_section",
    "show_flash",
    "users_section",
]

CONNECT_PATH: Final = "/ehr-auth/connect"
ROLE_LABELS: Final[dict[str, str]] = {
    Role.ADMIN: "Administrator",
    Role.CLINICIAN: "Clinician",
    Role.FRONT_DESK: "Front desk",
    Role.BILLING: "Billing",
}
STATE_LABELS: Final = {
    "connected": ":green-badge[:material/link: Connected]",
    "needs_reconnect": ":orange-badge[:material/link_off: Needs reconnecting]",
    "not_connected": ":gray-badge[:material/link_off: Not connected]",
}
# Why a connection needs reconnecting, in words (codes from ehr.tokens / storage.tokens).
REAUTH_REASONS: Final = {
    "invalid_grant": "DrChrono no longer accepts the refresh token (revoked or expired).",
    "no_refresh_token": "DrChrono issued no refresh token, so the access could not be renewed.",
    "token_decrypt_failed": "The stored tokens cannot be decrypted (an encryption key was removed).",
    "disconnected": "The EHR was disconnected.",
}
SORT_LABELS: Final = {
    "seq": "Sequence",
    "ts_utc": "Time",
    "username": "User",
    "role": "Role",
    "action": "Action",
    "outcome": "Outcome",
    "resource_type": "Resource type",
    "resource_id": "Resource id",
    "patient_id": "Patient id",
    "data_category": "Data category",
    "client_ip": "Client IP",
    "correlation_id": "Reference",
    "break_glass": "Break-glass",
    "user_id": "User id",
}
# The audit viewer opens on the last week: recent enough to be small, long enough to be useful.
DEFAULT_AUDIT_DAYS: Final = 7
MAX_USERNAME_CHARS: Final = 64
MIN_PASSWORD_CHARS: Final = 12
MAX_PASSWORD_CHARS: Final = 128
MAX_LATENCY_SLIDER_MS: Final = 5000
ANY: Final = "Any"

_FLASH_KEY: Final = "settings.flash"
_CHECK_KEY: Final = "settings.chain_check"
FlashKind = Literal["success", "warning"]


# ----------------------------------------------------------------------------- shared bits


def _flash_and_rerun(text: str, kind: FlashKind = "success") -> None:
    st.session_state[_FLASH_KEY] = (kind, text)
    st.rerun()


def show_flash() -> None:
    """Show (once) the confirmation left by the action of the previous run."""
    flash = st.session_state.pop(_FLASH_KEY, None)
    if not flash:
        return
    kind, text = flash
    (st.success if kind == "success" else st.warning)(text)


def _local(value: datetime | None, tz: tzinfo, empty: str = "—") -> str:
    return empty if value is None else f"{value.astimezone(tz):%d %b %Y %H:%M}"


def _bad_text(value: str, limit: int) -> bool:
    """Empty, too long, or holding control/format characters (RTL overrides, NUL...)."""
    return (
        not value.strip()
        or len(value) > limit
        or any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in value)
    )


def _confirmed_button(label: str, confirm: str, key: str) -> bool:
    """A destructive button that stays disabled until its confirmation box is ticked."""
    sure = st.checkbox(confirm, key=f"{key}.confirm")
    return st.button(label, key=key, disabled=not sure, type="primary")


# ----------------------------------------------------------------------------- EHR connection


def _facts(summary: ConnectionSummary, tz: tzinfo) -> pd.DataFrame:
    refreshed = _local(summary.last_refreshed_at, tz, "not yet (since connecting)")
    rows = [
        ("Practice group", summary.practice_group or "—"),
        ("DrChrono user", summary.ehr_username or "—"),
        ("Connected", _local(summary.connected_at, tz)),
        ("Granted scopes", ", ".join(summary.scopes) or "—"),
        ("Access token valid until", _local(summary.expires_at, tz)),
        ("Last token refresh", refreshed),
    ]
    return pd.DataFrame(rows, columns=["Detail", "Value"])


def _budget(summary: ConnectionSummary, tz: tzinfo) -> None:
    used, limit = summary.calls_this_hour, max(summary.calls_per_hour, 1)
    st.subheader("Hourly API budget")
    st.progress(min(used / limit, 1.0), text=f"{used} of {limit} requests used this hour")
    if summary.budget_resets_at is not None:
        st.caption(
            f"The budget resets at {summary.budget_resets_at.astimezone(tz):%H:%M}. DrChrono "
            "allows 500 calls an hour per app, shared by every user of this connection."
        )


def connection_section(caller: Caller, tz: tzinfo) -> None:
    """Status, tokens' lifetime (never a token), budget, and connect / refresh / disconnect."""
    connector = wiring.connector()
    summary = connection.connection_summary(connector)
    st.markdown(f"**State:** {STATE_LABELS[summary.state]}")
    if summary.state == "not_connected":
        st.info("No EHR is connected. Connecting opens DrChrono's consent page.")
        nav_link("Connect the EHR", CONNECT_PATH)  # same tab: the OAuth round trip returns here
        _budget(summary, tz)
        return
    if summary.state == "needs_reconnect":
        reason = REAUTH_REASONS.get(summary.reauth_reason or "", "The access was refused.")
        st.warning(f"The EHR must be reconnected. {reason}")
    st.dataframe(
        _facts(summary, tz),
        hide_index=True,
        column_config={
            "Detail": st.column_config.TextColumn(width="medium"),
            "Value": st.column_config.TextColumn(width="large"),
        },
    )
    if summary.missing_scopes:
        st.warning(
            "DrChrono did not grant these scopes; features that need them will be refused: "
            + ", ".join(summary.missing_scopes)
        )
    st.caption(
        f"Times in the practice time zone ({tz}). The access token is refreshed automatically "
        "shortly before it expires."
    )
    buttons = st.container(horizontal=True)
    with buttons:
        nav_link("Reconnect", CONNECT_PATH, primary=False)
    if summary.state == "connected" and buttons.button(
        "Refresh token now", key="settings.refresh", icon=":material/refresh:"
    ):
        with st.spinner("Refreshing the access token…"):
            expires = admin.force_token_refresh(connector, caller)
        _flash_and_rerun(f"Access token refreshed; valid until {_local(expires, tz)}.")
    _budget(summary, tz)
    st.subheader("Disconnect")
    st.caption(
        "Revokes the app's access at DrChrono and deletes the stored tokens. Every page stops "
        "reading the EHR until an administrator connects it again."
    )
    if _confirmed_button(
        "Disconnect the EHR",
        "Yes, disconnect the EHR for every user",
        "settings.disconnect",
    ):
        with st.spinner("Revoking access at DrChrono…"):
            confirmed = connection.disconnect(connector, caller)
        if confirmed:
            _flash_and_rerun("Disconnected. DrChrono confirmed the revocation.")
        _flash_and_rerun(
            "Disconnected here, but DrChrono did not confirm the revocation. Remove the app's "
            "access in DrChrono's account settings as well.",
            "warning",
        )


# ----------------------------------------------------------------------------- users


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
                "Locked until": _local(u.locked_until, tz, "") if u.is_locked(now) else "",
                "Password changed": _local(u.password_changed_at, tz),
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


def _show_problems(problems: Sequence[str]) -> None:
    for problem in problems:
        st.error(problem)


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
        _show_problems(problems)
        return
    try:
        user = accounts.create_user(wiring.account_store(), caller, username, password, role)
    except AccountError as exc:
        st.error(exc.message)
        return
    _flash_and_rerun(f"Created {user.username} ({ROLE_LABELS.get(user.role, user.role)}).")


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
            _flash_and_rerun(f"{updated.username} is now {label}; their sessions were ended.")
    with st.form("settings.reset_password", clear_on_submit=True):
        password = st.text_input("New password", type="password", max_chars=MAX_PASSWORD_CHARS)
        confirm = st.text_input("Repeat the new password", type="password")
        reset = st.form_submit_button("Reset password")
    if reset:
        problems = _password_problems(password, confirm)
        try:
            if not problems:
                accounts.reset_password(store, caller, user.id, password)
                _flash_and_rerun(f"Password of {user.username} reset; their sessions were ended.")
        except AccountError as exc:
            problems = [exc.message]
        _show_problems(problems)
    if user.id == caller.principal.user_id:
        st.caption("You cannot disable your own account; another administrator can.")
    else:
        _active_toggle(caller, user)


def _active_toggle(caller: Caller, user: _Account) -> None:
    store = wiring.account_store()
    try:
        if user.is_active:
            if _confirmed_button(
                "Disable account",
                f"Yes, disable {user.username} and end their sessions",
                f"settings.disable.{user.id}",
            ):
                accounts.set_active(store, caller, user.id, False)
                _flash_and_rerun(f"{user.username} is disabled and signed out.")
        elif st.button("Enable account", key=f"settings.enable.{user.id}"):
            accounts.set_active(store, caller, user.id, True)
            _flash_and_rerun(f"{user.username} can sign in again.")
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


# ----------------------------------------------------------------------------- audit log


def _day_range(value: object, tz: tzinfo) -> tuple[datetime, datetime] | None:
    """``[first day 00:00, day after the last 00:00)`` in the practice time zone."""
    days = [d for d in (value if isinstance(value, tuple | list) else (value,)) if d]
    if not days or not all(isinstance(d, date) for d in days):
        return None
    first, last = days[0], days[-1]
    return (
        datetime.combine(first, time.min, tzinfo=tz),
        datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz),
    )


def _optional(value: str) -> str | None:
    return value.strip() or None


def _audit_filters(tz: tzinfo) -> tuple[AuditFilter, str, bool] | None:
    today = datetime.now(tz).date()
    with st.form("settings.audit_filters"):
        row1 = st.columns([2, 1, 1, 1])
        dates = row1[0].date_input(
            "Dates",
            value=(today - timedelta(days=DEFAULT_AUDIT_DAYS - 1), today),
            max_value=today,
            key="settings.audit.dates",
        )
        action = row1[1].selectbox("Action", [ANY, *audit_log.ACTIONS], key="settings.audit.action")
        outcome = row1[2].selectbox(
            "Outcome", [ANY, *audit_log.OUTCOMES], key="settings.audit.outcome"
        )
        username = row1[3].text_input("User", key="settings.audit.user", max_chars=64)
        row2 = st.columns([1, 1, 1, 1])
        resource_id = row2[0].text_input("Resource id", key="settings.audit.resource", max_chars=64)
        patient_id = row2[1].text_input("Patient id", key="settings.audit.patient", max_chars=64)
        order_by = row2[2].selectbox(
            "Sort by", list(audit_log.SORT_COLUMNS), format_func=lambda c: SORT_LABELS.get(c, c),
            key="settings.audit.sort",
        )  # fmt: skip
        descending = row2[3].toggle("Descending", value=True, key="settings.audit.desc")
        st.form_submit_button("Apply filters", icon=":material/filter_list:")
    span = _day_range(dates, tz)
    if span is None:
        st.error("Choose a start and an end date.")
        return None
    filters = AuditFilter(
        since=span[0],
        until=span[1],
        username=_optional(username),
        action=None if action == ANY else action,
        outcome=None if outcome == ANY else outcome,
        resource_id=_optional(resource_id),
        patient_id=_optional(patient_id),
    )
    problems = filters.problems()
    if problems:
        _show_problems([f"{SORT_LABELS.get(k, k).capitalize()}: {v}" for k, v in problems.items()])
        return None
    return filters, str(order_by), bool(descending)


def _audit_frame(page: audit_log.AuditPage, tz: tzinfo) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Seq": e.seq,
                "Time": e.ts_utc.astimezone(tz).replace(tzinfo=None),
                "User": e.username or "",
                "Role": e.role or "",
                "Action": e.action,
                "Outcome": e.outcome,
                "Resource": "/".join(p for p in (e.resource_type, e.resource_id) if p),
                "Patient id": e.patient_id or "",
                "Category": e.data_category or "",
                "Client IP": e.client_ip or "",
                "Reference": e.correlation_id or "",
                "Details": e.details,
            }
            for e in page.items
        ]
    )


def _integrity(gw: Gateway, data_dir: Path, tz: tzinfo) -> None:
    st.subheader("Integrity")
    st.caption(
        "Checks every row's keyed MAC, the gap-free sequence and the last anchor, so an edited, "
        "deleted or cut-off row is named."
    )
    if st.button("Check integrity now", key="settings.verify", icon=":material/verified:"):
        with st.spinner("Checking the audit chain…"):
            st.session_state[_CHECK_KEY] = audit_log.verify_audit_chain(gw, data_dir)
    check = st.session_state.get(_CHECK_KEY)
    if not isinstance(check, ChainCheck):
        return
    when = _local(check.checked_at, tz)
    if check.ok:
        st.success(
            f"OK: the audit log is intact ({check.checked} rows, up to seq {check.head_seq}). "
            f"Checked {when}."
        )
    else:
        where = f"seq {check.first_bad_seq}" if check.first_bad_seq is not None else "anchor file"
        st.error(
            f"Damaged: first problem at {where} ({check.kind}); {check.problem_count} problem(s) "
            f"in all. Checked {when}."
        )
        st.text(check.message)


def _export(gw: Gateway, since: datetime, until: datetime, tz: tzinfo) -> None:
    st.subheader("Export")
    last_day = until.astimezone(tz) - timedelta(days=1)
    st.caption(
        f"Exports every row from {since.astimezone(tz):%d %b %Y} to {last_day:%d %b %Y}, "
        "all columns and MACs (the other filters do not apply). The export is itself audited "
        "with its purpose category. The sentence below is not stored, since it may name a "
        "patient; only its length and a keyed fingerprint are."
    )
    categories = list(audit_log.PURPOSE_CATEGORIES)
    with st.form("settings.export"):
        category = st.selectbox(
            "Purpose",
            categories,
            format_func=lambda c: audit_log.PURPOSE_CATEGORIES[c],
            key="settings.export.category",
        )
        statement = st.text_area(
            "Describe why this export is needed",
            max_chars=audit_log.MAX_PURPOSE_CHARS,
            key="settings.export.statement",
        )
        prepare = st.form_submit_button("Prepare CSV export", icon=":material/download:")
    if not prepare:
        return
    purpose = ExportPurpose(PurposeCategory(str(category)), statement)
    problems = purpose.problems()
    if problems:
        _show_problems(list(problems.values()))
        return
    with st.spinner("Preparing the export…"):
        export = audit_log.export_audit_csv(gw, since, until, purpose)
    st.download_button(
        f"Download {export.rows} rows (CSV)",
        export.text,
        file_name=export.file_name,
        mime="text/csv",
        on_click="ignore",
        type="primary",
        icon=":material/file_download:",
        key="settings.export.download",
    )


def audit_section(gw: Gateway, tz: tzinfo, data_dir: Path) -> None:
    """Filters, the matching rows (opening this view is audited), integrity check, export."""
    chosen = _audit_filters(tz)
    if chosen is None:
        return
    filters, order_by, descending = chosen
    with st.spinner("Reading the audit log…"):
        page = audit_log.search_audit_log(gw, filters, order_by=order_by, descending=descending)
    if not page.items:
        st.info("No audit rows match these filters.")
    else:
        st.dataframe(
            _audit_frame(page, tz),
            hide_index=True,
            column_config={"Time": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
        )
        more = " More rows match: narrow the filters." if page.truncated else ""
        st.caption(f"{len(page.items)} rows; times in {tz}. Click a column to sort.{more}")
    _integrity(gw, data_dir, tz)
    if filters.since is not None and filters.until is not None:
        _export(gw, filters.since, filters.until, tz)


# ----------------------------------------------------------------------------- security


def security_section(caller: Caller) -> None:
    """Key rotation: what it does, where keys come from, and the audited button."""
    keys = len(wiring.app_settings().token_keys)
    st.subheader("Encryption key rotation")
    st.markdown(
        "Stored EHR tokens and PKCE verifiers are encrypted with the keys in the `TOKEN_KEYS` "
        "setting: the **first** key encrypts, every listed key can decrypt. To rotate, put a "
        "new key first in `TOKEN_KEYS`, restart the app, then re-encrypt here. Once that is "
        "done the old key can be removed from the list. Keys never come from this page or the "
        "database."
    )
    st.caption(f"{keys} key(s) configured.")
    if _confirmed_button(
        "Re-encrypt stored secrets",
        "Yes, re-encrypt every stored secret under the first key",
        "settings.rotate",
    ):
        with st.spinner("Re-encrypting…"):
            count = admin.rotate_token_keys(wiring.connector(), caller)
        _flash_and_rerun(f"Re-encrypted {count} stored secret(s) under the first key.")


# ----------------------------------------------------------------------------- demo sandbox


def _fault_summary(state: admin.FaultState) -> str:
    parts = []
    if state.latency_ms:
        parts.append(f"{state.latency_ms} ms extra latency")
    if state.error_rate:
        parts.append(f"{state.error_rate:.0%} of requests fail with {state.error_status}")
    if state.throttle_next:
        parts.append(f"the next {state.throttle_next} requests get 429")
    return "; ".join(parts)


def _fault_form(gw: Gateway, sandbox: SandboxAdmin, state: admin.FaultState) -> None:
    with st.form("settings.faults"):
        latency = st.slider(
            "Extra latency per request (ms)", 0, MAX_LATENCY_SLIDER_MS, state.latency_ms, step=100
        )
        cols = st.columns(2)
        percent = cols[0].slider(
            "Requests failing with a server error (%)",
            0,
            100,
            round(state.error_rate * 100),
            step=5,
        )
        statuses = list(ERROR_STATUSES)
        status = cols[1].radio(
            "Error status",
            statuses,
            index=statuses.index(state.error_status or 503),
            horizontal=True,
        )
        burst = st.number_input(
            "Answer the next N requests with 429 (rate limited)",
            0,
            admin.MAX_THROTTLE_BURST,
            state.throttle_next,
        )
        apply = st.form_submit_button("Apply faults", type="primary")
    if apply:
        change = FaultChange(
            latency_ms=int(latency),
            error_rate=percent / 100,
            error_status=cast(admin.ErrorStatus, int(status)),
            throttle_next=int(burst),
        )
        problems = change.problems()
        if problems:
            _show_problems(list(problems.values()))
            return
        admin.set_sandbox_faults(gw, sandbox, change)
        _flash_and_rerun("Fault settings applied.")


def sandbox_section(gw: Gateway, sandbox: SandboxAdmin) -> None:
    """Training controls of the embedded sandbox: faults, token expiry, data reset."""
    st.caption(
        "Make the demo EHR misbehave the way a real one does, to practise reading the error "
        "messages. These controls exist only in demo mode and affect every user of this demo."
    )
    state = admin.sandbox_faults(gw, sandbox)
    summary = _fault_summary(state)
    if summary:
        st.warning(f"Faults on: {summary}.")
    else:
        st.info("No faults: the sandbox answers normally.")
    _fault_form(gw, sandbox, state)
    buttons = st.container(horizontal=True)
    if buttons.button("Clear all faults", key="settings.faults.clear"):
        admin.set_sandbox_faults(gw, sandbox, FaultChange(clear_first=True))
        _flash_and_rerun("All faults cleared.")
    if buttons.button("Expire all access tokens", key="settings.faults.expire"):
        admin.set_sandbox_faults(gw, sandbox, FaultChange(expire_tokens=True))
        _flash_and_rerun("Access tokens expired: the next request refreshes them.")
    st.subheader("Reset the sandbox data")
    st.caption("Regenerates the synthetic clinic from its seed: every training edit is undone.")
    if _confirmed_button(
        "Reset sandbox data", "Yes, undo every change made in the sandbox", "settings.reset"
    ):
        with st.spinner("Regenerating the synthetic clinic…"):
            admin.reset_sandbox_data(gw, sandbox)
        _flash_and_rerun("The sandbox data was reset.")
