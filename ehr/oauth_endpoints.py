"""The calls to DrChrono's OAuth endpoints: code exchange, refresh and revocation, nothing more.

- ``exchange_code`` POSTs an authorization code with its PKCE verifier; ``grant_from`` turns the
  token response into a ``TokenGrant``.
- ``request_refresh`` is the one refresh-token call; ``ehr.tokens`` runs it inside its locks.
- ``revoke_tokens`` revokes a refresh and an access token (RFC 7009).

Why a module of its own: these are the token-endpoint mechanics (requests-oauthlib sessions, the
client credentials in the form body, named timeouts, mapping every failure onto the EHR error
tree), and they are shared by two callers with different concerns. ``ehr.oauth`` runs the
connect and disconnect flows (state checks, the profile read, storing or deleting the connection
and writing their audit rows); ``ehr.tokens`` refreshes. Nothing here touches the database or the
audit log.

Token-endpoint calls use requests-oauthlib's ``OAuth2Session`` with the client credentials in the
form body, as DrChrono documents. That library logs tokens at DEBUG, so its loggers (and
oauthlib's and urllib3's) are held at WARNING before every call (LG-01). Nothing here logs or
puts into exception text a code, verifier, token or the client secret, and the only upstream
text kept is an error code that looks like an RFC 6749 code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

import requests
from oauthlib.oauth2.rfc6749 import errors as oauth_errors
from oauthlib.oauth2.rfc6749.utils import is_secure_transport
from requests_oauthlib import OAuth2Session

from ehr.errors import (
    ConfigurationError,
    EHRError,
    GrantRefusedError,
    RateLimitedError,
    UpstreamDataError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    parse_retry_after,
)
from ehr.redaction import QUIET_LOGGERS
from storage.crypto import Secret
from storage.tokens import TokenGrant, expires_at_from, utc_now

__all__ = [
    "AUTHORIZE_PATH",
    "BEARER",
    "EXCHANGE_TIMEOUT_S",
    "REFRESH_TIMEOUT_S",
    "REVOKE_PATH",
    "REVOKE_TIMEOUT_S",
    "TOKEN_PATH",
    "UNRECOGNISED_ERROR",
    "OAuthClient",
    "error_code",
    "exchange_code",
    "grant_from",
    "request_refresh",
    "revoke_tokens",
]

logger = logging.getLogger(__name__)

# DrChrono's OAuth endpoints, relative to the configured base URL.
AUTHORIZE_PATH = "/o/authorize/"
TOKEN_PATH = "/o/token/"  # noqa: S105  a URL path, not a credential
REVOKE_PATH = "/o/revoke_token/"
# The only token type DrChrono issues and the transport sends.
BEARER = "Bearer"

# (connect, read) seconds. The code exchange: DrChrono's codes "expire extremely quickly", and
# the user is waiting on the callback, so a slow token endpoint fails fast instead of hanging.
EXCHANGE_TIMEOUT_S = (5.0, 10.0)
# A refresh runs inside the refresh lock; on SQLite that is the database write lock, whose
# waiters give up after storage's 5 s busy timeout, so the whole call must fit well inside it.
REFRESH_TIMEOUT_S = (2.0, 2.5)
# Revocation at disconnect is best effort: the local delete happens whatever it answers.
REVOKE_TIMEOUT_S = (5.0, 10.0)

# RFC 6749 error codes are lower-case ASCII words; anything else from upstream is not echoed.
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
UNRECOGNISED_ERROR = "unrecognised_error"
# RFC 6749 errors meaning "the server failed", not "your grant is bad".
_SERVER_SIDE_ERRORS = frozenset({"server_error", "temporarily_unavailable"})


class OAuthClient(Protocol):
    """The registered application as these calls need it (``ehr.oauth.OAuthClientConfig``)."""

    @property
    def client_id(self) -> str: ...

    @property
    def client_secret(self) -> Secret: ...

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` under the EHR's base URL."""
        ...


def error_code(value: object) -> str:
    """``value`` if it looks like an RFC 6749 error code, else ``unrecognised_error``."""
    text = value if isinstance(value, str) else ""
    return text if _ERROR_CODE.fullmatch(text) else UNRECOGNISED_ERROR


def _quiet_oauth_loggers() -> None:
    """Hold the HTTP and OAuth libraries at WARNING: at DEBUG they log codes and tokens (LG-01).

    Their own level, not the effective one: a NOTSET logger follows root down to DEBUG.
    """
    for name in QUIET_LOGGERS:
        library_logger = logging.getLogger(name)
        if library_logger.level < logging.WARNING:
            library_logger.setLevel(logging.WARNING)


class _BodyCredentials(requests.auth.AuthBase):
    """The client credentials travel in the form body (DrChrono's documented form). Passing an
    explicit auth also stops requests from adding ``~/.netrc`` credentials as a header."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_BODY_CREDENTIALS = _BodyCredentials()


def _refuse_server_failures(response: requests.Response) -> requests.Response:
    """Token-response hook: 429 and 5xx become EHR errors before oauthlib parses the body."""
    status = response.status_code
    if status == 429:
        retry_at = parse_retry_after(response.headers.get("Retry-After"), utc_now())
        raise RateLimitedError(retry_at=retry_at, details={"status": 429})
    if status in (408, 504):
        raise UpstreamTimeoutError(details={"status": status})
    if status >= 500:
        raise UpstreamUnavailableError(details={"status": status})
    return response


@contextmanager
def _token_session(
    client_id: str, http: requests.Session | None, redirect_uri: str | None = None
) -> Iterator[OAuth2Session]:
    """An ``OAuth2Session`` for one token call; it borrows ``http``'s adapters when given."""
    session = OAuth2Session(client_id, redirect_uri=redirect_uri)
    session.register_compliance_hook("access_token_response", _refuse_server_failures)
    session.register_compliance_hook("refresh_token_response", _refuse_server_failures)
    if http is not None:
        for prefix, adapter in http.adapters.items():
            session.mount(prefix, adapter)
        session.verify = http.verify
        session.cert = http.cert
        session.proxies = dict(http.proxies)
        session.trust_env = http.trust_env
    try:
        yield session
    finally:
        if http is None:  # borrowed adapters belong to the caller's session
            session.close()


def _token_call(call: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    """Run one token-endpoint call and map every failure onto the EHR error tree.

    Never retried: a code is single-use and, with rotation, a resent refresh could burn the new
    refresh token. Exceptions are re-raised ``from None``: library messages are not ours to show.
    """
    _quiet_oauth_loggers()
    try:
        return call()
    except EHRError:
        raise
    except oauth_errors.InsecureTransportError:
        raise ConfigurationError(
            details={"setting": "base_url", "problem": "https is required"}
        ) from None
    except oauth_errors.MissingTokenError:
        raise UpstreamDataError(details={"field": "access_token"}) from None
    except oauth_errors.OAuth2Error as exc:
        code = error_code(exc.error)
        if code in _SERVER_SIDE_ERRORS:
            raise UpstreamUnavailableError(details={"error_code": code}) from None
        raise GrantRefusedError(error_code=code) from None
    except requests.exceptions.Timeout as exc:
        raise UpstreamTimeoutError(details={"cause": type(exc).__name__}) from None
    except requests.exceptions.RequestException as exc:
        raise UpstreamUnavailableError(details={"cause": type(exc).__name__}) from None
    except ValueError:  # oauthlib: a token response it cannot read (e.g. expires_in not a number)
        raise UpstreamDataError(details={"problem": "unreadable token response"}) from None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if isinstance(value, str) and value.isdigit():
        return float(value) if int(value) > 0 else None
    return None


def _scopes(value: object, fallback: tuple[str, ...]) -> tuple[str, ...]:
    """Granted scopes: oauthlib gives a list (or the raw string); absent means as requested."""
    if value is None:
        return fallback
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list | tuple) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise UpstreamDataError(details={"field": "scope"})


def grant_from(
    token: Mapping[str, Any], received_at: datetime, fallback_scopes: tuple[str, ...]
) -> TokenGrant:
    """A ``TokenGrant`` from a token response; expiry from our receipt time, never ``Date``.

    ``fallback_scopes`` stand in when the response names none. Raises ``UpstreamDataError`` for
    a missing access token, a non-Bearer type, or an unreadable refresh token, expiry or scope.
    """
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise UpstreamDataError(details={"field": "access_token"})
    refresh = token.get("refresh_token")
    if refresh is not None and (not isinstance(refresh, str) or not refresh):
        raise UpstreamDataError(details={"field": "refresh_token"})
    token_type = token.get("token_type", BEARER)
    if not isinstance(token_type, str) or token_type.lower() != BEARER.lower():
        raise UpstreamDataError(details={"field": "token_type"})
    expires_at = None
    if token.get("expires_in") is not None:
        seconds = _seconds(token["expires_in"])
        if seconds is None:
            raise UpstreamDataError(details={"field": "expires_in"})
        expires_at = expires_at_from(received_at, seconds)
    return TokenGrant(
        access_token=Secret(access),
        refresh_token=None if refresh is None else Secret(refresh),
        token_type=BEARER,
        scopes=_scopes(token.get("scope"), fallback_scopes),
        expires_at=expires_at,
        obtained_at=received_at,
    )


def exchange_code(
    client: OAuthClient,
    code: str,
    *,
    code_verifier: Secret,
    redirect_uri: str,
    http: requests.Session | None = None,
) -> Mapping[str, Any]:
    """POST the code with its PKCE verifier and the redirect URI the authorize URL carried.

    Returns the token response for ``grant_from``. Raises ``GrantRefusedError`` (e.g.
    ``invalid_grant``: the code is spent, expired or bound to another verifier),
    ``UpstreamUnavailableError``, ``UpstreamTimeoutError``, ``RateLimitedError``,
    ``UpstreamDataError`` or ``ConfigurationError``. Never retried (see ``_token_call``).
    """
    with _token_session(client.client_id, http, redirect_uri=redirect_uri) as oauth:
        return _token_call(
            lambda: oauth.fetch_token(
                client.url(TOKEN_PATH),
                code=code,
                code_verifier=code_verifier.reveal(),
                client_secret=client.client_secret.reveal(),
                include_client_id=True,
                auth=_BODY_CREDENTIALS,
                timeout=EXCHANGE_TIMEOUT_S,
            )
        )


def request_refresh(
    client: OAuthClient,
    refresh_token: Secret,
    *,
    scopes: tuple[str, ...],
    http: requests.Session | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> TokenGrant:
    """POST one refresh-token grant and return the new pair.

    The expiry counts from ``clock()`` at receipt; ``scopes`` stand in when the response names
    none. A response without a refresh token keeps the stored one. Raises ``GrantRefusedError``
    (``invalid_grant``: the refresh token is dead), ``UpstreamUnavailableError``,
    ``UpstreamTimeoutError``, ``RateLimitedError``, ``UpstreamDataError`` or
    ``ConfigurationError``. Never retried (see ``_token_call``).
    """
    with _token_session(client.client_id, http) as oauth:
        token = _token_call(
            lambda: oauth.refresh_token(
                client.url(TOKEN_PATH),
                refresh_token=refresh_token.reveal(),
                auth=_BODY_CREDENTIALS,
                timeout=REFRESH_TIMEOUT_S,
                client_id=client.client_id,
                client_secret=client.client_secret.reveal(),
            )
        )
    return grant_from(token, clock(), scopes)


def revoke_tokens(
    client: OAuthClient,
    refresh_token: Secret | None,
    access_token: Secret | None,
    http: requests.Session | None = None,
) -> bool:
    """Revoke the refresh token, then the access token (RFC 7009); True if both were accepted.

    Best effort and never raises for an upstream failure: each refusal or transport error is
    logged by its status or exception type only, and the answer is False. Skipped (False) when
    the EHR base URL is not https, as the client secret would travel in clear.
    """
    url = client.url(REVOKE_PATH)
    if not is_secure_transport(url):
        logger.warning("token revocation skipped: the EHR base URL is not https")
        return False
    _quiet_oauth_loggers()
    pairs = [
        (t, hint)
        for t, hint in ((refresh_token, "refresh_token"), (access_token, "access_token"))
        if t
    ]
    session = http if http is not None else requests.Session()
    accepted = True
    try:
        for token, hint in pairs:
            try:
                response = session.post(
                    url,
                    data={
                        "token": token.reveal(),
                        "token_type_hint": hint,
                        "client_id": client.client_id,
                        "client_secret": client.client_secret.reveal(),
                    },
                    auth=_BODY_CREDENTIALS,
                    timeout=REVOKE_TIMEOUT_S,
                    allow_redirects=False,
                )
                response.close()
            except requests.exceptions.RequestException as exc:
                logger.warning("token revocation failed (%s)", type(exc).__name__)
                accepted = False
                continue
            if response.status_code != 200:
                logger.warning("token revocation refused (status=%s)", response.status_code)
                accepted = False
    finally:
        if http is None:
            session.close()
    return accepted and bool(pairs)
