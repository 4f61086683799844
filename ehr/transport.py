"""The HTTP transport every EHR call goes through: one pooled session per EHR connection.

It owns what must be right for every request, so backends only name paths and parameters:

- TLS: ``https://`` required (plain HTTP only to loopback), certificates always verified,
  named connect/read timeouts (SECURITY.md TR-01, STYLE.md practice 11).
- Auth: a bearer token from a ``TokenSource``; an upstream 401 on a read refreshes once and
  retries once, a second 401 means "reconnect"; a 401 on a write is never resent (TK-03).
- Redirects: never followed by requests; a GET follows at most ``MAX_REDIRECTS`` same-origin
  hops itself, resending the Authorization header (DrChrono's ``/api/users/current`` 302);
  another origin is refused before anything is sent there (RL-03).
- Retries (``ehr.retry``): reads retry on 429/502/503/504 and transport failures honouring
  ``Retry-After``; writes are never re-sent once bytes may have left (RL-01, RL-02).
- Pacing (``ehr.throttle``): a token bucket, then the shared hourly budget, before every request.
- Bodies: streamed with a size cap, strict UTF-8 JSON with a nesting limit (RL-04, §3.4).
- Paging (``ehr.paging``): a lazy record stream with origin, loop and page-cap checks (RL-03).

Every logical call gets a correlation id, sent as ``X-Correlation-ID``, put on every
``EHRError`` raised and on its log records. Logs carry the method, the URL path (never query
values), status, duration and correlation id: never bodies, tokens or query values. Transport
exceptions are re-raised ``from None`` because their text holds the full URL with query values.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter

from ehr.drchrono.quirks import list_key
from ehr.errors import (
    MAX_ERROR_BODY_BYTES,
    ConfigurationError,
    EHRError,
    UnexpectedResponseError,
    UnsafeRedirectError,
    UpstreamDataError,
    UpstreamTimeoutError,
    UpstreamTooLargeError,
    UpstreamUnavailableError,
    WriteOutcomeUnknownError,
    error_from_response,
)
from ehr.paging import MAX_PAGE_SIZE, MAX_PAGES, Origin, RecordStream, origin_of
from ehr.retry import (
    RetryPolicy,
    backoff_seconds,
    never_sent,
    read_retrying,
    retryable_connect_failure,
)
from ehr.throttle import BudgetGate, Throttle

__all__ = [
    "CONNECT_TIMEOUT_S",
    "MAX_JSON_DEPTH",
    "MAX_REDIRECTS",
    "MAX_RESPONSE_BYTES",
    "READ_TIMEOUT_S",
    "EHRTransport",
    "RecordStream",
    "TokenSource",
    "WriteResponse",
    "new_correlation_id",
    "utcnow",
]

logger = logging.getLogger(__name__)

# Opening a TCP+TLS connection to a healthy API host takes well under a second; 5 s rides out a
# slow handshake yet fails fast when the host is down.
CONNECT_TIMEOUT_S = 5.0
# Longest silence between bytes of an answer: a 250-record verbose page can take several
# seconds to build upstream; 30 s bounds a stalled socket without cutting those off.
READ_TIMEOUT_S = 30.0
# Largest response body read (decoded): a full 250-record verbose page is a few MB, so 20 MB
# only trips on a runaway answer (page_size ignored, 50k records) and bounds memory (§3.4).
MAX_RESPONSE_BYTES = 20 * 1024 * 1024
# Same-origin redirect hops followed for a GET; DrChrono's users/current needs one.
MAX_REDIRECTS = 3
# Deepest JSON nesting accepted: DrChrono objects nest 3-4 levels; the limit stops a hostile
# body from driving the parser into RecursionError (§3.4: "deeply nested (10k levels)").
MAX_JSON_DEPTH = 64
# Read size per chunk while streaming a body.
CHUNK_BYTES = 64 * 1024
# Pooled connections kept per host: Streamlit serves sessions from several threads at once.
POOL_CONNECTIONS = 10
# Length of the correlation id shown to users ("ref 1a2b3c4d5e6f").
CORRELATION_ID_CHARS = 12

WriteMethod = Literal["POST", "PUT", "PATCH", "DELETE"]
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_LOOPBACK_NAMES = frozenset({"localhost"})
# Bytes that are neither a quote nor a bracket, deleted to get a JSON text's skeleton.
_NOT_SKELETON = bytes(range(256)).translate(None, b'"[]{}')
# A string literal of the skeleton (escapes already removed) and an innermost bracket pair.
_STRING_LITERAL = re.compile(rb'"[^"]*"')
_BRACKET_PAIR = re.compile(rb"\[\]|\{\}")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the default transport clock)."""
    return datetime.now(UTC)


def new_correlation_id() -> str:
    """A fresh short random id for one logical EHR call."""
    return uuid.uuid4().hex[:CORRELATION_ID_CHARS]


class TokenSource(Protocol):
    """Where the transport gets bearer tokens (the token-lifecycle layer implements it)."""

    def access_token(self) -> str:
        """A valid access token, refreshed proactively before expiry.

        Raises ``NotConnectedError`` or ``ReauthorizationRequiredError``.
        """
        ...

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        """Refresh once after upstream rejected ``rejected_token`` with 401 (or return the
        token another caller just refreshed); raises ``ReauthorizationRequiredError``."""
        ...


@dataclass(frozen=True, slots=True)
class WriteResponse:
    """The answer to a successful write: the 2xx status and the parsed JSON body (None for 204)."""

    status: int
    body: Any
    correlation_id: str


@dataclass(frozen=True, slots=True)
class _Reply:
    """One fully read HTTP answer (body bounded by the size limit)."""

    status: int
    headers: Mapping[str, str]
    body: bytes | None
    url: str


class _BearerAuth(requests.auth.AuthBase):
    """Adds the bearer token. Passing auth explicitly also stops requests reading ``~/.netrc``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(<redacted>)"


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str) -> tuple[str, Origin]:
    """The normalised base URL and its origin; ConfigurationError unless it is safe (TR-01)."""
    parts = urlsplit(base_url.strip())
    origin = origin_of(base_url.strip())
    if origin is None or parts.scheme.lower() not in ("https", "http"):
        raise ConfigurationError(details={"setting": "base_url", "problem": "not an http(s) URL"})
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ConfigurationError(
            details={"setting": "base_url", "problem": "credentials, query or fragment"}
        )
    if origin[0] == "http" and not _is_loopback(origin[1]):
        raise ConfigurationError(
            details={"setting": "base_url", "problem": "https is required for non-loopback hosts"}
        )
    return f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}", origin


def _too_deep(body: bytes, limit: int) -> bool:
    """True when the JSON text ``body`` nests objects/arrays more than ``limit`` deep.

    Only valid for a body ``json.loads`` has accepted. Works on the bracket skeleton, with
    C-speed bytes operations, because walking the parsed value cost half as much again as
    parsing it (issue 7): escaped backslashes and quotes are dropped (left to right, as JSON
    reads escapes), then everything but quotes and brackets, then string literals (in valid
    UTF-8 JSON no other byte can look like a quote or bracket). What is left is the nesting
    of the value; each pass of ``_BRACKET_PAIR`` strips exactly one level.
    """
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Adjacent quotes close one string and open the next (or are an empty string): dropping
    # them merges neighbouring strings, which leaves which brackets are inside one unchanged.
    skeleton = body.translate(None, _NOT_SKELETON).replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = _STRING_LITERAL.sub(b"", skeleton)
    # Quick bound first: one ``replace`` drops one kind of innermost pair, so at most one level
    # of any chain; emptied within ``limit`` of them, the depth is within the limit.
    quick = skeleton
    for step in range(limit):
        quick = quick.replace(b"[]" if step % 2 == 0 else b"{}", b"")
        if not quick:
            return False
    for _level in range(limit):  # exact: each pass strips exactly the innermost level
        skeleton = _BRACKET_PAIR.sub(b"", skeleton)
        if not skeleton:
            return False
    return bool(skeleton)


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def _parse_json(reply: _Reply) -> Any:
    """The JSON value of a 2xx body; UpstreamDataError for anything else (RL-04, §3.4)."""
    media = _media_type(reply.headers)
    if media and media != "application/json" and not media.endswith("+json"):
        # An HTML error page served with 200 (a proxy or captive portal) lands here.
        raise UpstreamDataError(details={"problem": "not JSON", "content_type": media[:60]})
    body = reply.body or b""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UpstreamDataError(details={"problem": "invalid UTF-8"}) from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise UpstreamDataError(
            details={"problem": "nesting too deep", "limit": MAX_JSON_DEPTH}
        ) from None
    except ValueError:
        raise UpstreamDataError(details={"problem": "malformed JSON"}) from None
    if isinstance(value, dict | list) and _too_deep(body, MAX_JSON_DEPTH):
        raise UpstreamDataError(details={"problem": "nesting too deep", "limit": MAX_JSON_DEPTH})
    return value


def _read_body(response: requests.Response, limit: int, *, strict: bool) -> bytes | None:
    """Read at most ``limit`` decoded bytes of a streamed body.

    ``strict``: over the limit raises UpstreamTooLargeError; otherwise (error bodies, which are
    only mined for field names) gives None.
    """
    declared = response.headers.get("Content-Length", "")
    if strict and declared.isdigit() and int(declared) > limit:
        raise UpstreamTooLargeError(details={"limit_bytes": limit})
    buffer = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        buffer += chunk
        if len(buffer) > limit:
            if strict:
                raise UpstreamTooLargeError(details={"limit_bytes": limit})
            return None
    return bytes(buffer)


def _transport_error(exc: BaseException, *, write: bool) -> EHRError:
    """The EHRError for a requests failure (only the exception's type name is kept)."""
    details: dict[str, Any] = {"cause": type(exc).__name__}
    if isinstance(exc, requests.exceptions.SSLError):
        details["reason"] = "tls"
        return UpstreamUnavailableError(details=details)
    if write and not never_sent(exc):
        return WriteOutcomeUnknownError(details=details)
    if write:
        details["reason"] = "connect_failed"
        return UpstreamUnavailableError(details=details)
    if isinstance(exc, requests.exceptions.Timeout):
        return UpstreamTimeoutError(details=details)
    return UpstreamUnavailableError(details=details)


class EHRTransport:
    """The HTTP client of one EHR connection (see the module docstring for what it enforces).

    ``tokens`` supplies bearer tokens; ``budget`` is the shared hourly call budget (None: no
    budget check); ``throttle`` paces requests (None: a default ``Throttle`` using ``sleep``);
    ``session`` is injectable for tests (default: a new pooled session, closed by ``close()``);
    ``sleep`` and ``clock`` (aware UTC datetimes) are injectable so tests never really wait.
    Raises ``ConfigurationError`` for a base URL that is not https (or http to loopback).
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        budget: BudgetGate | None = None,
        throttle: Throttle | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = utcnow,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url, self._origin = _check_base_url(base_url)
        self._tokens = tokens
        self._budget = budget
        self._throttle = throttle if throttle is not None else Throttle(sleep=sleep)
        self._owns_session = session is None
        self._session = session if session is not None else self._new_session()
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._max_response_bytes = max_response_bytes
        self._count_lock = threading.Lock()
        self._requests_made = 0

    @staticmethod
    def _new_session() -> requests.Session:
        session = requests.Session()
        # max_retries=0: urllib3 must never resend anything on its own (RL-02); retries are ours.
        adapter = HTTPAdapter(
            pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_CONNECTIONS, max_retries=0
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    @property
    def requests_made(self) -> int:
        """Requests sent (or attempted) so far: retries and redirect hops included."""
        with self._count_lock:
            return self._requests_made

    def close(self) -> None:
        """Close the pooled connections (only of a session this transport created)."""
        if self._owns_session:
            self._session.close()

    # -- public calls ------------------------------------------------------------------------

    def get_json(self, path_or_url: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a path (or a same-origin absolute URL) and return its parsed JSON body.

        Retries and the 401 refresh follow the module docstring. Raises an ``EHRError``:
        ``RateLimitedError``, ``UpstreamUnavailableError``, ``UpstreamTimeoutError``,
        ``UpstreamDataError`` (incl. too large), ``UnsafeRedirectError``,
        ``ReauthorizationRequiredError``, ``UpstreamForbiddenError`` or another mapped status.
        """
        cid = new_correlation_id()
        try:
            url = self._resolve(path_or_url)
            return self._get_parsed(url, params, cid)
        except EHRError as exc:
            self._tag(exc, cid)
            raise

    def write(
        self,
        method: WriteMethod,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> WriteResponse:
        """Send one POST/PUT/PATCH/DELETE, never re-sent once bytes may have left (RL-02).

        Only a failure to open the connection is retried (``RetryPolicy.write_connect_attempts``
        in all). Raises ``WriteOutcomeUnknownError`` after a read timeout, a reset after sending,
        a 5xx, or an unreadable success body; ``RateLimitedError`` on 429; redirects are not
        followed; other statuses map through ``error_from_response``.
        """
        verb = method.upper()
        if verb not in _WRITE_METHODS:
            raise ValueError("write() takes POST, PUT, PATCH or DELETE")
        cid = new_correlation_id()
        try:
            url = self._resolve(path)
            return self._write(verb, url, json, params, cid)
        except EHRError as exc:
            self._tag(exc, cid)
            raise

    def iter_records(
        self, path: str, params: Mapping[str, Any] | None = None, *, max_pages: int = MAX_PAGES
    ) -> RecordStream:
        """A lazy stream of the records of a list endpoint across all its pages.

        The first page asks for ``page_size`` = ``MAX_PAGE_SIZE`` unless ``params`` sets one
        (appointments need a smaller one). ``next`` links are followed per ``RecordStream``;
        each page is a GET with the read retries. One correlation id covers the whole walk.
        """
        cid = new_correlation_id()
        query = {"page_size": MAX_PAGE_SIZE, **(params or {})}
        try:
            base = self._resolve(path)
        except EHRError as exc:
            self._tag(exc, cid)
            raise
        prepared_url = requests.Request("GET", base, params=query).prepare().url
        assert prepared_url is not None  # a GET with a URL always prepares one

        def fetch_page(url: str) -> Any:
            return self._get_parsed(url, None, cid)

        return RecordStream(
            fetch_page,
            prepared_url,
            base_origin=self._origin,
            list_key=list_key,
            max_pages=max_pages,
            correlation_id=cid,
        )

    # -- reads ---------------------------------------------------------------------------------

    def _get_parsed(self, url: str, params: Mapping[str, Any] | None, cid: str) -> Any:
        token = self._tokens.access_token()
        reply = self._get_with_retries(url, params, token, cid)
        if reply.status == 401:
            # TK-03: one refresh, one more try; a second 401 maps to ReauthorizationRequired.
            logger.info("GET %s -> 401; refreshing the token once [%s]", _path(url), cid)
            token = self._tokens.refresh_after_unauthorized(token)
            reply = self._get_with_retries(url, params, token, cid)
        if not 200 <= reply.status < 300:
            self._raise_for_reply(reply, "GET", cid)
        return _parse_json(reply)

    def _get_with_retries(
        self, url: str, params: Mapping[str, Any] | None, token: str, cid: str
    ) -> _Reply:
        def log_retry(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            what = "failed"
            if outcome is not None:
                what = (
                    type(outcome.exception()).__name__
                    if outcome.failed
                    else str(outcome.result().status)
                )
            logger.warning(
                "GET %s -> %s; retry %d of %d in %.1f s [%s]",
                _path(url),
                what,
                state.attempt_number,
                self._retry.max_attempts - 1,
                state.upcoming_sleep,
                cid,
                extra={"correlation_id": cid},
            )

        retrying = read_retrying(
            self._retry, sleep=self._sleep, clock=self._clock, before_sleep=log_retry
        )
        try:
            reply: _Reply = retrying(self._get_following_redirects, url, params, token, cid)
        except requests.exceptions.RequestException as exc:
            raise _transport_error(exc, write=False) from None
        return reply

    def _get_following_redirects(
        self, url: str, params: Mapping[str, Any] | None, token: str, cid: str
    ) -> _Reply:
        reply = self._send("GET", url, token, cid, params=params)
        for _hop in range(MAX_REDIRECTS):
            if reply.status not in _REDIRECT_STATUSES:
                return reply
            location = reply.headers.get("Location")
            if not location:
                return reply  # maps to UnexpectedResponseError
            target = urljoin(reply.url, location)
            self._require_same_origin(target, reply.status)
            # Same origin: the Authorization header is resent (drchrono.md §1.5).
            reply = self._send("GET", target, token, cid)
        if reply.status in _REDIRECT_STATUSES:
            raise UnexpectedResponseError(
                details={"status": reply.status, "problem": "too many redirects"}
            )
        return reply

    # -- writes --------------------------------------------------------------------------------

    def _write(
        self, verb: str, url: str, body: Any, params: Mapping[str, Any] | None, cid: str
    ) -> WriteResponse:
        token = self._tokens.access_token()
        attempts = max(1, self._retry.write_connect_attempts)
        for attempt in range(1, attempts + 1):
            try:
                reply = self._send(verb, url, token, cid, params=params, json_body=body)
                break
            except requests.exceptions.RequestException as exc:
                if retryable_connect_failure(exc) and attempt < attempts:
                    # The connection never opened, so nothing was sent: safe to try again.
                    wait = backoff_seconds(attempt, self._retry)
                    logger.warning(
                        "%s %s: connection not established (%s); retry %d of %d in %.1f s [%s]",
                        verb,
                        _path(url),
                        type(exc).__name__,
                        attempt,
                        attempts - 1,
                        wait,
                        cid,
                        extra={"correlation_id": cid},
                    )
                    self._sleep(wait)
                    continue
                error = _transport_error(exc, write=True)
                if isinstance(error, UpstreamUnavailableError):
                    error.details["attempts"] = attempt
                raise error from None
        if reply.status in _REDIRECT_STATUSES:
            target = urljoin(reply.url, reply.headers.get("Location", ""))
            self._require_same_origin(target, reply.status)
            # RL-02 / §3.4: a redirect on a write is never followed automatically.
            raise UnexpectedResponseError(
                details={"status": reply.status, "problem": "redirect on a write not followed"}
            )
        if not 200 <= reply.status < 300:
            self._raise_for_reply(reply, verb, cid)
        if reply.status == 204 or not reply.body:
            return WriteResponse(reply.status, None, cid)
        try:
            parsed = _parse_json(reply)
        except UpstreamDataError:
            # Upstream applied the write but its answer is unreadable: the caller must not
            # conclude it failed (a resend would duplicate it), so it checks upstream instead.
            raise WriteOutcomeUnknownError(
                details={"status": reply.status, "problem": "unreadable success body"}
            ) from None
        return WriteResponse(reply.status, parsed, cid)

    # -- shared --------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        token: str,
        cid: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> _Reply:
        """Pace, spend budget, send one request and read its bounded body."""
        self._throttle.acquire()
        if self._budget is not None:
            self._budget.spend(1)
        with self._count_lock:
            self._requests_made += 1
        started = time.perf_counter()
        status: int | str = "error"
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                json=json_body,
                headers={"Accept": "application/json", "X-Correlation-ID": cid},
                auth=_BearerAuth(token),
                timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                allow_redirects=False,
                stream=True,
                verify=True,
            )
            status = response.status_code
            with response:
                success = 200 <= response.status_code < 300
                if success:
                    body = _read_body(response, self._max_response_bytes, strict=True)
                elif response.status_code in _REDIRECT_STATUSES:
                    body = None  # never read: only the Location header matters
                else:
                    body = _read_body(response, MAX_ERROR_BODY_BYTES, strict=False)
                return _Reply(response.status_code, response.headers, body, response.url)
        finally:
            logger.debug(
                "%s %s -> %s in %.0f ms [%s]",
                method,
                _path(url),
                status,
                (time.perf_counter() - started) * 1000.0,
                cid,
                extra={"correlation_id": cid},
            )

    def _resolve(self, path_or_url: str) -> str:
        """An absolute URL for a path under the base URL, or a same-origin absolute URL."""
        parts = urlsplit(path_or_url)
        if parts.scheme or parts.netloc:
            self._require_same_origin(path_or_url, None)
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def _require_same_origin(self, url: str, status: int | None) -> None:
        if origin_of(url) != self._origin:
            details: dict[str, Any] = {"problem": "another origin"}
            if status is not None:
                details["status"] = status
            raise UnsafeRedirectError(details=details)

    def _raise_for_reply(self, reply: _Reply, method: str, cid: str) -> NoReturn:
        error = error_from_response(
            reply.status,
            reply.body,
            reply.headers,
            method=method,
            correlation_id=cid,
            now=self._clock(),
            path=_path(reply.url),
        )
        unclear = method in _WRITE_METHODS and reply.status >= 500
        if unclear and not isinstance(error, WriteOutcomeUnknownError):
            # A 5xx on a write (503 included) may come after upstream applied it; only a check
            # upstream can tell (RL-02), so the outcome is reported as unknown.
            error = WriteOutcomeUnknownError(details={"status": reply.status}, correlation_id=cid)
        raise error

    @staticmethod
    def _tag(exc: EHRError, cid: str) -> None:
        if exc.correlation_id is None:
            exc.correlation_id = cid


def _path(url: str) -> str:
    """The path of a URL, for logs: never the query string (its values can hold PHI)."""
    return urlsplit(url).path or "/"
