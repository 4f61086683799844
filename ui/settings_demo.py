"""The Settings page's demo sandbox tab (demo mode only): training controls that make the
embedded sandbox misbehave like a real EHR (latency, server errors, 429s, expired tokens) and
reset its synthetic data."""

from __future__ import annotations

from typing import Final, cast

import streamlit as st

from ehr.services import admin
from ehr.services.admin import ERROR_STATUSES, FaultChange, SandboxAdmin
from ehr.services.gateway import Gateway
from ui.settings_view import confirmed_button, flash_and_rerun, show_problems

__all__ = ["sandbox_section"]

MAX_LATENCY_SLIDER_MS: Final = 5000


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
            show_problems(list(problems.values()))
            return
        admin.set_sandbox_faults(gw, sandbox, change)
        flash_and_rerun("Fault settings applied.")


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
        flash_and_rerun("All faults cleared.")
    if buttons.button("Expire all access tokens", key="settings.faults.expire"):
        admin.set_sandbox_faults(gw, sandbox, FaultChange(expire_tokens=True))
        flash_and_rerun("Access tokens expired: the next request refreshes them.")
    st.subheader("Reset the sandbox data")
    st.caption("Regenerates the synthetic clinic from its seed: every training edit is undone.")
    if confirmed_button(
        "Reset sandbox data", "Yes, undo every change made in the sandbox", "settings.reset"
    ):
        with st.spinner("Regenerating the synthetic clinic…"):
            admin.reset_sandbox_data(gw, sandbox)
        flash_and_rerun("The sandbox data was reset.")
