"""The Settings page's EHR connection tab: status, the tokens' lifetime (never a token), the
hourly API budget, and connect / refresh / disconnect."""

from __future__ import annotations

from datetime import tzinfo
from typing import Final

import pandas as pd
import streamlit as st

from ehr.services import admin, connection
from ehr.services.connection import ConnectionSummary
from ehr.services.gateway import Caller
from ui import wiring
from ui.components import nav_link
from ui.settings_view import confirmed_button, flash_and_rerun, local_time

__all__ = ["connection_section"]

CONNECT_PATH: Final = "/ehr-auth/connect"
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


def _facts(summary: ConnectionSummary, tz: tzinfo) -> pd.DataFrame:
    refreshed = local_time(summary.last_refreshed_at, tz, "not yet (since connecting)")
    rows = [
        ("Practice group", summary.practice_group or "—"),
        ("DrChrono user", summary.ehr_username or "—"),
        ("Connected", local_time(summary.connected_at, tz)),
        ("Granted scopes", ", ".join(summary.scopes) or "—"),
        ("Access token valid until", local_time(summary.expires_at, tz)),
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
        flash_and_rerun(f"Access token refreshed; valid until {local_time(expires, tz)}.")
    _budget(summary, tz)
    st.subheader("Disconnect")
    st.caption(
        "Revokes the app's access at DrChrono and deletes the stored tokens. Every page stops "
        "reading the EHR until an administrator connects it again."
    )
    if confirmed_button(
        "Disconnect the EHR",
        "Yes, disconnect the EHR for every user",
        "settings.disconnect",
    ):
        with st.spinner("Revoking access at DrChrono…"):
            confirmed = connection.disconnect(connector, caller)
        if confirmed:
            flash_and_rerun("Disconnected. DrChrono confirmed the revocation.")
        flash_and_rerun(
            "Disconnected here, but DrChrono did not confirm the revocation. Remove the app's "
            "access in DrChrono's account settings as well.",
            "warning",
        )
