"""Who is using this browser session, and their gateway to the EHR.

The signed-in user comes from the HttpOnly session cookie set by ``/session/sign-in``
(``st.session_state`` does not survive a reload or the OAuth redirect) and is re-validated on
every rerun, which also slides the idle timeout. The ``Gateway`` (with this session's PHI
cache) lives in ``st.session_state`` and is rebuilt, cache emptied, whenever the user, role or
session changes (SECURITY.md CA-01).
"""

from __future__ import annotations

from typing import Final

import streamlit as st

from ehr.policy import Action, is_allowed
from ehr.services import accounts
from ehr.services.accounts import SessionEnded
from ehr.services.gateway import Caller, Gateway, require
from ui import wiring
from ui.components import nav_link
from ui.routes import SESSION_COOKIE

__all__ = [
    "TEST_TOKEN_KEY",
    "current_caller",
    "current_caller_or_stop",
    "gateway",
    "require_page",
    "sign_out",
]

# AppTest cannot send cookies, so tests hand the raw session id over in this session_state key.
# It grants nothing by itself: the id must still validate as a live session in the database,
# and no widget uses this key, so a browser cannot set it.
TEST_TOKEN_KEY: Final = "_session_token_for_tests"  # noqa: S105  a state key name
_GATEWAY_KEY: Final = "_gateway"
_CALLER_KEY: Final = "_caller"


def _token() -> str | None:
    try:
        token = st.context.cookies.get(SESSION_COOKIE)
    except Exception:  # no request context (bare script run)
        token = None
    if isinstance(token, str) and token:
        return token
    fallback = st.session_state.get(TEST_TOKEN_KEY)
    return fallback if isinstance(fallback, str) else None


def _client_ip() -> str | None:
    try:
        ip = st.context.ip_address
    except Exception:  # no request context
        return None
    return ip if isinstance(ip, str) else None


def _forget_everything(keep: tuple[str, ...] = ()) -> None:
    """Drop every session_state entry (pages keep PHI there: an opened patient, a draft)."""
    for key in list(st.session_state.keys()):
        if key not in keep:
            del st.session_state[key]


def current_caller() -> Caller | SessionEnded:
    """The signed-in caller for this rerun, or why there is none. Also cached for the rerun.

    When the session has ended (sign-out, timeout, disabled account) or another user signed in
    in this browser session, everything pages kept in ``st.session_state`` is dropped first,
    so no PHI outlives the session that fetched it (SECURITY.md SS-01, CA-01).
    """
    result = accounts.resume_session(wiring.account_store(), _token(), client_ip=_client_ip())
    if isinstance(result, Caller):
        previous = st.session_state.get(_CALLER_KEY)
        if isinstance(previous, Caller) and (
            previous.principal != result.principal or previous.session_ref != result.session_ref
        ):
            _forget_everything(keep=(TEST_TOKEN_KEY,))
        st.session_state[_CALLER_KEY] = result
    else:
        _forget_everything()
    return result


def current_caller_or_stop() -> Caller:
    """For page scripts: the signed-in caller, validated again, or a sign-in prompt and stop.

    ``ui.shell`` already checked the session at the top of this rerun; pages check again
    because a page script can run without the shell (AppTest reruns a page file directly), and
    a page must never trust a caller cached from an earlier rerun.
    """
    caller = current_caller()
    if not isinstance(caller, Caller):
        st.warning("Your session has ended. Sign in again to continue.")
        nav_link("Sign in", "/session/sign-in")
        st.stop()
    return caller


def gateway(caller: Caller) -> Gateway:
    """This session's gateway, rebuilt (empty cache) when the caller changed."""
    existing = st.session_state.get(_GATEWAY_KEY)
    if isinstance(existing, Gateway) and existing.caller == caller:
        return existing
    fresh = wiring.new_gateway(caller)
    st.session_state[_GATEWAY_KEY] = fresh
    return fresh


def require_page(caller: Caller, action: Action, page: str) -> Gateway:
    """The first line of every page: refuse (and audit) a page the role may not open."""
    gw = gateway(caller)
    if not is_allowed(caller.principal, action):
        require(gw, action, f"page/{page}")  # raises PermissionDenied after the DENIED row
    return gw


def sign_out() -> None:
    """End the session server-side; the stale cookie is dropped by the sign-in page."""
    accounts.sign_out(wiring.account_store(), _token(), client_ip=_client_ip())
    _forget_everything()
