"""The frame around every page: configuration check, sign-in check, header and navigation.

``Home.py`` calls ``run()`` on every rerun. Pages a role may not use are hidden from the menu;
opening one by URL still runs its first line, ``session.require_page``, which refuses and
audits (so the URL is not a way around the menu).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import streamlit as st

from ehr.policy import Action, is_allowed
from ehr.services import connection
from ehr.services.accounts import SessionEnded
from ehr.services.gateway import Caller
from ui import session, wiring
from ui.components import nav_link
from ui.navigation import PAGES

__all__ = ["is_admin", "run"]

log = logging.getLogger(__name__)

_STATE_BADGES = {
    "connected": ":green-badge[:material/link: EHR connected]",
    "needs_reconnect": ":orange-badge[:material/link_off: EHR needs reconnecting]",
    "not_connected": ":gray-badge[:material/link_off: EHR not connected]",
}


def _only(render: Callable[[], None]) -> None:
    """Show one screen through ``st.navigation`` with no menu.

    Without an ``st.navigation`` call Streamlit falls back to listing every file in ``pages/``
    in the sidebar, which a signed-out visitor must not see.
    """
    st.navigation(
        [st.Page(render, title="Clinic EHR Dashboard", default=True)], position="hidden"
    ).run()


def _signed_out(ended: SessionEnded) -> None:
    def screen() -> None:
        st.title("Clinic EHR Dashboard")
        if ended.timed_out:
            st.info("Your session ended after a period of inactivity. Sign in again to continue.")
        else:
            st.info("You are not signed in.")
        nav_link("Sign in", "/session/sign-in")

    _only(screen)


def _header(caller: Caller) -> None:
    settings = wiring.app_settings()
    summary = connection.connection_summary(wiring.connector())
    with st.sidebar:
        st.markdown(f"**{caller.principal.username}** · {caller.principal.role.replace('_', ' ')}")
        st.markdown(_STATE_BADGES[summary.state])
        if settings.demo_mode:
            st.caption(
                "Demo mode: the embedded sandbox EHR with a synthetic clinic. Demo keys were "
                "generated on this machine; never use them for real patient data."
            )
        # A callback, so it runs first thing on the next rerun, whichever script that is.
        st.button("Sign out", icon=":material/logout:", key="sign_out", on_click=session.sign_out)


def run() -> None:
    """Render the app for this rerun."""
    st.set_page_config(page_title="Clinic EHR Dashboard", page_icon="🩺", layout="wide")
    try:
        wiring.app_settings()
    except wiring.SettingsError as exc:
        problem = str(exc)

        def screen() -> None:
            st.title("Clinic EHR Dashboard")
            st.error(f"The app cannot start: {problem}. Fix the configuration and restart.")

        _only(screen)
        return
    wiring.background_sync()  # started once per process; keeps the analytics mirror fresh
    caller = session.current_caller()
    if isinstance(caller, SessionEnded):
        _signed_out(caller)
        return
    _header(caller)
    pages = [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)]
    for spec in PAGES:
        if not (wiring.ROOT / spec.script).is_file():  # a broken install: skip, never crash
            log.error("page script missing: %s", spec.script)
            continue
        allowed = is_allowed(caller.principal, spec.needs)
        pages.append(
            st.Page(
                spec.script,
                title=spec.title,
                icon=spec.icon,
                url_path=spec.url_path,
                visibility="visible" if allowed else "hidden",
            )
        )
    st.navigation(pages).run()


def is_admin(caller: Caller) -> bool:
    """True when the caller may administer (shows Reconnect buttons and the like)."""
    return is_allowed(caller.principal, Action.ADMIN)
