"""The EHR exception tree, and the one function that turns an HTTP response into it.

Every error the EHR layer raises is an ``EHRError``. Each class has a stable short ``code``, a
safe, PHI-free user ``message``, a ``user_action`` hint for the UI, optional ``details`` (ids,
field names, statuses — never upstream free text that could hold PHI) and the request's
``correlation_id``. ``to_dict()`` gives the one shape the UI and logs use:
``{code, message, details?, correlation_id}``.

Callers catch only what they can handle; the UI helper catches ``EHRError`` at the page boundary.

    EHRError
    ├── ConfigurationError ............ app or connection misconfigured
    ├── AuthError ..................... reconnect needed
    │   ├── NotConnectedError ......... no EHR connection stored
    │   ├── ReauthorizationRequiredError  token expired, revoked, refresh failed, upstream 401
    │   ├── OAuthCallbackRejected ..... OAuth callback state unknown, used, expired or not yours
    │   │   └── OAuthAuthorizationFailed  the EHR ended the flow with error= or refused the code
    │   └── GrantRefusedError ......... the token endpoint refused a code or refresh token
    ├── PermissionDeniedError ......... our role policy said no
    ├── UpstreamForbiddenError ........ 403: DrChrono scope or in-app permission missing
    ├── NotFoundError ................. 404 (or outside the practice)
    ├── UnsupportedOperationError ..... 405, or the backend cannot do this at all
    ├── ValidationFailedError ......... 400 with field errors
    ├── ConflictError ................. 409
    │   ├── DuplicatePatientError ..... possible duplicate patient (override: allow_duplicate)
    │   ├── OverlappingAppointmentError  time overlaps (override: allow_overlap)
    │   └── ChangedUpstreamError ...... the record changed since the user opened it
    ├── RateLimitedError .............. 429; ``retry_at`` when known
    ├── UpstreamUnavailableError ...... 5xx on a read, 503 on a write
    ├── UpstreamTimeoutError .......... 408/504, or no answer in time
    ├── UpstreamDataError ............. malformed, wrong-typed or unreadable body
    │   └── UpstreamTooLargeError ..... body over the size limit
    ├── UnexpectedResponseError ....... a status the client has no meaning for
    ├── UnsafeRedirectError ........... next link or redirect to another origin
    ├── PaginationLoopError ........... a next link seen before
    ├── WriteOutcomeUnknownError ...... a write may or may not have happened
    └── AuditWriteError ............... the audit row could not be written: fail closed
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

__all__ = [
    "AuditWriteError",
    "AuthError",
    "ChangedUpstreamError",
    "ConfigurationError",
    "ConflictError",
    "DuplicatePatientError",
    "EHRError",
    "GrantRefusedError",
    "NotConnectedError",
    "NotFoundError",
    "OAuthAuthorizationFailed",
    "OAuthCallbackRejected",
    "OverlappingAppointmentError",
    "PaginationLoopError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ReauthorizationRequiredError",
    "UnexpectedResponseError",
    "UnsafeRedirectError",
    "UnsupportedOperationError",
    "UpstreamDataError",
    "UpstreamForbiddenError",
    "UpstreamTimeoutError",
    "UpstreamTooLargeError",
    "UpstreamUnavailableError",
    "UserAction",
    "ValidationFailedError",
    "WriteOutcomeUnknownError",
    "error_from_response",
    "parse_retry_after",
]

# Error bodies are small; anything bigger is not worth parsing for field names.
MAX_ERROR_BODY_BYTES = 64 * 1024
# One DRF message is a sentence; longer text is more likely to carry echoed input.
MAX_FIELD_MESSAGE_CHARS = 200
# A form has a few dozen fields; more entries would only bloat the error shown and logged.
MAX_FIELDS = 50
# DRF lists a handful of messages per field.
MAX_MESSAGES_PER_FIELD = 5
# Nested serializers (insurance on a patient, exam rooms on an office) go two levels deep.
MAX_FIELD_DEPTH = 4
# Retry-After beyond this is nonsense (or an overflow attempt); treated like garbage.
MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A field key we are willing to echo: a plain identifier, as DRF serializers use.
_FIELD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# DRF quotes user input in messages such as '"Zebulon" is not a valid choice.'; the quoted
# part is the input, so it is replaced before the message is kept.
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|“[^”]*”")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCOPE_WORD = re.compile(r"\bscopes?\b", re.IGNORECASE)
_PERMISSION_WORD = re.compile(r"\bpermissions?\b", re.IGNORECASE)
_SCOPE_VALUE = re.compile(r'scope="([a-z0-9:_ \-]{1,200})"', re.IGNORECASE)


class UserAction(StrEnum):
    """What the UI should offer next for an error."""

    RECONNECT = "reconnect"
    RETRY_LATER = "retry_later"
    FIX_INPUT = "fix_input"
    CONTACT_ADMIN = "contact_admin"
    CONFIRM_OVERRIDE = "confirm_override"
    RELOAD = "reload"
    CHECK_UPSTREAM = "check_upstream"


class EHRError(Exception):
    """Base of every EHR error: a stable ``code``, a safe ``message`` and a ``user_action``.

    ``message`` defaults to the class's text; pass one only if it is PHI-free (it is shown to
    users and written to logs). ``details`` holds structured, PHI-free facts such as field
    names, an HTTP status or the scope gate.
    """

    code: ClassVar[str] = "ehr_error"
    default_message: ClassVar[str] = "The EHR request failed."
    default_user_action: ClassVar[UserAction | None] = None

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        user_action: UserAction | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = dict(details or {})
        self.correlation_id = correlation_id
        self.user_action = user_action or self.default_user_action
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The one error shape: ``{code, message, details?, correlation_id}``."""
        shape: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            shape["details"] = self.details
        shape["correlation_id"] = self.correlation_id
        return shape


class ConfigurationError(EHRError):
    """The app or its EHR connection is configured wrongly (missing setting, bad base URL)."""

    code = "configuration"
    default_message = "The EHR connection is not configured correctly. Ask your administrator."
    default_user_action = UserAction.CONTACT_ADMIN


class AuthError(EHRError):
    """The EHR connection cannot authenticate: an administrator must (re)connect it."""

    code = "auth"
    default_message = "The EHR connection needs to be reconnected in Settings."
    default_user_action = UserAction.RECONNECT


class NotConnectedError(AuthError):
    """No EHR connection is stored for this practice (never connected, or disconnected)."""

    code = "not_connected"
    default_message = "The EHR is not connected. An administrator can connect it in Settings."


class ReauthorizationRequiredError(AuthError):
    """The token expired or was revoked, refreshing failed, or upstream still answered 401."""

    code = "reauthorization_required"
    default_message = (
        "The EHR connection has expired or was revoked. An administrator must reconnect it "
        "in Settings."
    )


class OAuthCallbackRejected(AuthError):
    """The OAuth callback was refused before any token request.

    ``details["reason"]``: ``missing_state``, ``unknown``, ``consumed``, ``expired``,
    ``other_user``, ``other_session``, ``verifier_unreadable`` or ``missing_code``.
    """

    code = "oauth_callback_rejected"
    default_message = "This sign-in link is no longer valid. Start the connection again."
    default_user_action = UserAction.RECONNECT


def _with_error_code(details: Mapping[str, Any] | None, error_code: str | None) -> dict[str, Any]:
    merged = dict(details or {})
    if error_code:
        merged["error_code"] = error_code
    return merged


class OAuthAuthorizationFailed(OAuthCallbackRejected):
    """The EHR ended the authorization with an error: ``error=`` on the callback (the user
    denied access, ...) or a refused code exchange. ``details["error_code"]`` is the RFC 6749
    code (already checked to be a plain code), the only upstream text kept."""

    code = "oauth_authorization_failed"
    default_message = "DrChrono did not complete the connection. Start the connection again."

    def __init__(
        self,
        message: str | None = None,
        *,
        error_code: str | None = None,
        details: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        user_action: UserAction | None = None,
    ) -> None:
        if error_code and message is None:
            message = (
                f"DrChrono did not complete the connection (error code: {error_code}). "
                "Start the connection again."
            )
        super().__init__(
            message,
            details=_with_error_code(details, error_code),
            correlation_id=correlation_id,
            user_action=user_action,
        )
        self.error_code = error_code


class GrantRefusedError(AuthError):
    """The token endpoint refused the grant (RFC 6749 error in ``details["error_code"]``).

    ``invalid_grant`` means the code or refresh token is dead: the connection must be made again.
    """

    code = "oauth_grant_refused"
    default_message = "DrChrono refused the authorization. An administrator must reconnect it."
    default_user_action = UserAction.RECONNECT

    def __init__(
        self,
        message: str | None = None,
        *,
        error_code: str | None = None,
        details: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        user_action: UserAction | None = None,
    ) -> None:
        super().__init__(
            message,
            details=_with_error_code(details, error_code),
            correlation_id=correlation_id,
            user_action=user_action,
        )
        self.error_code = error_code


class PermissionDeniedError(EHRError):
    """Our own role policy does not allow this user to do this."""

    code = "permission_denied"
    default_message = "Your role does not allow this action."
    default_user_action = UserAction.CONTACT_ADMIN


class UpstreamForbiddenError(EHRError):
    """Upstream answered 403: a missing OAuth scope or a missing in-app permission.

    ``details["gate"]`` is ``"scope"`` or ``"permission"`` when the response says which, and
    ``details["required_scope"]`` names the scope when the challenge header gives it.
    """

    code = "upstream_forbidden"
    default_message = (
        "The EHR refused this request: the connection lacks an access scope or the EHR user "
        "lacks a permission. Ask your EHR administrator to grant it."
    )
    default_user_action = UserAction.CONTACT_ADMIN


class NotFoundError(EHRError):
    """The record does not exist upstream, or is outside the connected practice."""

    code = "not_found"
    default_message = "The record was not found in the EHR, or it belongs to another practice."


class UnsupportedOperationError(EHRError):
    """Upstream does not allow this method here (405), or this backend cannot do it at all."""

    code = "unsupported_operation"
    default_message = "The EHR does not support this action."


class ValidationFailedError(EHRError):
    """Upstream rejected the submitted data (400).

    ``details["fields"]`` maps a form field name to its messages; ``details["non_field_errors"]``
    holds messages not tied to one field. Messages are DRF's generic texts with any quoted
    input removed and lengths capped.
    """

    code = "validation_failed"
    default_message = "The EHR did not accept the data. Check the highlighted fields."
    default_user_action = UserAction.FIX_INPUT

    @property
    def field_errors(self) -> dict[str, list[str]]:
        """Messages per field name (empty when the error names no field)."""
        fields = self.details.get("fields")
        return dict(fields) if isinstance(fields, dict) else {}

    def renamed(self, field_names: Mapping[str, str]) -> ValidationFailedError:
        """A copy with upstream field names replaced by form field names.

        ``field_names`` maps an upstream name (``"doctor"``, ``"primary_insurance.insurance_company"``)
        to the form's name (``"doctor_id"``); names not in the mapping are kept.
        """
        details = dict(self.details)
        fields: dict[str, list[str]] = {}
        for name, messages in self.field_errors.items():
            fields.setdefault(field_names.get(name, name), []).extend(messages)
        if fields:
            details["fields"] = fields
        return type(self)(
            self.message,
            details=details,
            correlation_id=self.correlation_id,
            user_action=self.user_action,
        )


class ConflictError(EHRError):
    """Upstream refused the change because it conflicts with its current state (409)."""

    code = "conflict"
    default_message = "The EHR refused the change because it conflicts with existing data."


class DuplicatePatientError(ConflictError):
    """A patient with matching details may already exist (retry with ``allow_duplicate``)."""

    code = "duplicate_patient"
    default_message = (
        "A patient with these details may already exist. Search for them first, or confirm "
        "to create a new record anyway."
    )
    default_user_action = UserAction.CONFIRM_OVERRIDE


class OverlappingAppointmentError(ConflictError):
    """The appointment overlaps another one (retry with ``allow_overlap``)."""

    code = "appointment_overlap"
    default_message = (
        "This time overlaps another appointment. Pick another time, or confirm to double-book."
    )
    default_user_action = UserAction.CONFIRM_OVERRIDE


class ChangedUpstreamError(ConflictError):
    """The record changed upstream after the user opened it; the edit was not sent."""

    code = "changed_upstream"
    default_message = (
        "This record changed in the EHR since you opened it. Reload it and make your change again."
    )
    default_user_action = UserAction.RELOAD


class RateLimitedError(EHRError):
    """Upstream's request limit was reached (429).

    ``retry_at`` is the UTC instant upstream named (``Retry-After``), or None when it named
    none; the UI renders it in the practice timezone ("rate limited until 15:00").
    """

    code = "rate_limited"
    default_message = "The EHR's request limit was reached. Try again later."
    default_user_action = UserAction.RETRY_LATER

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_at: datetime | None = None,
        details: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        user_action: UserAction | None = None,
    ) -> None:
        if retry_at is not None and retry_at.utcoffset() is None:
            raise ValueError("retry_at must be timezone-aware")
        self.retry_at = retry_at.astimezone(UTC) if retry_at is not None else None
        merged = dict(details or {})
        if self.retry_at is not None:
            merged["retry_at"] = self.retry_at.isoformat()
        super().__init__(
            message, details=merged, correlation_id=correlation_id, user_action=user_action
        )


class UpstreamUnavailableError(EHRError):
    """Upstream failed with a server error or could not be reached."""

    code = "upstream_unavailable"
    default_message = "The EHR is unavailable right now. Try again in a few minutes."
    default_user_action = UserAction.RETRY_LATER


class UpstreamTimeoutError(EHRError):
    """Upstream did not answer a read in time."""

    code = "upstream_timeout"
    default_message = "The EHR took too long to answer. Try again."
    default_user_action = UserAction.RETRY_LATER


class UpstreamDataError(EHRError):
    """Upstream sent a body the client cannot use: malformed, truncated or wrongly typed.

    ``details["field"]`` names the offending field (never its value) when one is known.
    """

    code = "upstream_data"
    default_message = "The EHR sent data the app could not read. The problem has been logged."
    default_user_action = UserAction.CONTACT_ADMIN


class UpstreamTooLargeError(UpstreamDataError):
    """The response body exceeded the size limit."""

    code = "upstream_too_large"
    default_message = "The EHR's answer was too large. Narrow the date range or filters."
    default_user_action = UserAction.FIX_INPUT


class UnexpectedResponseError(EHRError):
    """Upstream answered with a status the client has no meaning for (``details["status"]``)."""

    code = "unexpected_response"
    default_message = "The EHR gave an unexpected answer. Try again later."
    default_user_action = UserAction.RETRY_LATER


class UnsafeRedirectError(EHRError):
    """A next link or redirect pointed at another origin; it was not followed."""

    code = "unsafe_redirect"
    default_message = (
        "The EHR pointed the app at another site, so the request was stopped for safety."
    )
    default_user_action = UserAction.CONTACT_ADMIN


class PaginationLoopError(EHRError):
    """Paging returned a next link already visited; the listing was stopped."""

    code = "pagination_loop"
    default_message = "The EHR's list paging repeated itself, so the list was stopped."
    default_user_action = UserAction.RETRY_LATER


class WriteOutcomeUnknownError(EHRError):
    """A write may or may not have happened upstream; it must be checked, never resent blindly."""

    code = "write_outcome_unknown"
    default_message = (
        "The app could not confirm whether the EHR saved this change. Check the EHR before "
        "trying again."
    )
    default_user_action = UserAction.CHECK_UPSTREAM


class AuditWriteError(EHRError):
    """The audit row could not be written, so no data is returned (fail closed)."""

    code = "audit_write_failed"
    default_message = "The audit log could not be written, so the request was stopped. Try again."
    default_user_action = UserAction.RETRY_LATER


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """The UTC instant a ``Retry-After`` header names, or None when absent or unusable.

    Accepts delta-seconds (``"120"``) or an HTTP-date. Negative, huge or unparsable values give
    None; an HTTP-date in the past gives ``now``. ``now`` must be timezone-aware.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now_utc = now.astimezone(UTC)
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        seconds = int(text[:12])
        if seconds > MAX_RETRY_AFTER_SECONDS:
            return None
        return now_utc + timedelta(seconds=seconds)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.utcoffset() is None:
        # RFC 9110 HTTP-dates are always GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if when - now_utc > timedelta(seconds=MAX_RETRY_AFTER_SECONDS):
        return None
    return max(when, now_utc)


def _decode_json(body: bytes | str | None) -> Any:
    if body is None or len(body) > MAX_ERROR_BODY_BYTES:
        return None
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        return json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: deeply nested JSON must not escape as a crash.
        return None


def _clean_message(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = _QUOTED.sub('"…"', value)
    text = _CONTROL.sub(" ", text).strip()
    return text[:MAX_FIELD_MESSAGE_CHARS] or None


def _messages(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    cleaned = (_clean_message(item) for item in items[:MAX_MESSAGES_PER_FIELD])
    return [message for message in cleaned if message]


def _flatten_fields(
    value: object, prefix: str, depth: int, out: dict[str, list[str]], non_field: list[str]
) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            if len(out) >= MAX_FIELDS:
                return
            key = str(key)
            if key == "non_field_errors" and not prefix:
                non_field.extend(_messages(sub))
            elif key == "detail" and not prefix:
                # Free text written by upstream code (not a DRF field message): it may quote
                # anything, so it only helps classify and is never kept.
                continue
            elif _FIELD_KEY.match(key) and depth < MAX_FIELD_DEPTH:
                _flatten_fields(
                    sub, f"{prefix}.{key}" if prefix else key, depth + 1, out, non_field
                )
    elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
        for index, item in enumerate(value[:MAX_FIELDS]):
            if isinstance(item, dict) and item and depth < MAX_FIELD_DEPTH:
                _flatten_fields(item, f"{prefix}.{index}", depth + 1, out, non_field)
    elif prefix:
        messages = _messages(value)
        if messages:
            out[prefix] = messages
    elif isinstance(value, list):
        non_field.extend(_messages(value))


def _validation_details(payload: Any) -> dict[str, Any]:
    fields: dict[str, list[str]] = {}
    non_field: list[str] = []
    _flatten_fields(payload, "", 0, fields, non_field)
    details: dict[str, Any] = {}
    if fields:
        details["fields"] = fields
    if non_field:
        details["non_field_errors"] = non_field[:MAX_MESSAGES_PER_FIELD]
    return details


def _detail_text(payload: Any) -> str:
    if isinstance(payload, dict):
        detail = payload.get("detail")
        if isinstance(detail, str):
            return detail
        return " ".join(m for v in payload.values() for m in _messages(v))
    if isinstance(payload, list):
        return " ".join(_messages(payload))
    return payload if isinstance(payload, str) else ""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _forbidden_details(detail: str, headers: Mapping[str, str]) -> dict[str, Any]:
    challenge = _header(headers, "WWW-Authenticate") or ""
    details: dict[str, Any] = {"status": 403}
    if "insufficient_scope" in challenge or _SCOPE_WORD.search(detail):
        details["gate"] = "scope"
        match = _SCOPE_VALUE.search(challenge)
        if match:
            details["required_scope"] = match.group(1)
    elif _PERMISSION_WORD.search(detail) and "you do not have permission" not in detail.lower():
        # DRF's stock 403 text mentions "permission" for scope failures too, so only a more
        # specific wording is taken as the in-app permission gate.
        details["gate"] = "permission"
    return details


def _conflict(detail: str, method: str, path: str, correlation_id: str) -> ConflictError:
    # Imported here: the DrChrono quirks import this module, so a module-level import would
    # make the two depend on each other's initialisation order.
    from ehr.drchrono.quirks import is_duplicate_patient_conflict, is_overlap_conflict

    details = {"status": 409}
    if is_duplicate_patient_conflict(detail):
        return DuplicatePatientError(details=details, correlation_id=correlation_id)
    if is_overlap_conflict(detail):
        return OverlappingAppointmentError(details=details, correlation_id=correlation_id)
    resource = path.split("?", 1)[0].rstrip("/")
    if method == "POST" and resource.endswith("/api/patients"):
        return DuplicatePatientError(details=details, correlation_id=correlation_id)
    if method in _WRITE_METHODS and "/api/appointments" in resource:
        return OverlappingAppointmentError(details=details, correlation_id=correlation_id)
    return ConflictError(details=details, correlation_id=correlation_id)


def error_from_response(
    status: int,
    body: bytes | str | None,
    headers: Mapping[str, str],
    *,
    method: str,
    correlation_id: str,
    now: datetime,
    path: str = "",
    field_names: Mapping[str, str] | None = None,
) -> EHRError:
    """Map one upstream HTTP error response to the ``EHRError`` callers should see.

    ``method`` decides whether a server error leaves a write's outcome unknown; ``path`` (the
    request path) helps tell a duplicate-patient 409 from an appointment-overlap 409;
    ``field_names`` renames upstream field names to form field names in validation errors.
    Upstream free text is used only to classify the error and never becomes the message; DRF
    field messages are kept in ``details`` with quoted input removed. ``now`` (aware) anchors a
    ``Retry-After`` in seconds.
    """
    verb = method.upper()
    is_write = verb in _WRITE_METHODS
    payload = _decode_json(body)
    detail = _detail_text(payload)
    common: dict[str, Any] = {"correlation_id": correlation_id}
    if status == 400:
        error = ValidationFailedError(details=_validation_details(payload), **common)
        return error.renamed(field_names) if field_names else error
    if status == 401:
        return ReauthorizationRequiredError(details={"status": 401}, **common)
    if status == 403:
        return UpstreamForbiddenError(details=_forbidden_details(detail, headers), **common)
    if status in (404, 410):
        return NotFoundError(details={"status": status}, **common)
    if status == 405:
        return UnsupportedOperationError(details={"status": 405, "method": verb}, **common)
    if status == 409:
        return _conflict(detail, verb, path, correlation_id)
    if status == 413:
        too_large = {"status": 413, "non_field_errors": ["The submitted data is too large."]}
        return ValidationFailedError(details=too_large, **common)
    if status == 429:
        retry_at = parse_retry_after(_header(headers, "Retry-After"), now)
        return RateLimitedError(retry_at=retry_at, details={"status": 429}, **common)
    if is_write and 500 <= status <= 599 and status != 503:
        # The request reached upstream and may have been applied before the failure; 503
        # alone means it was turned away unprocessed.
        return WriteOutcomeUnknownError(details={"status": status}, **common)
    if status in (408, 504):
        return UpstreamTimeoutError(details={"status": status}, **common)
    if 500 <= status <= 599:
        return UpstreamUnavailableError(details={"status": status}, **common)
    return UnexpectedResponseError(details={"status": status}, **common)
