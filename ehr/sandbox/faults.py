"""Fault injection and the request log of the sandbox.

``FaultInjector`` holds the knobs a test (or the admin endpoint) turns to make the sandbox
misbehave the way a real upstream does: latency, random 500/502/503 from a seeded PRNG, a burst
of 429s, an HTML page with status 200 instead of any API answer, malformed or truncated JSON on
list responses, and a ``next`` link on another host. Token faults (expire/revoke everything) are one-shot actions on
the OAuth provider and live in the admin endpoint.

``RequestLog`` records every request the server answers: method, path, the NAMES of the query
parameters (values can hold PHI such as a patient name filter), status, duration and the
calling ``client_id``. ``RequestLogMiddleware`` fills it from the ASGI layer, so 404s and 405s
are logged too.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Host used by the "next link points to another host" fault: reserved, never resolvable.
FOREIGN_HOST = "evil.example.invalid"
# Request-log entries kept in memory; older ones are dropped (benchmarks make many requests).
MAX_LOG_ENTRIES = 100_000
# Largest injected latency accepted, so a typo cannot hang a test run for hours.
MAX_LATENCY_MS = 60_000
# Largest "next N responses" count accepted by a knob.
MAX_COUNT = 1_000_000
# Path prefix excluded from the request log: the admin endpoints observe, they are not traffic.
ADMIN_PREFIX = "/sandbox-admin"

ListFault = Literal["malformed_json", "truncated_json"]
PreFault = Literal["throttle", "html_200", "error_500", "error_502", "error_503"]


@dataclass(slots=True)
class FaultSettings:
    """Current fault knobs. Counts are "the next N" responses and go down as they fire."""

    latency_ms: int = 0
    error_500_rate: float = 0.0
    error_502_rate: float = 0.0
    error_503_rate: float = 0.0
    throttle_next: int = 0
    malformed_json_next: int = 0
    truncated_json_next: int = 0
    html_200_next: int = 0
    foreign_next_link: bool = False
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


_RATES = ("error_500_rate", "error_502_rate", "error_503_rate")
_COUNTS = ("throttle_next", "malformed_json_next", "truncated_json_next", "html_200_next")


def validate_fault_update(data: object) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Check a partial settings update; returns (clean values, DRF-style field errors)."""
    if not isinstance(data, dict):
        return {}, {"non_field_errors": ["Expected a JSON object."]}
    clean: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    names = {f.name for f in dataclasses.fields(FaultSettings)}
    for name, value in data.items():
        if name not in names:
            continue
        if name in _RATES:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not 0.0 <= float(value) <= 1.0:
                errors[name] = ["Must be a number between 0 and 1."]
            else:
                clean[name] = float(value)
        elif name == "foreign_next_link":
            if not isinstance(value, bool):
                errors[name] = ["Must be a valid boolean."]
            else:
                clean[name] = value
        else:
            upper = MAX_LATENCY_MS if name == "latency_ms" else MAX_COUNT
            if name == "seed":
                upper = 2**63
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
                errors[name] = [f"Must be an integer between 0 and {upper}."]
            else:
                clean[name] = value
    total = sum(clean.get(r, 0.0) for r in _RATES)
    if total > 1.0:
        errors["non_field_errors"] = ["The error rates must add up to at most 1."]
    return clean, errors


class FaultInjector:
    """Thread-safe holder of ``FaultSettings`` that decides, per request, which fault fires."""

    def __init__(self, defaults: FaultSettings | None = None) -> None:
        self._defaults = dataclasses.replace(defaults or FaultSettings())
        self._settings = dataclasses.replace(self._defaults)
        self._rng = random.Random(self._settings.seed)
        self._lock = threading.Lock()

    def settings(self) -> FaultSettings:
        """A copy of the current settings."""
        with self._lock:
            return dataclasses.replace(self._settings)

    def update(self, **values: Any) -> FaultSettings:
        """Change some knobs (validated names/values; see ``validate_fault_update``)."""
        clean, errors = validate_fault_update(values)
        if errors:
            raise ValueError(f"invalid fault settings: {sorted(errors)}")
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **clean)
            if "seed" in clean:
                self._rng = random.Random(clean["seed"])
            return dataclasses.replace(self._settings)

    def reset(self) -> FaultSettings:
        """Back to the defaults the server started with (and reseed the PRNG)."""
        with self._lock:
            self._settings = dataclasses.replace(self._defaults)
            self._rng = random.Random(self._settings.seed)
            return dataclasses.replace(self._settings)

    def latency_s(self) -> float:
        """Delay to add before answering an API request."""
        with self._lock:
            return self._settings.latency_ms / 1000.0

    def take_pre_fault(self) -> PreFault | None:
        """The failure to answer this API request with instead of handling it, or None.

        Counted knobs fire first (a 429 burst, then HTML pages); then one seeded draw decides
        between 500, 502, 503 and no error according to the configured rates.
        """
        with self._lock:
            s = self._settings
            if s.throttle_next > 0:
                s.throttle_next -= 1
                return "throttle"
            if s.html_200_next > 0:
                s.html_200_next -= 1
                return "html_200"
            if s.error_500_rate + s.error_502_rate + s.error_503_rate <= 0:
                return None
            draw = self._rng.random()
            if draw < s.error_500_rate:
                return "error_500"
            draw -= s.error_500_rate
            if draw < s.error_502_rate:
                return "error_502"
            draw -= s.error_502_rate
            return "error_503" if draw < s.error_503_rate else None

    def take_list_fault(self) -> ListFault | None:
        """Which body corruption (if any) to apply to this successful list response."""
        with self._lock:
            s = self._settings
            if s.malformed_json_next > 0:
                s.malformed_json_next -= 1
                return "malformed_json"
            if s.truncated_json_next > 0:
                s.truncated_json_next -= 1
                return "truncated_json"
            return None

    def next_link_host(self) -> str | None:
        """Host to put in ``next`` links instead of the real one, or None."""
        with self._lock:
            return FOREIGN_HOST if self._settings.foreign_next_link else None


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One answered request. ``query_names`` are parameter names only, never values."""

    method: str
    path: str
    query_names: tuple[str, ...]
    status: int
    duration_ms: float
    client_id: str | None
    at: float

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict."""
        return dataclasses.asdict(self)


class RequestLog:
    """Bounded, thread-safe log of answered requests (newest last)."""

    def __init__(self, max_entries: int = MAX_LOG_ENTRIES) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=max_entries)
        self._lock = threading.Lock()

    def add(self, entry: LogEntry) -> None:
        """Append one entry."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LogEntry]:
        """All kept entries, oldest first."""
        with self._lock:
            return list(self._entries)

    def reset(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def count(
        self,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
    ) -> int:
        """How many entries match all the given filters."""
        with self._lock:
            return sum(
                1
                for e in self._entries
                if (method is None or e.method == method.upper())
                and (path_prefix is None or e.path.startswith(path_prefix))
                and (status is None or e.status == status)
            )


class RequestLogMiddleware:
    """ASGI middleware that times every HTTP request and appends it to a ``RequestLog``.

    The endpoint stores the authenticated client id in ``scope["state"]["client_id"]``.
    """

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app dies before starting a response
        logged = False

        def record() -> None:
            nonlocal logged
            if logged:
                return
            logged = True
            raw_query = scope.get("query_string", b"").decode("latin-1")
            names = tuple(
                dict.fromkeys(name for name, _ in parse_qsl(raw_query, keep_blank_values=True))
            )
            state = scope.get("state") or {}
            self.log.add(
                LogEntry(
                    method=str(scope.get("method", "")),
                    path=str(scope.get("path", "")),
                    query_names=names,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000.0, 3),
                    client_id=state.get("client_id"),
                    at=time.time(),
                )
            )

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Logged before the last byte leaves: a client that has its whole answer
                # must find the request in the log (tests count it right after the call).
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            record()
