"""ASGI middleware in front of Streamlit: sign-in gate and security headers.

* A page load (GET of an HTML page) without a live session is redirected to the sign-in form
  (or to first-run setup), so the app's pages are never served to an anonymous browser. The
  script checks the session again on every rerun; this is the outer wall, not the only one.
* ``/media/`` (downloads, images) and uploads need a live session too: a leaked media URL alone
  must not return an export.
* Every HTTP response gets ``Referrer-Policy: no-referrer`` (OA-04: no code or id leaks in a
  Referer), ``X-Content-Type-Options: nosniff`` and a frame-ancestors policy.

Pure ASGI (not ``BaseHTTPMiddleware``) so WebSocket traffic passes through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse

from ehr.services import accounts
from ehr.services.accounts import SessionEnded
from ui import wiring
from ui.routes import SESSION_COOKIE

__all__ = ["SignInGate"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Reachable without a session: our own sign-in/OAuth/health routes and Streamlit's static
# bundle and machinery (the bundle is the same public code for everyone).
PUBLIC_PREFIXES: Final = ("/session/", "/ehr-auth/", "/api/health", "/static/", "/_stcore/")
# Streamlit paths that hand out per-session content: they need a live session.
PROTECTED_PREFIXES: Final = ("/media/", "/_stcore/upload_file")
HEADERS: Final = (
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)


def _is_page_load(scope: Scope, request: Request) -> bool:
    path: str = scope["path"]
    if scope["method"] != "GET" or path.startswith(PUBLIC_PREFIXES):
        return False
    last = path.rsplit("/", 1)[-1]
    return "." not in last and "text/html" in request.headers.get("accept", "")


class SignInGate:
    """Wraps the Streamlit ASGI app (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path: str = scope["path"]
        needs_session = path.startswith(PROTECTED_PREFIXES) or _is_page_load(scope, request)
        if needs_session:
            refusal = await self._refusal(request, path)
            if refusal is not None:
                await refusal(scope, receive, self._with_headers(send))
                return
        await self.app(scope, receive, self._with_headers(send))

    async def _refusal(
        self, request: Request, path: str
    ) -> RedirectResponse | PlainTextResponse | None:
        store = wiring.account_store()
        if await run_in_threadpool(accounts.needs_first_admin, store):
            return RedirectResponse("/session/setup", status_code=303)
        result = await run_in_threadpool(
            accounts.resume_session,
            store,
            request.cookies.get(SESSION_COOKIE),
            client_ip=request.client.host if request.client else None,
        )
        if not isinstance(result, SessionEnded):
            return None
        if path.startswith(PROTECTED_PREFIXES):
            return PlainTextResponse("Sign in first.", status_code=401)
        ended = "&ended=1" if request.cookies.get(SESSION_COOKIE) else ""
        return RedirectResponse(
            f"/session/sign-in?next={quote(path, safe='/')}{ended}", status_code=303
        )

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((n, v) for n, v in HEADERS if n not in present)
                message["headers"] = headers
            await send(message)

        return send_with_headers
