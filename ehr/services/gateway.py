"""The service gateway: the one road from a page to the EHR (DESIGN.md section 4, SECURITY.md AU-01).

Every public service function is declared with ``@service(...)``, which runs, in this order:

1. ``authorize`` against the role policy. A refusal writes a DENIED audit row and raises
   ``PermissionDenied``; the backend is never even built, so no upstream request is made.
2. The per-session cache (reads only). A hit is audited like any read, with ``cache: hit``.
3. The backend call. Its result is trimmed to what the caller's role may see (``scope``).
4. The audit row with the real outcome. For reads the row is written *after* the call and
   before anything is returned: if it cannot be written the data is dropped and
   ``AuditWriteError`` raised (fail closed). A failed call writes an ERROR row and re-raises.

Writes are audited twice: an intent row before anything is sent (so an unwritable audit log
stops the write) and the outcome row after. If that second row fails the write has already
happened upstream, so the result is still returned and the failure logged: hiding a completed
write would only invite the user to send it twice.

The ``Gateway`` is built once per signed-in browser session by the composition root and holds
who is asking, how to reach the backend, and that session's cache, so cached PHI never crosses
users (CA-01).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, ParamSpec, Protocol, TypeVar, cast

from sqlalchemy import Engine

from ehr.backend import EHRBackend
from ehr.errors import AuditWriteError, EHRError
from ehr.policy import Action, PermissionDenied, Principal, authorize
from ehr.transport import new_correlation_id
from storage import audit
from storage.audit import AuditAction, AuditOutcome, AuditRecord
from storage.crypto import Cipher

__all__ = [
    "CACHE_MAX_ENTRIES",
    "CACHE_TTL_S",
    "Caller",
    "Gateway",
    "ServiceDecorator",
    "ServiceSpec",
    "SessionCache",
    "is_audited",
    "require",
    "self_audited",
    "service",
]

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Interactive pages rerun on every click; a minute keeps the schedule fresh and the budget low.
CACHE_TTL_S: Final = 60.0
# Bounded so a long session paging through thousands of patients cannot grow without limit.
CACHE_MAX_ENTRIES: Final = 256
# The attribute ``@service`` leaves on a function; the audit meta-test looks for it.
SPEC_ATTRIBUTE: Final = "__service_spec__"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the principal, their app session and (when known) their IP address."""

    principal: Principal
    session_ref: str | None = None
    client_ip: str | None = None


class SessionCache:
    """A small TTL cache owned by one browser session; entries are tagged by resource type.

    Keys always include the user id and role (a role change inside a session must not serve
    data fetched under the old role). Writes invalidate every entry of the resource types they
    touch. Thread-safe, because Streamlit may run a session's reruns on different threads.
    """

    def __init__(
        self,
        ttl_s: float = CACHE_TTL_S,
        max_entries: int = CACHE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (expires at, tags, value)
        self._entries: OrderedDict[Hashable, tuple[float, frozenset[str], Any]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[bool, Any]:
        """``(True, value)`` for a fresh entry, ``(False, None)`` otherwise."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            expires_at, _tags, value = entry
            if self._clock() > expires_at:
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, value

    def put(
        self, key: Hashable, tags: Iterable[str], value: Any, ttl_s: float | None = None
    ) -> None:
        """Store ``value`` (for ``ttl_s``, default the cache's), evicting the LRU entry when full."""
        lifetime = self._ttl_s if ttl_s is None else ttl_s
        with self._lock:
            self._entries[key] = (self._clock() + lifetime, frozenset(tags), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, tags: Iterable[str]) -> int:
        """Drop every entry tagged with any of ``tags``; returns how many went."""
        wanted = frozenset(tags)
        with self._lock:
            stale = [k for k, (_at, t, _v) in self._entries.items() if t & wanted]
            for key in stale:
                del self._entries[key]
            return len(stale)

    def clear(self) -> None:
        """Forget everything (sign-out, timeout, role change)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@dataclass
class Gateway:
    """What every service call needs: the caller, the audit log, the backend and the cache.

    ``backend`` is a factory, called only after authorisation succeeded, so a refused call
    never touches the EHR; it raises ``NotConnectedError`` when no EHR is connected.
    """

    caller: Caller
    engine: Engine
    audit_key: bytes = field(repr=False)
    backend: Callable[[], EHRBackend]
    cache: SessionCache = field(default_factory=SessionCache)
    # The storage cipher, for services that read encrypted tables (the analytics mirror).
    cipher: Cipher | None = field(default=None, repr=False)
    # The EHR's hourly call budget and the share background sync may use (from settings).
    calls_per_hour: int = 500
    sync_budget_share: float = 0.6

    def record(self, record: AuditRecord) -> None:
        """Append one audit row; ``AuditWriteError`` (of the EHR tree) when it cannot be written."""
        try:
            audit.append(self.engine, self.audit_key, record)
        except audit.AuditWriteError:
            raise AuditWriteError() from None


Scope = Callable[[Principal, Any], Any]
Describe = Callable[[Any], Mapping[str, Any]]


@dataclass(frozen=True)
class ServiceSpec:
    """How ``@service`` treats one function (kept on it for the audit meta-test)."""

    action: Action
    audit_action: AuditAction
    resource_type: str
    data_category: str
    resource_arg: str | None = None
    patient_arg: str | None = None
    cached: bool = False
    cache_ttl_s: float | None = None
    invalidates: frozenset[str] = frozenset()
    scope: Scope | None = None
    describe: Describe | None = None

    @property
    def is_write(self) -> bool:
        """True for actions that change upstream data."""
        return self.audit_action in {AuditAction.CREATE, AuditAction.UPDATE, AuditAction.DELETE}


class ServiceDecorator(Protocol):
    """What ``service(...)`` returns: keeps the decorated function's exact signature."""

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]: ...


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _argument(arguments: Mapping[str, Any], path: str | None) -> str | None:
    """The argument at ``path`` ("patient_id" or "draft.patient_id"), as audit text."""
    if path is None:
        return None
    head, *attributes = path.split(".")
    value = arguments.get(head)
    for attribute in attributes:
        value = getattr(value, attribute, None)
    return _text(value)


def _result_facts(result: Any) -> dict[str, Any]:
    """PHI-free facts about a result for the audit row: how many records, whether partial."""
    items = getattr(result, "items", None)
    if isinstance(items, tuple):
        return {"count": len(items), "truncated": bool(getattr(result, "truncated", False))}
    return {}


def _cache_key(name: str, principal: Principal, arguments: Mapping[str, Any]) -> Hashable | None:
    try:
        key = (name, principal.user_id, principal.role, tuple(sorted(arguments.items())))
        hash(key)
    except TypeError:  # an unhashable argument (e.g. a dict of changes): just do not cache
        return None
    return key


def service(
    action: Action,
    audit_action: AuditAction,
    resource_type: str,
    data_category: str,
    *,
    resource_arg: str | None = None,
    patient_arg: str | None = None,
    cached: bool = False,
    cache_ttl_s: float | None = None,
    invalidates: Iterable[str] = (),
    scope: Scope | None = None,
    describe: Describe | None = None,
) -> ServiceDecorator:
    """Declare a service function ``fn(gw: Gateway, ...)``: authorised, audited, cached.

    ``resource_arg``/``patient_arg`` name the parameters holding the resource id and patient id
    for the audit row (a dotted path reaches into an argument: ``draft.patient_id``); ``describe`` may add PHI-free facts from the arguments (never values a
    user typed); ``scope`` trims a result to the caller's role; ``invalidates`` lists resource
    types a write makes stale in this session's cache; ``cache_ttl_s`` overrides the cache's
    lifetime for slow-changing data.
    """
    spec = ServiceSpec(
        action=action,
        audit_action=audit_action,
        resource_type=resource_type,
        data_category=data_category,
        resource_arg=resource_arg,
        patient_arg=patient_arg,
        cached=cached,
        cache_ttl_s=cache_ttl_s,
        invalidates=frozenset(invalidates),
        scope=scope,
        describe=describe,
    )

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        name = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def run(gw: Gateway, *args: Any, **kwargs: Any) -> R:
            bound = signature.bind(gw, *args, **kwargs)
            bound.apply_defaults()
            arguments = {k: v for k, v in bound.arguments.items() if k != "gw"}
            return _run(spec, name, fn, gw, arguments, bound)

        setattr(run, SPEC_ATTRIBUTE, spec)
        return cast("Callable[P, R]", run)  # same parameters: callers keep their type checks

    return cast(ServiceDecorator, decorate)


def _run(
    spec: ServiceSpec,
    name: str,
    fn: Callable[..., R],
    gw: Gateway,
    arguments: Mapping[str, Any],
    bound: inspect.BoundArguments,
) -> R:
    principal = gw.caller.principal
    correlation_id = new_correlation_id()
    resource_id = _argument(arguments, spec.resource_arg)
    patient_id = _argument(arguments, spec.patient_arg)
    base_details = dict(spec.describe(arguments)) if spec.describe else {}

    def row(outcome: AuditOutcome, **details: Any) -> AuditRecord:
        return AuditRecord(
            action=spec.audit_action,
            outcome=outcome,
            user_id=principal.user_id,
            username=principal.username,
            role=principal.role,
            resource_type=spec.resource_type,
            resource_id=resource_id,
            patient_id=patient_id,
            data_category=spec.data_category,
            client_ip=gw.caller.client_ip,
            correlation_id=correlation_id,
            details={**base_details, **details},
        )

    resource_ref = f"{spec.resource_type}/{resource_id}" if resource_id else spec.resource_type
    try:
        authorize(principal, spec.action, resource_ref)
    except PermissionDenied as denied:
        gw.record(row(AuditOutcome.DENIED, permission=spec.action.value))
        denied.correlation_id = correlation_id
        raise

    key = _cache_key(name, principal, arguments) if spec.cached else None
    if key is not None:
        hit, value = gw.cache.get(key)
        if hit:
            gw.record(row(AuditOutcome.SUCCESS, cache="hit", **_result_facts(value)))
            return value  # type: ignore[no-any-return]  # stored by this same function

    if spec.is_write:
        gw.record(row(AuditOutcome.SUCCESS, stage="requested"))
    try:
        result = fn(*bound.args, **bound.kwargs)
    except EHRError as exc:
        if exc.correlation_id is None:
            exc.correlation_id = correlation_id
        gw.record(row(AuditOutcome.ERROR, error=exc.code, upstream_ref=exc.correlation_id))
        raise
    except Exception:
        gw.record(row(AuditOutcome.ERROR, error="internal"))
        raise
    if spec.invalidates:
        gw.cache.invalidate(spec.invalidates)
    if spec.scope is not None:
        result = spec.scope(principal, result)

    outcome_row = row(AuditOutcome.SUCCESS, **_result_facts(result))
    if spec.is_write:
        try:
            gw.record(outcome_row)
        except AuditWriteError:
            log.error(
                "audit row for a completed write could not be written (ref %s)", correlation_id
            )
    else:
        gw.record(outcome_row)  # raises before the data leaves: fail closed
        if key is not None:
            gw.cache.put(key, {spec.resource_type}, result, spec.cache_ttl_s)
    return result


def require(gw: Gateway, action: Action, resource: str) -> None:
    """Refuse ``action`` unless allowed: a DENIED audit row, then ``PermissionDenied``.

    For checks that guard no data call of their own, such as opening a page by its URL: the
    page's data calls are authorised again by ``@service``; this records the attempt itself.
    """
    principal = gw.caller.principal
    try:
        authorize(principal, action, resource)
    except PermissionDenied as denied:
        correlation_id = new_correlation_id()
        gw.record(
            AuditRecord(
                action=AuditAction.READ,
                outcome=AuditOutcome.DENIED,
                user_id=principal.user_id,
                username=principal.username,
                role=principal.role,
                resource_type=resource.split("/", 1)[0],
                resource_id=resource.split("/", 1)[-1],
                client_ip=gw.caller.client_ip,
                correlation_id=correlation_id,
                details={"permission": Action(action).value},
            )
        )
        denied.correlation_id = correlation_id
        raise


# The attribute ``@self_audited`` leaves on a function (see ``self_audited``).
EVENTS_ATTRIBUTE: Final = "__self_audited__"


def self_audited(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark a service that writes its own audit rows instead of going through ``@service``.

    For account operations (``storage.identity`` emits an event before every change and the
    service turns each into an audit row), the EHR connection lifecycle (``ehr.oauth`` audits
    connect, reject, refresh and disconnect) and non-PHI status reads. The audit meta-test
    accepts this marker instead of a ``ServiceSpec``; each such function has its own test
    proving its rows are written.
    """
    setattr(fn, EVENTS_ATTRIBUTE, True)
    return fn


def is_audited(fn: Callable[..., Any]) -> bool:
    """True for a function declared with ``@service`` or ``@self_audited``."""
    return spec_of(fn) is not None or getattr(fn, EVENTS_ATTRIBUTE, False) is True


def spec_of(fn: Callable[..., Any]) -> ServiceSpec | None:
    """The ``ServiceSpec`` of a service function, or None if it was not declared with it."""
    spec = getattr(fn, SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, ServiceSpec) else None
