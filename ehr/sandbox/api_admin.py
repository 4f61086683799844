"""Test-only admin endpoints of the sandbox: faults, data reset, request log.

Mounted only when the server is started with ``faults_admin_enabled`` (otherwise these paths
are a plain 404), and every call must carry the admin key generated at start in the
``X-Sandbox-Admin-Key`` header (403 otherwise). They are not rate limited, not subject to
faults and not written to the request log.

- ``GET /sandbox-admin/faults`` → current settings.
- ``POST /sandbox-admin/faults`` JSON: any ``FaultSettings`` fields to change, plus the
  one-shot actions ``"reset": true`` (defaults first), ``"expire_tokens": true`` and
  ``"revoke_tokens": true``. Answers the settings now in force.
- ``POST /sandbox-admin/reset-data`` → regenerate the clinic from its config.
- ``GET /sandbox-admin/requests`` → the request log; ``DELETE`` clears it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ehr.sandbox.api import json_response
from ehr.sandbox.api_fields import ApiError, parse_bool, read_body
from ehr.sandbox.faults import FaultInjector, RequestLog, validate_fault_update
from ehr.sandbox.oauth import OAuthProvider

ADMIN_KEY_HEADER = "X-Sandbox-Admin-Key"
_ACTIONS = ("reset", "expire_tokens", "revoke_tokens")


def admin_routes(
    *,
    key: str,
    faults: FaultInjector,
    provider: OAuthProvider,
    request_log: RequestLog,
    reset_data: Callable[[], int],
) -> list[BaseRoute]:
    """The admin routes, guarded by ``key``; ``reset_data`` regenerates and returns a counter."""

    def authorised(request: Request) -> bool:
        given = request.headers.get(ADMIN_KEY_HEADER, "")
        return hmac.compare_digest(given.encode(), key.encode())

    def refused() -> Response:
        return json_response(403, {"detail": "Invalid or missing admin key."})

    async def fault_settings(request: Request) -> Response:
        if not authorised(request):
            return refused()
        if request.method == "GET":
            return json_response(200, {"faults": faults.settings().to_dict()})
        try:
            body = await read_body(request)
        except ApiError as exc:
            return json_response(exc.status, exc.body)
        data = body.data
        bad_actions = [a for a in _ACTIONS if a in data and parse_bool(data[a]) is None]
        clean, errors = validate_fault_update(data)
        errors.update({a: ["Must be a valid boolean."] for a in bad_actions})
        if errors:
            return json_response(400, errors)
        if parse_bool(data.get("reset", False)):
            faults.reset()
        if clean:
            faults.update(**clean)
        if parse_bool(data.get("expire_tokens", False)):
            provider.expire_all_tokens()
        if parse_bool(data.get("revoke_tokens", False)):
            provider.revoke_all_tokens()
        return json_response(200, {"faults": faults.settings().to_dict()})

    async def reset(request: Request) -> Response:
        if not authorised(request):
            return refused()
        generation = reset_data()
        return json_response(200, {"detail": "Data reset.", "generation": generation})

    async def requests_log(request: Request) -> Response:
        if not authorised(request):
            return refused()
        if request.method == "DELETE":
            request_log.reset()
            return Response(status_code=204)
        return json_response(200, {"requests": [e.to_dict() for e in request_log.entries()]})

    return [
        Route("/sandbox-admin/faults", fault_settings, methods=["GET", "POST"]),
        Route("/sandbox-admin/reset-data", reset, methods=["POST"]),
        Route("/sandbox-admin/requests", requests_log, methods=["GET", "DELETE"]),
    ]
