"""The one error helper every page uses (DESIGN.md section 4, SECURITY.md LG-02).

Known EHR errors become a friendly message with their reference id and the next step (reconnect,
try later at HH:MM, fix the form, ask an admin). Anything else is logged with a fresh reference
and shown as "Something went wrong (ref ...)": no exception text or traceback ever reaches
the page, because it may hold PHI or internals.
"""

from __future__ import annotations

import logging
import uuid
from datetime import tzinfo
from types import TracebackType
from typing import Final

import streamlit as st

from ehr.errors import EHRError, RateLimitedError, UserAction
from ui.components import nav_link

__all__ = ["GENERIC_MESSAGE", "guarded", "show_error"]

log = logging.getLogger(__name__)

GENERIC_MESSAGE: Final = "Something went wrong"
REF_CHARS: Final = 8


def _retry_text(exc: RateLimitedError, tz: tzinfo | None) -> str:
    if exc.retry_at is None:
        return " Try again in a few minutes."
    local = exc.retry_at.astimezone(tz) if tz else exc.retry_at
    return f" Rate limited until {local:%H:%M}."


def show_error(exc: BaseException, *, tz: tzinfo | None = None, is_admin: bool = False) -> str:
    """Render ``exc`` for a user and return the reference id shown."""
    if not isinstance(exc, EHRError):
        ref = uuid.uuid4().hex[:REF_CHARS]
        log.error("unhandled error on a page (ref %s): %s", ref, type(exc).__name__, exc_info=exc)
        st.error(f"{GENERIC_MESSAGE} (ref {ref}). The details are in the server log.")
        return ref
    ref = exc.correlation_id or uuid.uuid4().hex[:REF_CHARS]
    log.warning("EHR error shown to user (ref %s): %s", ref, exc.code)
    text = exc.message
    if isinstance(exc, RateLimitedError):
        text += _retry_text(exc, tz)
    if exc.user_action == UserAction.RECONNECT:
        st.error(f"{text} (ref {ref})")
        if is_admin:
            nav_link("Reconnect the EHR", "/ehr-auth/connect")
        else:
            st.caption("Ask an administrator to reconnect the EHR in Settings.")
    elif exc.user_action in {UserAction.RETRY_LATER, UserAction.CHECK_UPSTREAM}:
        st.warning(f"{text} (ref {ref})")
    else:
        st.error(f"{text} (ref {ref})")
    return ref


class guarded:
    """Run a block of a page; any error is shown with ``show_error`` instead of a traceback.

    Reusable: one ``guarded(...)`` may wrap several ``with`` blocks. Streamlit's own control
    flow (``st.stop``, ``st.rerun``, ``st.switch_page``) raises ``BaseException`` subclasses,
    which pass through untouched.
    """

    def __init__(self, *, tz: tzinfo | None = None, is_admin: bool = False) -> None:
        self._tz = tz
        self._is_admin = is_admin

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        _traceback: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        show_error(exc, tz=self._tz, is_admin=self._is_admin)
        return True
