"""What the Settings page's sections share: the one-line confirmation kept across a rerun,
practice-time formatting, the confirmed destructive button and inline form problems.

The sections live in ``ui.settings_connection``, ``ui.settings_users``, ``ui.settings_audit``,
``ui.settings_security`` and ``ui.settings_demo``. Each reads through ``ehr.services`` and
renders one tab. Actions follow one pattern: validate the form first (nothing is sent while a
field is wrong), call the service, then keep a one-line confirmation in ``st.session_state``
and rerun, so the status shown above the buttons is read again after the change. Refusals and
EHR errors are shown by the page's ``guarded`` block; ``AccountError`` messages are safe by
contract and are shown under the form that caused them. Text from users or upstream is
rendered with ``st.text``/data frames, never as Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Final, Literal

import streamlit as st

__all__ = [
    "FlashKind",
    "confirmed_button",
    "flash_and_rerun",
    "local_time",
    "show_flash",
    "show_problems",
]

_FLASH_KEY: Final = "settings.flash"
FlashKind = Literal["success", "warning"]


def flash_and_rerun(text: str, kind: FlashKind = "success") -> None:
    """Keep ``text`` to show after the rerun this starts (the status is then read afresh)."""
    st.session_state[_FLASH_KEY] = (kind, text)
    st.rerun()


def show_flash() -> None:
    """Show (once) the confirmation left by the action of the previous run."""
    flash = st.session_state.pop(_FLASH_KEY, None)
    if not flash:
        return
    kind, text = flash
    (st.success if kind == "success" else st.warning)(text)


def local_time(value: datetime | None, tz: tzinfo, empty: str = "—") -> str:
    """``value`` in the practice time zone, or ``empty`` when there is none."""
    return empty if value is None else f"{value.astimezone(tz):%d %b %Y %H:%M}"


def confirmed_button(label: str, confirm: str, key: str) -> bool:
    """A destructive button that stays disabled until its confirmation box is ticked."""
    sure = st.checkbox(confirm, key=f"{key}.confirm")
    return st.button(label, key=key, disabled=not sure, type="primary")


def show_problems(problems: Sequence[str]) -> None:
    """Each validation problem as an error under the form that caused it."""
    for problem in problems:
        st.error(problem)
