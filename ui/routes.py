"""HTTP routes beside the Streamlit app: sign-in, first-run setup, EHR OAuth, health.

They exist because a Streamlit script cannot set cookies or answer a plain HTTP request
(DESIGN.md section 4). All live under prefixes of their own (``/session/``, ``/ehr-auth/``,
``/api/``), never Streamlit's. Forms are protected by a double-submit CSRF cookie; the session
cookie is HttpOnly, SameSite=Lax (so it survives the redirect back from the EHR) and Secure
when the app is served over HTTPS. Nothing here logs a password, code, state or token.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ehr.errors import EHRError
from ehr.services import accounts, connection
from ehr.services.accounts import AccountError, SessionEnded, SignedInSession
from ehr.services.gateway import Caller
from ui import forms, wiring
from ui.navigation import safe_next_path

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "routes"]

log = logging.getLogger(__name__)

SESSION_COOKIE: Final = "ehr_session"
CSRF_COOKIE: Final = "ehr_csrf"
CSRF_BYTES: Final = 32
# Form fields are short; anything longer is refused before it reaches argon2 or the database.
MAX_FIELD_CHARS: Final = 1024


def _client_ip(request: Request) -> str | None:
    # The direct peer only: X-Forwarded-For is trusted only behind a configured proxy, which
    # this deployment does not have yet (README, Deployment).
    return request.client.host if request.client else None


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or wiring.app_settings().app_base_url.startswith("https:")


def _with_csrf(request: Request, render: Callable[[str], Response]) -> Response:
    token = secrets.token_urlsafe(CSRF_BYTES)
    response = render(token)
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/session/",
    )
    return response


def _csrf_ok(request: Request, submitted: object) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return (
        isinstance(submitted, str)
        and bool(cookie)
        and hmac.compare_digest(cookie.encode(), submitted.encode())
    )


def _field(form: object, name: str) -> str:
    value = form.get(name) if hasattr(form, "get") else None
    return value[:MAX_FIELD_CHARS] if isinstance(value, str) else ""


def _set_session_cookie(request: Request, response: Response, session: SignedInSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=int(session.absolute_timeout.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(CSRF_COOKIE, path="/session/")


async def current_caller(request: Request) -> Caller | SessionEnded:
    """The signed-in caller behind the request's session cookie (slides its idle window)."""
    token = request.cookies.get(SESSION_COOKIE)
    return await run_in_threadpool(
        accounts.resume_session, wiring.account_store(), token, client_ip=_client_ip(request)
    )


# ----------------------------------------------------------------------------- sign-in


async def sign_in_form(request: Request) -> Response:
    """GET: the sign-in form, or first-run setup while no account exists."""
    store = wiring.account_store()
    if await run_in_threadpool(accounts.needs_first_admin, store):
        return RedirectResponse("/session/setup", status_code=303)
    next_path = safe_next_path(request.query_params.get("next"))
    notice = (
        "Your session ended. Sign in again to continue."
        if request.query_params.get("ended") == "1"
        else None
    )
    response = _with_csrf(request, lambda t: forms.sign_in_page(t, next_path, notice=notice))
    if request.cookies.get(SESSION_COOKIE):  # a stale or ended session: forget it
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def sign_in_submit(request: Request) -> Response:
    """POST: check the password, start a fresh session, set the cookie, go to ``next``."""
    form = await request.form()
    next_path = safe_next_path(_field(form, "next"))
    username = _field(form, "username")
    if not _csrf_ok(request, form.get("csrf")):
        return _with_csrf(
            request,
            lambda t: forms.sign_in_page(
                t, next_path, error="The form expired. Please sign in again.", status_code=400
            ),
        )
    result = await run_in_threadpool(
        accounts.sign_in,
        wiring.account_store(),
        username,
        _field(form, "password"),
        client_ip=_client_ip(request),
        user_agent=request.headers.get("user-agent", "")[:MAX_FIELD_CHARS] or None,
        replaces=request.cookies.get(SESSION_COOKIE),
    )
    if not isinstance(result, SignedInSession):
        return _with_csrf(
            request,
            lambda t: forms.sign_in_page(
                t, next_path, error=result.message, username=username, status_code=401
            ),
        )
    response = RedirectResponse(next_path, status_code=303)
    _set_session_cookie(request, response, result)
    return response


async def setup_form(request: Request) -> Response:
    """GET: the first-administrator form, only while no account exists."""
    if not await run_in_threadpool(accounts.needs_first_admin, wiring.account_store()):
        return RedirectResponse("/session/sign-in", status_code=303)
    return _with_csrf(request, forms.setup_page)


async def setup_submit(request: Request) -> Response:
    """POST: create the first administrator and sign them in."""
    store = wiring.account_store()
    form = await request.form()
    username = _field(form, "username")

    def again(error: str, status: int = 400) -> Response:
        return _with_csrf(
            request,
            lambda t: forms.setup_page(t, error=error, username=username, status_code=status),
        )

    if not _csrf_ok(request, form.get("csrf")):
        return again("The form expired. Please try again.")
    password = _field(form, "password")
    if password != _field(form, "confirm"):
        return again("The two passwords differ.")
    try:
        await run_in_threadpool(
            accounts.create_first_admin, store, username, password, client_ip=_client_ip(request)
        )
    except AccountError as exc:
        if not await run_in_threadpool(accounts.needs_first_admin, store):
            return RedirectResponse("/session/sign-in", status_code=303)
        return again(exc.message)
    result = await run_in_threadpool(
        accounts.sign_in, store, username, password, client_ip=_client_ip(request)
    )
    response = RedirectResponse("/", status_code=303)
    if isinstance(result, SignedInSession):
        _set_session_cookie(request, response, result)
    return response


# ----------------------------------------------------------------------------- EHR OAuth


def _needs_sign_in(next_path: str) -> Response:
    return RedirectResponse(f"/session/sign-in?next={next_path}", status_code=303)


async def ehr_connect(request: Request) -> Response:
    """GET: start connecting the EHR (admins only): redirect to its consent page."""
    caller = await current_caller(request)
    if isinstance(caller, SessionEnded):
        return _needs_sign_in("/settings")
    try:
        url = await run_in_threadpool(connection.begin_connect, wiring.connector(), caller)
    except EHRError as exc:
        return forms.message_page(
            "Cannot connect the EHR",
            f"{exc.message} (ref {exc.correlation_id or 'none'})",
            link="/settings",
            link_text="Back to Settings",
            status_code=403 if exc.code == "permission_denied" else 400,
        )
    return RedirectResponse(url, status_code=303)


async def ehr_callback(request: Request) -> Response:
    """GET: the EHR's redirect back. ``state`` is checked first, the code exchanged at once.

    The browser always ends on a clean URL (no code or state left in history or Referer).
    """
    caller = await current_caller(request)
    params = {k: v[:MAX_FIELD_CHARS] for k, v in request.query_params.items()}
    if isinstance(caller, SessionEnded):
        caller_or_none: Caller | None = None
    else:
        caller_or_none = caller
    try:
        await run_in_threadpool(
            connection.complete_connect, wiring.connector(), caller_or_none, params
        )
    except EHRError as exc:
        return forms.message_page(
            "The EHR was not connected",
            f"{exc.message} (ref {exc.correlation_id or 'none'})",
            link="/settings",
            link_text="Back to Settings",
            status_code=400,
        )
    return RedirectResponse("/settings", status_code=303)


# ----------------------------------------------------------------------------- health


async def health(_request: Request) -> Response:
    """GET /api/health: database and EHR connection status, as JSON (no PHI, no secrets)."""
    report = await run_in_threadpool(wiring.health_report)
    return JSONResponse(
        report,
        status_code=200 if report["status"] == "ok" else 503,
        headers={"Cache-Control": "no-store"},
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def routes() -> list[Route]:
    """Every route the app adds to Streamlit's."""
    return [
        Route("/session/sign-in", sign_in_form, methods=["GET"]),
        Route("/session/sign-in", sign_in_submit, methods=["POST"]),
        Route("/session/setup", setup_form, methods=["GET"]),
        Route("/session/setup", setup_submit, methods=["POST"]),
        Route("/ehr-auth/connect", ehr_connect, methods=["GET"]),
        Route("/ehr-auth/callback", ehr_callback, methods=["GET"]),
        Route("/api/health", health, methods=["GET"]),
    ]
