"""The sandbox REST API: DrChrono v4 resource routes served from the in-memory store.

Every ``/api/...`` request goes through one gate, in the order Django REST Framework (which
DrChrono runs on) applies them: injected faults, bearer-token authentication (401), the
per-application rate limit (429), the OAS scope check (403; reads accept either scope of a pair,
writes need ``:write``), then the method matrix (405). Handlers then answer DrChrono-style:
lists ``{"previous", "results", "next"}`` with signed keyset cursors, POST 201 with the object,
PUT/PATCH/DELETE 204 with no body, 400 field errors, 404 ``{"detail": "Not found."}``, 409 on
duplicates and overlaps.

Verbose-only fields (``VERBOSE_ONLY_FIELDS``) are left out of list results unless
``verbose=true``; a single-object GET always includes them (DrChrono's verbose switch is a list
parameter: the OAS declares it on list operations only).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ehr.sandbox.api_fields import ApiError, Body, Field, detail, parse_bool, read_body, validate
from ehr.sandbox.api_resources import (
    CREATE,
    DESTROY,
    LIST,
    PARTIAL,
    RESOURCES,
    RETRIEVE,
    UPDATE,
    ResourceSpec,
)
from ehr.sandbox.api_writes import WriteContext, required_fields
from ehr.sandbox.faults import FaultInjector, PreFault
from ehr.sandbox.limits import THROTTLED_DETAIL, RateLimiter
from ehr.sandbox.oauth import DETAIL_FORBIDDEN, OAuthProvider, SandboxAuthError, TokenInfo
from ehr.sandbox.paging import (
    CursorCodec,
    CursorPosition,
    PagingError,
    page_link,
    paginate,
    parse_page_size,
)
from ehr.sandbox.store import Key, Record, Store

NOT_FOUND = "Not found."
DATE_FILTER_REQUIRED = "One of the date, date_range or since query parameters is required."
SERVER_ERROR = "A server error occurred."
JSON_TYPE = "application/json"
# Every method a route accepts at the HTTP layer; the gate answers 405 for those not allowed.
HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Pages a fronting proxy or maintenance screen shows; clients must not parse them as JSON.
_HTML_PAGES = {
    "html_200": "<!DOCTYPE html><html><head><title>drchrono - Scheduled maintenance</title>"
    "</head><body><h1>We'll be back shortly</h1><p>drchrono is down for maintenance.</p>"
    "</body></html>",
    "error_502": "<html><head><title>502 Bad Gateway</title></head><body>"
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
    "error_503": "<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
    "<center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center>"
    "</body></html>",
}


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A compact JSON response (``application/json``)."""
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status_code=status, media_type=JSON_TYPE, headers=headers)


def error_response(error: ApiError | PagingError) -> Response:
    """The JSON answer for a refused request."""
    if isinstance(error, PagingError):
        return json_response(400, error.body)
    return json_response(error.status, error.body, error.headers)


def _blank_like(value: Any) -> Any:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return ""
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {k: _blank_like(v) for k, v in value.items()}
    return None


@dataclass
class ApiRuntime:
    """What the API handlers share: store, OAuth provider, limits, faults and cursor codec."""

    store: Store
    provider: OAuthProvider
    limiter: RateLimiter
    faults: FaultInjector
    codec: CursorCodec
    verbose_only: Mapping[str, frozenset[str]]
    send_retry_after: bool = False
    extra_routes: list[BaseRoute] = field(default_factory=list)

    # --- the gate ------------------------------------------------------------------------------

    async def gate(
        self,
        request: Request,
        read_scopes: tuple[str, ...],
        write_scopes: tuple[str, ...],
        allowed: frozenset[str],
    ) -> TokenInfo | Response:
        """Faults, authentication, rate limit, scopes, method: a token or the refusal."""
        latency = self.faults.latency_s()
        if latency > 0:
            await asyncio.sleep(latency)
        fault = self.faults.take_pre_fault()
        if fault is not None:
            return self._fault_response(fault)
        try:
            info = self.provider.authenticate(request.headers.get("authorization"), ())
        except SandboxAuthError as exc:
            headers = {"WWW-Authenticate": exc.www_authenticate} if exc.www_authenticate else None
            return json_response(exc.status, {"detail": exc.detail}, headers)
        request.state.client_id = info.client_id
        decision = self.limiter.hit(info.client_id)
        if not decision.allowed:
            headers = None
            if self.send_retry_after and decision.retry_after_s is not None:
                headers = {"Retry-After": str(decision.retry_after_s)}
            return json_response(429, {"detail": THROTTLED_DETAIL}, headers)
        method = request.method
        needed = read_scopes if method in _READ_METHODS else write_scopes
        if needed and info.scopes.isdisjoint(needed):
            return json_response(403, {"detail": DETAIL_FORBIDDEN})
        if method not in allowed:
            return json_response(
                405,
                {"detail": f'Method "{method}" not allowed.'},
                {"Allow": ", ".join(sorted(allowed))},
            )
        return info

    def _fault_response(self, fault: PreFault) -> Response:
        if fault == "throttle":
            headers = {"Retry-After": "1"} if self.send_retry_after else None
            return json_response(429, {"detail": THROTTLED_DETAIL}, headers)
        if fault == "error_500":
            return json_response(500, {"detail": SERVER_ERROR})
        status = {"html_200": 200, "error_502": 502, "error_503": 503}[fault]
        return HTMLResponse(_HTML_PAGES[fault], status_code=status)

    # --- responses -----------------------------------------------------------------------------

    def present(
        self, spec: ResourceSpec, record: Record, *, listing: bool, verbose: bool
    ) -> Record:
        """A record as the API shows it: verbose-only fields dropped from non-verbose lists."""
        hidden = self.verbose_only.get(spec.name, frozenset()) if listing and not verbose else ()
        return {k: copy.deepcopy(v) for k, v in record.items() if k not in hidden}

    def list_body(self, body: dict[str, Any]) -> Response:
        """Serialise a list page, applying a pending body-corruption fault."""
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        fault = self.faults.take_list_fault()
        if fault == "malformed_json":
            text = text.replace('"results"', "results", 1)
        elif fault == "truncated_json":
            text = text[: max(1, len(text) // 2)]
        return Response(text.encode(), status_code=200, media_type=JSON_TYPE)

    def link(
        self, request: Request, scope: str, position: CursorPosition | None, *, foreign: bool
    ) -> str | None:
        """Absolute URL of a neighbouring page, or None at the end."""
        if position is None:
            return None
        host = self.faults.next_link_host() if foreign else None
        return page_link(str(request.url), self.codec.encode(scope, position), host=host)

    # --- list and retrieve ---------------------------------------------------------------------

    def select(
        self, spec: ResourceSpec, params: Mapping[str, str]
    ) -> list[tuple[Key, Record, Any]]:
        """Every visible record of ``spec`` that passes the filters in ``params`` (unordered)."""
        for name in spec.query_required:
            if not params.get(name):
                raise ApiError(400, {name: ["This field is required."]})
        predicates = [
            parse(name, params[name], self.store)
            for name, parse in spec.filters.items()
            if params.get(name, "") != ""
        ]
        show_archived = parse_bool(params.get("show_archived", "false")) is True
        hidden = spec.hidden
        return [
            (key, rec, stamp)
            for key, rec, stamp in self.store.scan(spec.name)
            if (show_archived or hidden is None or not hidden(rec))
            and all(p(key, rec, stamp) for p in predicates)
        ]

    def list_records(self, request: Request, spec: ResourceSpec) -> Response:
        """GET /api/<resource>: one page of filtered records in the resource's order."""
        params = request.query_params
        verbose = parse_bool(params.get("verbose", "false")) is True
        if spec.list_requires and not any(params.get(n) for n in spec.list_requires):
            raise detail(400, DATE_FILTER_REQUIRED)
        default, maximum = spec.page_sizes(verbose)
        size = parse_page_size(params.get("page_size"), default=default, maximum=maximum)
        cursor = params.get("cursor")
        position = self.codec.decode(spec.name, cursor) if cursor is not None else None
        rows = sorted(
            ((spec.sort_key(key, rec), rec) for key, rec, _s in self.select(spec, params)),
            key=itemgetter(0),
        )
        page = paginate([k for k, _ in rows], [r for _, r in rows], position, size)
        body = {
            "previous": self.link(request, spec.name, page.previous_position, foreign=False),
            "results": [self.present(spec, r, listing=True, verbose=verbose) for r in page.items],
            "next": self.link(request, spec.name, page.next_position, foreign=True),
        }
        return self.list_body(body)

    def _existing(self, spec: ResourceSpec, raw_id: str) -> tuple[Key, Record]:
        key = spec.key_from_path(raw_id)
        record = self.store.peek(spec.name, key) if key is not None else None
        if key is None or record is None:
            raise detail(404, NOT_FOUND)
        return key, record

    def retrieve(self, request: Request, spec: ResourceSpec) -> Response:
        """GET /api/<resource>/<id>: the whole object."""
        for name in spec.query_required:
            if not request.query_params.get(name):
                raise ApiError(400, {name: ["This field is required."]})
        _key, record = self._existing(spec, request.path_params["id"])
        return json_response(200, self.present(spec, record, listing=False, verbose=True))

    # --- writes --------------------------------------------------------------------------------

    def _exists(self, resource: str, value: int) -> bool:
        key: Key = str(value) if resource == "appointments" else value
        return self.store.peek(resource, key) is not None

    def _validate(self, spec: ResourceSpec, body: Body, *, partial: bool) -> dict[str, Any]:
        required = required_fields(spec.name, spec.required, body.data)
        clean, errors = validate(
            spec.fields,
            required,
            body,
            partial=partial,
            exists=self._exists,
            zone=self.store.timezone,
        )
        if errors:
            raise ApiError(400, errors)
        return clean

    def _context(
        self, spec: ResourceSpec, request: Request, clean: Mapping[str, Any], user: int
    ) -> WriteContext:
        return WriteContext(
            store=self.store,
            resource=spec.name,
            query=request.query_params,
            clean=clean,
            user_id=user,
            now=self.store.now_local(),
        )

    def _blank_record(self, spec: ResourceSpec) -> Record:
        rows = self.store.scan(spec.name)
        record: Record = {k: _blank_like(v) for k, v in rows[0][1].items()} if rows else {}
        fields: Mapping[str, Field] = spec.fields
        record.update({name: f.blank() for name, f in fields.items()})
        record.update(copy.deepcopy(dict(spec.create_defaults)))
        return record

    async def create(self, request: Request, spec: ResourceSpec, info: TokenInfo) -> Response:
        """POST /api/<resource>: validate everything, apply the resource rules, then store."""
        body = await read_body(request)
        with self.store.atomic():
            clean = self._validate(spec, body, partial=False)
            record = self._blank_record(spec)
            record.update(copy.deepcopy(clean))
            number = self.store.allocate_id(spec.name)
            key: Key = str(number) if spec.string_ids else number
            record["id"] = key
            record = spec.on_create(self._context(spec, request, clean, info.user_id), record)
            self.store.put(spec.name, key, record, created=True)
            stored = self.store.peek(spec.name, key) or record
        return json_response(201, self.present(spec, stored, listing=False, verbose=True))

    async def update(self, request: Request, spec: ResourceSpec, info: TokenInfo) -> Response:
        """PUT/PATCH /api/<resource>/<id>: full or partial update, 204 with no body."""
        body = await read_body(request)
        with self.store.atomic():
            key, old = self._existing(spec, request.path_params["id"])
            if spec.hidden is not None and spec.hidden(old):
                raise detail(404, NOT_FOUND)
            clean = self._validate(spec, body, partial=request.method == "PATCH")
            new = {**copy.deepcopy(old), **copy.deepcopy(clean)}
            new = spec.on_update(self._context(spec, request, clean, info.user_id), old, new)
            self.store.put(spec.name, key, new)
        return Response(status_code=204)

    def destroy(self, request: Request, spec: ResourceSpec, info: TokenInfo) -> Response:
        """DELETE /api/<resource>/<id>: 204 with no body."""
        with self.store.atomic():
            key, old = self._existing(spec, request.path_params["id"])
            if spec.hidden is not None and spec.hidden(old):
                raise detail(404, NOT_FOUND)
            spec.on_delete(self._context(spec, request, {}, info.user_id), key, old)
        return Response(status_code=204)

    # --- routing -------------------------------------------------------------------------------

    def endpoint(
        self,
        read_scopes: tuple[str, ...],
        write_scopes: tuple[str, ...],
        allowed: frozenset[str],
        handler: Callable[[Request, TokenInfo], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap ``handler`` in the gate and turn ``ApiError``/``PagingError`` into answers."""

        async def run(request: Request) -> Response:
            outcome = await self.gate(request, read_scopes, write_scopes, allowed | {"OPTIONS"})
            if isinstance(outcome, Response):
                return outcome
            if request.method == "OPTIONS":
                return json_response(
                    200,
                    {"renders": [JSON_TYPE]},
                    {"Allow": ", ".join(sorted(allowed | {"OPTIONS"}))},
                )
            try:
                return await handler(request, outcome)
            except (ApiError, PagingError) as exc:
                return error_response(exc)

        return run

    def resource_routes(self, spec: ResourceSpec) -> list[BaseRoute]:
        """The collection and detail routes of one resource."""
        collection = _http_methods(spec.methods, {LIST: "GET", CREATE: "POST"})
        single = _http_methods(
            spec.methods, {RETRIEVE: "GET", UPDATE: "PUT", PARTIAL: "PATCH", DESTROY: "DELETE"}
        )

        async def on_collection(request: Request, info: TokenInfo) -> Response:
            if request.method in ("GET", "HEAD"):
                return self.list_records(request, spec)
            return await self.create(request, spec, info)

        async def on_single(request: Request, info: TokenInfo) -> Response:
            if request.method in ("GET", "HEAD"):
                return self.retrieve(request, spec)
            if request.method == "DELETE":
                return self.destroy(request, spec, info)
            return await self.update(request, spec, info)

        return [
            Route(
                f"/api/{spec.name}",
                self.endpoint(spec.read_scopes, spec.write_scopes, collection, on_collection),
                methods=HTTP_METHODS,
            ),
            Route(
                f"/api/{spec.name}/{{id}}",
                self.endpoint(spec.read_scopes, spec.write_scopes, single, on_single),
                methods=HTTP_METHODS,
                name=f"{spec.name}_detail",
            ),
        ]

    def routes(self) -> list[BaseRoute]:
        """Every ``/api`` route: ``users/current``, the resources, and ``extra_routes``."""

        async def current_user(request: Request, info: TokenInfo) -> Response:
            location = str(request.url_for("users_detail", id=str(info.user_id)))
            return Response(status_code=302, headers={"Location": location})

        routes: list[BaseRoute] = [
            Route(
                "/api/users/current",
                self.endpoint((), (), frozenset({"GET", "HEAD"}), current_user),
                methods=HTTP_METHODS,
            )
        ]
        routes.extend(self.extra_routes)
        for spec in RESOURCES.values():
            routes.extend(self.resource_routes(spec))
        return routes


def _http_methods(methods: frozenset[str], mapping: Mapping[str, str]) -> frozenset[str]:
    allowed = {verb for letter, verb in mapping.items() if letter in methods}
    if "GET" in allowed:
        allowed.add("HEAD")
    return frozenset(allowed)
