"""Async "batch list" endpoints of the sandbox (drchrono.md §2.3).

``POST /api/<resource>_list`` with the normal list filters plus ``order_by`` and ``page_size``
(1-1000) starts a job and answers 201 ``{"status": "In progress", "uuid", "description"}``.
``GET /api/<resource>_list?uuid=...`` answers ``{"status", "uuid", "results", "next"}``: while
the job runs, ``status`` is "In progress" with no results; once done (after a configurable
delay, by default a fraction of a second) it is "Complete" and the results come in pages of the
job's ``page_size`` with an absolute ``next`` link. The job snapshots its matching records when
it starts, as a real export would. An unknown (or another application's) uuid is a 404.
Parameters may come in the query string (as the OAS documents them) or in a JSON/form body.
"""

from __future__ import annotations

import threading
import time
import uuid as uuid_module
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ehr.sandbox.api import HTTP_METHODS, NOT_FOUND, ApiRuntime, json_response
from ehr.sandbox.api_fields import ApiError, detail, parse_bool, read_body
from ehr.sandbox.api_resources import RESOURCES, by_schedule
from ehr.sandbox.oauth import TokenInfo
from ehr.sandbox.paging import (
    BATCH_MAX_PAGE_SIZE,
    CursorPosition,
    parse_page_size,
)
from ehr.sandbox.store import Record

# Seconds a batch job stays "In progress" by default: long enough that clients must poll.
DEFAULT_BATCH_DELAY_S = 0.2
# Jobs remembered at once; the oldest are forgotten first (bounds memory in long runs).
MAX_JOBS = 200


@dataclass(frozen=True)
class BatchEndpoint:
    """One batch list: the resource it lists, its OAS scopes and ``order_by`` choices."""

    resource: str
    scopes: tuple[str, ...]
    order_by: tuple[str, ...]


BATCH_ENDPOINTS: dict[str, BatchEndpoint] = {
    "patients_list": BatchEndpoint("patients", ("patients:read",), ("id", "updated_at")),
    "appointments_list": BatchEndpoint(
        "appointments",
        ("calendar:read", "calendar:write", "clinical:read", "clinical:write"),
        ("scheduled_time", "updated_at"),
    ),
    "line_items_list": BatchEndpoint("line_items", ("billing:read",), ("id", "updated_at")),
    "transactions_list": BatchEndpoint(
        "transactions", ("billing:read", "billing:write"), ("id", "updated_at")
    ),
}


@dataclass(frozen=True)
class BatchJob:
    """A started batch list: its snapshot of results and when it counts as complete."""

    uuid: str
    endpoint: str
    client_id: str
    results: list[Record]
    page_size: int
    ready_at: float


class BatchJobs:
    """Thread-safe, bounded registry of batch jobs with an injectable clock and delay."""

    def __init__(
        self, *, delay_s: float = DEFAULT_BATCH_DELAY_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.delay_s = delay_s
        self._clock = clock
        self._jobs: OrderedDict[str, BatchJob] = OrderedDict()
        self._lock = threading.Lock()

    def start(
        self, endpoint: str, client_id: str, results: list[Record], page_size: int
    ) -> BatchJob:
        """Register a new job whose results become visible after the delay."""
        job = BatchJob(
            uuid=str(uuid_module.uuid4()),
            endpoint=endpoint,
            client_id=client_id,
            results=results,
            page_size=page_size,
            ready_at=self._clock() + self.delay_s,
        )
        with self._lock:
            self._jobs[job.uuid] = job
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str) -> BatchJob | None:
        """The job with this uuid, if still remembered."""
        with self._lock:
            return self._jobs.get(job_id)

    def done(self, job: BatchJob) -> bool:
        """Whether the job counts as complete now."""
        return self._clock() >= job.ready_at

    def clear(self) -> None:
        """Forget every job (after a data reset)."""
        with self._lock:
            self._jobs.clear()


def _params(request: Request, body: Mapping[str, Any]) -> dict[str, str]:
    params = dict(request.query_params)
    for name, value in body.items():
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            params[name] = str(value)
    return params


def batch_routes(runtime: ApiRuntime, jobs: BatchJobs) -> list[BaseRoute]:
    """Routes for every ``/api/<resource>_list`` batch endpoint."""
    routes: list[BaseRoute] = []
    for path, endpoint in BATCH_ENDPOINTS.items():
        routes.append(
            Route(
                f"/api/{path}",
                runtime.endpoint(
                    endpoint.scopes,
                    endpoint.scopes,  # POST starts a read: the same scopes allow it
                    frozenset({"GET", "HEAD", "POST"}),
                    _handler(runtime, jobs, path, endpoint),
                ),
                methods=HTTP_METHODS,
            )
        )
    return routes


def _handler(
    runtime: ApiRuntime, jobs: BatchJobs, path: str, endpoint: BatchEndpoint
) -> Callable[[Request, TokenInfo], Any]:
    spec = RESOURCES[endpoint.resource]

    async def start(request: Request, info: TokenInfo) -> Response:
        body = await read_body(request)
        params = _params(request, body.data)
        order_by = params.get("order_by") or endpoint.order_by[0]
        if order_by not in endpoint.order_by:
            raise ApiError(400, {"order_by": [f'"{order_by[:40]}" is not a valid choice.']})
        size = parse_page_size(
            params.get("page_size"),
            default=BATCH_MAX_PAGE_SIZE,
            maximum=BATCH_MAX_PAGE_SIZE,
            clamp=False,
        )
        verbose = parse_bool(params.get("verbose", "false")) is True
        with runtime.store.atomic():
            rows = runtime.select(spec, params)
        if order_by == "updated_at":
            rows.sort(key=lambda row: (row[2], spec.sort_key(row[0], row[1])))
        elif order_by == "scheduled_time":
            rows.sort(key=lambda row: by_schedule(row[0], row[1]))
        else:
            rows.sort(key=lambda row: spec.sort_key(row[0], row[1]))
        results = [
            runtime.present(spec, rec, listing=True, verbose=verbose) for _k, rec, _s in rows
        ]
        job = jobs.start(path, info.client_id, results, size)
        return json_response(
            201,
            {
                "status": "In progress",
                "uuid": job.uuid,
                "description": f"Batch list of {len(results)} {endpoint.resource} records.",
            },
        )

    async def fetch(request: Request, info: TokenInfo) -> Response:
        job_id = request.query_params.get("uuid")
        if not job_id:
            raise ApiError(400, {"uuid": ["This field is required."]})
        job = jobs.get(job_id)
        if job is None or job.endpoint != path or job.client_id != info.client_id:
            raise detail(404, NOT_FOUND)
        if not jobs.done(job):
            return json_response(
                200, {"status": "In progress", "uuid": job.uuid, "results": [], "next": None}
            )
        scope = f"{path}:{job.uuid}"
        cursor = request.query_params.get("cursor")
        offset = int(runtime.codec.decode(scope, cursor).key[0]) if cursor is not None else 0
        end = offset + job.page_size
        next_link = runtime.link(
            request,
            scope,
            CursorPosition((end,), True) if end < len(job.results) else None,
            foreign=True,
        )
        return runtime.list_body(
            {
                "status": "Complete",
                "uuid": job.uuid,
                "results": job.results[offset:end],
                "next": next_link,
            }
        )

    async def handle(request: Request, info: TokenInfo) -> Response:
        if request.method == "POST":
            return await start(request, info)
        return await fetch(request, info)

    return handle
