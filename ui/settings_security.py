"""The Settings page's security tab: re-encrypting stored secrets under the first key of
``TOKEN_KEYS`` after a key rotation (the keys themselves never come from this page)."""

from __future__ import annotations

import streamlit as st

from ehr.services import admin
from ehr.services.gateway import Caller
from ui import wiring
from ui.settings_view import confirmed_button, flash_and_rerun

__all__ = ["security_section"]


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
    if confirmed_button(
        "Re-encrypt stored secrets",
        "Yes, re-encrypt every stored secret under the first key",
        "settings.rotate",
    ):
        with st.spinner("Re-encrypting…"):
            count = admin.rotate_token_keys(wiring.connector(), caller)
        flash_and_rerun(f"Re-encrypted {count} stored secret(s) under the first key.")
