"""OAuth2 provider of the DrChrono sandbox: /o/authorize/, /o/token/, /o/revoke_token/.

Imitates DrChrono's django-oauth-toolkit server: authorization-code grant only, confidential
clients (secret in the body or HTTP Basic), exact redirect URIs, 48-hour access tokens,
single-use codes that live a minute, rotating refresh tokens, optional PKCE (S256 only), RFC 6749
JSON error bodies. The protocol is oauthlib's ``WebApplicationServer``; this module adds the
browser consent page, the bearer check the REST API calls (``authenticate``) and test knobs.

Starlette handlers are async but call oauthlib synchronously under one lock: it is fast, and the
lock makes each exchange atomic while tests call the provider from other threads.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, FileSystemLoader, select_autoescape
from oauthlib.common import Request as OAuthlibRequest
from oauthlib.oauth2 import WebApplicationServer
from oauthlib.oauth2.rfc6749 import errors
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ehr.sandbox.oauth_validator import (
    ALL_SCOPES,
    OAuthClient,
    SandboxRequestValidator,
    TokenInfo,
    new_token,
    require_s256_pkce,
)

__all__ = [
    "ALL_SCOPES",
    "OAuthClient",
    "OAuthProvider",
    "SandboxAuthError",
    "TokenInfo",
]

log = logging.getLogger(__name__)

# DrChrono documents 48-hour access tokens.
DEFAULT_ACCESS_TOKEN_TTL_S = 172800
# DrChrono: the code "expires extremely quickly"; a minute is enough for a server-side exchange.
DEFAULT_CODE_TTL_S = 60
# How long the consent page stays usable: a person reading the scope list and typing a password.
PENDING_TTL_S = 600
# Bound on consent pages awaiting a decision, so a crawler hitting /o/authorize/ cannot grow memory.
MAX_PENDING = 1000
# Wrong passwords tolerated on one consent page before it must be restarted from the app.
MAX_FAILED_LOGINS = 5
# Largest body accepted on the three endpoints: real OAuth forms are well under 4 KiB.
MAX_BODY_BYTES = 64 * 1024
# Most fields a consent-form POST may carry (it has four).
MAX_FORM_FIELDS = 16
# URI handed to oauthlib's resource check; only the Authorization header matters to it.
_RESOURCE_URI = "https://sandbox.invalid/api/"
_TEMPLATES = Path(__file__).parent / "templates"

# DRF's wording for 401/403 bodies, as DrChrono (Django REST Framework) returns them.
DETAIL_NOT_AUTHENTICATED = "Authentication credentials were not provided."
DETAIL_INVALID = "The access token is invalid."
DETAIL_EXPIRED = "The access token has expired."
DETAIL_FORBIDDEN = "You do not have permission to perform this action."

# Headers for every HTML page: no caching of pages carrying a request id, no framing
# (clickjacking of the Allow button), no referrer leaking the query string.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
    ),
}

# What each scope area covers, shown on the consent page.
_SCOPE_AREAS = {
    "user": "your user profile, doctors, offices and exam rooms",
    "calendar": "appointments and the calendar",
    "patients": "patient demographics",
    "patients:summary": "patient summaries (name, chart id, age, gender)",
    "clinical": "clinical notes, problems, medications and allergies",
    "labs": "lab orders and results",
    "billing": "billing: line items, transactions and insurance",
    "billing:patient-payment": "patient payments",
    "messages": "messages",
    "tasks": "tasks",
    "settings": "practice settings and custom fields",
}


def scope_label(scope: str) -> str:
    """Human wording of one DrChrono scope, e.g. ``Read patient demographics``."""
    area, _, access = scope.rpartition(":")
    verb = "Read" if access == "read" else "Read and change"
    return f"{verb} {_SCOPE_AREAS.get(area, area)}"


class SandboxAuthError(Exception):
    """A bearer-token check failed: ``status`` 401 or 403 and a DRF-style ``detail``.

    ``www_authenticate`` is the RFC 6750 challenge to send with a 401 (None for 403).
    """

    def __init__(self, status: int, detail: str, *, www_authenticate: str | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.www_authenticate = www_authenticate


@dataclass(slots=True)
class _PendingAuthorization:
    """An authorize request validated by oauthlib and shown to the user, awaiting a decision.

    Kept server-side under an unguessable id, the only value the consent form carries, so the
    parameters cannot be swapped between display and POST.
    """

    uri: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    expires_at: float
    failed_logins: int = 0


def _quiet_oauthlib() -> None:
    """Hold oauthlib's loggers at WARNING: at DEBUG they print codes and tokens (SECURITY LG-01)."""
    oauthlib_logger = logging.getLogger("oauthlib")
    # Its own level, not the effective one: a NOTSET logger follows root down to DEBUG later.
    if oauthlib_logger.level < logging.WARNING:
        oauthlib_logger.setLevel(logging.WARNING)


def _redirect(location: str) -> Response:
    """A 302 to ``location`` exactly as oauthlib built it (no re-quoting), never cached."""
    return Response(
        status_code=302,
        headers={
            "Location": location,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def _oauth_response(headers: dict[str, str], body: str | None, status: int) -> Response:
    return Response(content=body or b"", status_code=status, headers=headers)


def _invalid_request_response(description: str, status: int = 400) -> Response:
    error = errors.InvalidRequestError(description=description)
    return Response(
        content=error.json,
        status_code=status,
        headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
    )


_BAD_BODY = "The body must be application/x-www-form-urlencoded UTF-8."
_BODY_TOO_LARGE = "The request body is too large."


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None once it passes ``MAX_BODY_BYTES`` (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _form_fields(body: bytes) -> dict[str, str] | None:
    """First value of each field of a url-encoded form, or None if it is not one."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


class OAuthProvider:
    """DrChrono-style OAuth2 authorization server for one demo practice user.

    ``clients`` are the registered API applications; ``user_id`` is the DrChrono user every
    grant is for, signed in on the consent page with ``username``/``password``. ``clock``
    (seconds, like ``time.time``) drives code and token expiry so tests can move time.
    """

    def __init__(
        self,
        clients: Sequence[OAuthClient],
        *,
        user_id: int,
        username: str = "demo",
        password: str = "demo",  # noqa: S107 - the sandbox's published demo login
        access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL_S,
        code_ttl: int = DEFAULT_CODE_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not clients:
            raise ValueError("the sandbox OAuth provider needs at least one client")
        if access_token_ttl <= 0 or code_ttl <= 0:
            raise ValueError("token and code lifetimes must be positive")
        _quiet_oauthlib()
        self._validator = SandboxRequestValidator(clients, clock=clock, code_ttl=code_ttl)
        self._lock = self._validator.lock
        self._clock = clock
        self._user_id = user_id
        self._username = username
        self._password = password
        self._ttl = access_token_ttl
        self._token_requests = 0
        self._pending: dict[str, _PendingAuthorization] = {}
        self._server = WebApplicationServer(
            self._validator,
            token_generator=new_token,
            refresh_token_generator=new_token,
            token_expires_in=lambda _request: self._ttl,
        )
        self._server.auth_grant.custom_validators.pre_auth.append(require_s256_pkce)
        self._pages = Environment(
            loader=FileSystemLoader(_TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )

    # --- public API ----------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """Starlette routes for the three OAuth endpoints, with DrChrono's trailing slashes."""
        return [
            Route("/o/authorize/", self._authorize, methods=["GET", "POST"]),
            Route("/o/token/", self._token, methods=["POST"]),
            Route("/o/revoke_token/", self._revoke, methods=["POST"]),
        ]

    def authenticate(
        self, authorization_header: str | None, required_scopes: Iterable[str]
    ) -> TokenInfo:
        """Check an ``Authorization: Bearer`` header and return what the token grants.

        Raises ``SandboxAuthError`` 401 when the header is missing or malformed or the token is
        unknown, expired or revoked, and 403 when the token holds none of ``required_scopes``
        (DrChrono endpoints accept either scope of a read/write pair; pass only the ``:write``
        one for writes). An empty ``required_scopes`` checks authentication only.
        """
        if not authorization_header or not authorization_header.strip():
            raise SandboxAuthError(
                401, DETAIL_NOT_AUTHENTICATED, www_authenticate='Bearer realm="api"'
            )
        scopes = list(required_scopes)
        with self._lock:
            valid, checked = self._server.verify_request(
                _RESOURCE_URI, headers={"Authorization": authorization_header}, scopes=scopes
            )
        info: TokenInfo | None = getattr(checked, "sandbox_token_info", None)
        if valid and info is not None:
            return info
        failure = getattr(checked, "sandbox_failure", "invalid")
        if failure == "scope":
            raise SandboxAuthError(403, DETAIL_FORBIDDEN)
        detail = DETAIL_EXPIRED if failure == "expired" else DETAIL_INVALID
        raise SandboxAuthError(
            401,
            detail,
            www_authenticate=f'Bearer realm="api", error="invalid_token", error_description="{detail}"',
        )

    def issue_token(self, client_id: str, scopes: Iterable[str]) -> dict[str, Any]:
        """Issue a token pair directly (no browser) for tests and benchmarks.

        Returns the same dict ``/o/token/`` returns (``access_token``, ``refresh_token``,
        ``expires_in``, ``token_type``, ``scope``). Empty ``scopes`` means every scope, as an
        authorize request without ``scope`` does. Not counted in ``token_requests``.
        """
        wanted = list(dict.fromkeys(scopes)) or list(ALL_SCOPES)
        unknown = [s for s in wanted if s not in ALL_SCOPES]
        if unknown:
            raise ValueError(f"unknown DrChrono scopes: {unknown}")
        with self._lock:
            client = self._validator.client(client_id)
            if client is None:
                raise ValueError(f"unknown client_id {client_id!r}")
            request = OAuthlibRequest("https://sandbox.invalid/o/token/", http_method="POST")
            request.client = client
            request.client_id = client.client_id
            request.user = self._user_id
            request.scopes = wanted
            request.grant_type = "authorization_code"
            token = self._server.bearer.create_token(request, refresh_token=True)
            self._validator.save_token(token, request)
        return dict(token)

    def expire_all_tokens(self) -> None:
        """Fault knob: every access token issued so far is now expired (refresh still works)."""
        self._validator.expire_all_access_tokens()

    def revoke_all_tokens(self) -> None:
        """Fault knob: every access and refresh token is revoked (the app must re-authorize)."""
        self._validator.revoke_everything()

    @property
    def access_token_ttl(self) -> int:
        """Lifetime in seconds (``expires_in``) of access tokens issued from now on."""
        return self._ttl

    @access_token_ttl.setter
    def access_token_ttl(self, seconds: int) -> None:
        if seconds <= 0:
            raise ValueError("access_token_ttl must be positive")
        with self._lock:
            self._ttl = seconds

    def token_requests(self) -> int:
        """How many POSTs reached /o/token/ (any grant, any outcome) since start."""
        with self._lock:
            return self._token_requests

    # --- /o/authorize/ -------------------------------------------------------------------------

    async def _authorize(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._authorize_decision(request)
        return self._authorize_page(request)

    def _authorize_page(self, request: Request) -> Response:
        """Validate the request with oauthlib, then show the sign-in and consent page."""
        uri = str(request.url)
        try:
            with self._lock:
                scopes, info = self._server.validate_authorization_request(uri, http_method="GET")
        except errors.FatalClientError as exc:
            # Bad client or redirect URI: never redirect anywhere (no open redirector).
            return self._error_page(exc.description, request.query_params.get("client_id"))
        except errors.OAuth2Error as exc:
            return _redirect(exc.in_uri(exc.redirect_uri))
        pending = _PendingAuthorization(
            uri=uri,
            client_id=info["client_id"],
            redirect_uri=info["redirect_uri"],
            scopes=tuple(scopes),
            state=info["state"],
            expires_at=self._clock() + PENDING_TTL_S,
        )
        request_id = self._remember(pending)
        log.info("authorize page shown client_id=%s scopes=%d", pending.client_id, len(scopes))
        return self._consent_page(request, request_id, pending)

    async def _authorize_decision(self, request: Request) -> Response:
        """Handle Allow / Deny from the consent form."""
        body = await _read_body(request)
        form = _form_fields(body) if body is not None else None
        if form is None:
            return self._error_page("The form could not be read. Start again.", None)
        request_id = form.get("request_id", "")
        decision = form.get("decision")
        username = form.get("username")
        password = form.get("password")
        with self._lock:
            pending = self._pending_for(request_id)
            if pending is None:
                return self._error_page(
                    "This authorization request has expired or was already answered. "
                    "Start again from the application.",
                    None,
                )
            if decision == "deny":
                del self._pending[request_id]
                denied = errors.AccessDeniedError(state=pending.state)
                log.info("authorization denied client_id=%s", pending.client_id)
                return _redirect(denied.in_uri(pending.redirect_uri))
            if decision != "allow":
                return self._error_page("Choose Allow or Deny.", pending.client_id)
            if not self._credentials_ok(username, password):
                pending.failed_logins += 1
                if pending.failed_logins >= MAX_FAILED_LOGINS:
                    del self._pending[request_id]
                    return self._error_page(
                        "Too many failed sign-in attempts. Start again from the application.",
                        pending.client_id,
                    )
                log.info("authorize sign-in failed client_id=%s", pending.client_id)
                return self._consent_page(
                    request,
                    request_id,
                    pending,
                    username=username or "",
                    login_error="Wrong username or password.",
                )
            del self._pending[request_id]
            try:
                headers, _body, status = self._server.create_authorization_response(
                    pending.uri,
                    http_method="GET",
                    scopes=list(pending.scopes),
                    credentials={"user": self._user_id},
                )
            except errors.FatalClientError as exc:
                return self._error_page(exc.description, pending.client_id)
        log.info("authorization granted client_id=%s", pending.client_id)
        return (
            _redirect(headers["Location"])
            if status == 302
            else self._error_page(
                "The authorization request could not be completed.", pending.client_id
            )
        )

    def _credentials_ok(self, username: str | None, password: str | None) -> bool:
        if username is None or password is None:
            return False
        # Both compared every time so timing does not tell which one was wrong.
        user_ok = hmac.compare_digest(username.encode(), self._username.encode())
        password_ok = hmac.compare_digest(password.encode(), self._password.encode())
        return user_ok and password_ok

    def _remember(self, pending: _PendingAuthorization) -> str:
        with self._lock:
            now = self._clock()
            self._pending = {k: v for k, v in self._pending.items() if v.expires_at > now}
            while len(self._pending) >= MAX_PENDING:
                del self._pending[next(iter(self._pending))]  # oldest first (insertion order)
            request_id = secrets.token_urlsafe(32)
            self._pending[request_id] = pending
            return request_id

    def _pending_for(self, request_id: str) -> _PendingAuthorization | None:
        pending = self._pending.get(request_id)
        if pending is None or self._clock() >= pending.expires_at:
            self._pending.pop(request_id, None)
            return None
        return pending

    def _consent_page(
        self,
        request: Request,
        request_id: str,
        pending: _PendingAuthorization,
        *,
        username: str = "",
        login_error: str | None = None,
    ) -> Response:
        html = self._pages.get_template("consent.html").render(
            fatal_error=None,
            form_action=request.url.path,
            request_id=request_id,
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            scopes=[(s, scope_label(s)) for s in pending.scopes],
            demo_username=self._username,
            demo_password=self._password,
            username=username,
            login_error=login_error,
        )
        return HTMLResponse(html, status_code=200, headers=_PAGE_HEADERS)

    def _error_page(self, message: str, client_id: str | None) -> Response:
        html = self._pages.get_template("consent.html").render(
            fatal_error=message, client_id=client_id
        )
        return HTMLResponse(html, status_code=400, headers=_PAGE_HEADERS)

    # --- /o/token/ and /o/revoke_token/ --------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        with self._lock:
            self._token_requests += 1
        return await self._oauthlib_post(request, self._server.create_token_response)

    async def _revoke(self, request: Request) -> Response:
        return await self._oauthlib_post(request, self._server.create_revocation_response)

    async def _oauthlib_post(
        self, request: Request, endpoint: Callable[..., tuple[dict[str, str], str | None, int]]
    ) -> Response:
        """Hand a form POST to an oauthlib endpoint and relay its headers, body and status."""
        body = await _read_body(request)
        if body is None:
            return _invalid_request_response(_BODY_TOO_LARGE, status=413)
        try:
            text = body.decode("utf-8")
            with self._lock:
                headers, payload, status = endpoint(
                    str(request.url), http_method="POST", body=text, headers=dict(request.headers)
                )
        except (UnicodeDecodeError, ValueError):
            # oauthlib raises ValueError for a body that is not url-encoded.
            return _invalid_request_response(_BAD_BODY)
        return _oauth_response(headers, payload, status)
