"""The EHR error tree: its contract (codes, messages, shape) and the HTTP status mapping."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

import ehr.errors as errors_module
from ehr.errors import (
    ChangedUpstreamError,
    ConflictError,
    DuplicatePatientError,
    EHRError,
    NotFoundError,
    OverlappingAppointmentError,
    RateLimitedError,
    ReauthorizationRequiredError,
    UnexpectedResponseError,
    UnsupportedOperationError,
    UpstreamForbiddenError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    UserAction,
    ValidationFailedError,
    WriteOutcomeUnknownError,
    error_from_response,
    parse_retry_after,
)

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
PHI = ("Zebulon", "Quixote", "1931")


def _all_subclasses(cls):
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


# The tree itself: classes defined in ehr.errors (a module may narrow one for its own use, as
# ehr.policy.PermissionDenied does, with its own constructor and tests).
ERROR_CLASSES = [
    cls for cls in [EHRError, *_all_subclasses(EHRError)] if cls.__module__ == "ehr.errors"
]


def _map(status, body=None, headers=None, method="GET", path="/api/patients"):
    if isinstance(body, dict | list):
        body = json.dumps(body)
    return error_from_response(
        status, body, headers or {}, method=method, correlation_id="ref-1", now=NOW, path=path
    )


# --- contract -------------------------------------------------------------------------------


def test_every_error_class_has_a_message_and_a_unique_code():
    codes = [cls.code for cls in ERROR_CLASSES]
    assert len(codes) == len(set(codes)), "error codes must be unique"
    for cls in ERROR_CLASSES:
        assert re.fullmatch(r"[a-z][a-z_]+", cls.code), cls
        assert cls.default_message.strip(), cls
        assert cls.__doc__, cls


def test_the_tree_is_drawn_in_the_docstring_and_exported():
    for cls in ERROR_CLASSES:
        assert cls.__name__ in errors_module.__doc__
        assert cls.__name__ in errors_module.__all__


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_to_dict_has_the_one_shape(cls):
    bare = cls(correlation_id="ref-9").to_dict()
    assert bare == {"code": cls.code, "message": cls.default_message, "correlation_id": "ref-9"}
    assert str(cls()) == cls.default_message
    detailed = cls(details={"status": 500}).to_dict()
    assert list(detailed) == ["code", "message", "details", "correlation_id"]


def test_user_action_defaults_and_override():
    assert ReauthorizationRequiredError().user_action == UserAction.RECONNECT
    assert ReauthorizationRequiredError().user_action == "reconnect"
    assert NotFoundError().user_action is None
    assert NotFoundError(user_action=UserAction.RELOAD).user_action == UserAction.RELOAD
    assert ChangedUpstreamError().user_action == UserAction.RELOAD
    assert isinstance(ChangedUpstreamError(), ConflictError)


def test_rate_limited_keeps_an_aware_utc_retry_time():
    plus_two = datetime(2026, 3, 2, 16, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")
    )
    error = RateLimitedError(retry_at=plus_two)
    assert error.retry_at == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    assert error.retry_at.tzinfo is UTC
    assert error.to_dict()["details"]["retry_at"] == "2026-03-02T16:00:00+00:00"
    with pytest.raises(ValueError, match="aware"):
        RateLimitedError(retry_at=datetime(2026, 3, 2, 16, 0))


# --- 400 ------------------------------------------------------------------------------------


def test_400_field_errors_go_to_details_with_form_names():
    error = error_from_response(
        400,
        b'{"first_name": ["This field is required."], "doctor": ["Invalid pk \\"9\\" - object does not exist."]}',
        {},
        method="POST",
        correlation_id="ref-1",
        now=NOW,
        field_names={"doctor": "doctor_id"},
    )
    assert type(error) is ValidationFailedError
    assert error.user_action == UserAction.FIX_INPUT
    assert error.field_errors == {
        "first_name": ["This field is required."],
        "doctor_id": ['Invalid pk "…" - object does not exist.'],
    }
    assert error.message == ValidationFailedError.default_message
    assert error.correlation_id == "ref-1"


def test_400_bare_list_and_non_field_errors():
    listed = _map(400, ["both appointment_id and template_id must be specified"])
    assert listed.details == {
        "non_field_errors": ["both appointment_id and template_id must be specified"]
    }
    assert _map(400, {"detail": "JSON parse error - Zebulon"}).details == {}
    assert _map(400, '"a JSON string"').details == {}
    non_field = _map(400, {"non_field_errors": ["Overlapping times."], "reason": ["Too long."]})
    assert non_field.details == {
        "fields": {"reason": ["Too long."]},
        "non_field_errors": ["Overlapping times."],
    }


def test_400_nested_serializer_errors_are_flattened():
    error = _map(
        400,
        {
            "primary_insurance": {"insurance_company": ["Required."]},
            "rooms": [{}, {"name": ["Bad."]}],
        },
    )
    assert error.field_errors == {
        "primary_insurance.insurance_company": ["Required."],
        "rooms.1.name": ["Bad."],
    }


def test_400_messages_never_carry_quoted_input_and_are_capped():
    error = _map(
        400,
        {
            "gender": ['"Zebulon Quixote" is not a valid choice.'],
            "notes": ["x" * 5000],
            "bad key with spaces": ["ignored"],
            **{f"f{i}": ["Required."] for i in range(200)},
        },
    )
    text = json.dumps(error.to_dict())
    assert not any(value in text for value in PHI)
    assert error.field_errors["gender"] == ['"…" is not a valid choice.']
    assert len(error.field_errors["notes"][0]) == errors_module.MAX_FIELD_MESSAGE_CHARS
    assert "bad key with spaces" not in error.field_errors
    assert len(error.field_errors) == errors_module.MAX_FIELDS


def test_renamed_keeps_everything_else():
    original = ValidationFailedError(
        details={"fields": {"doctor": ["Required."]}, "non_field_errors": ["x"]},
        correlation_id="ref-3",
    )
    renamed = original.renamed({"doctor": "doctor_id"})
    assert renamed.field_errors == {"doctor_id": ["Required."]}
    assert renamed.details["non_field_errors"] == ["x"]
    assert renamed.correlation_id == "ref-3"


# --- auth, not found, method ----------------------------------------------------------------


def test_401_means_reconnect():
    error = _map(401, {"detail": "The access token has expired."})
    assert type(error) is ReauthorizationRequiredError
    assert error.user_action == UserAction.RECONNECT


def test_403_with_drf_stock_text_names_no_gate():
    error = _map(403, {"detail": "You do not have permission to perform this action."})
    assert type(error) is UpstreamForbiddenError
    assert "gate" not in error.details
    assert error.user_action == UserAction.CONTACT_ADMIN


def test_403_scope_gate_from_the_challenge_header():
    error = _map(
        403,
        {"detail": "You do not have permission to perform this action."},
        {"www-authenticate": 'Bearer error="insufficient_scope", scope="patients:read"'},
    )
    assert error.details["gate"] == "scope"
    assert error.details["required_scope"] == "patients:read"


def test_403_permission_gate_from_specific_wording():
    error = _map(403, {"detail": "User lacks the manage-patients permission."})
    assert error.details["gate"] == "permission"


def test_404_405_and_odd_statuses():
    assert type(_map(404, {"detail": "Not found."})) is NotFoundError
    unsupported = _map(405, {"detail": 'Method "DELETE" not allowed.'}, method="delete")
    assert type(unsupported) is UnsupportedOperationError
    assert unsupported.details == {"status": 405, "method": "DELETE"}
    for status in (302, 418, 451):
        odd = _map(status, "<html>teapot</html>")
        assert type(odd) is UnexpectedResponseError
        assert odd.details == {"status": status}


# --- 409 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detail", "method", "path", "expected"),
    [
        ("Potential duplicate patient(s) found.", "POST", "/api/patients", DuplicatePatientError),
        ("Something else entirely.", "POST", "/api/patients", DuplicatePatientError),
        (
            "Potential duplicate patient(s) found.",
            "PATCH",
            "/api/patients/5",
            DuplicatePatientError,
        ),
        (
            "Appointment overlaps with another.",
            "PATCH",
            "/api/appointments/9",
            OverlappingAppointmentError,
        ),
        ("", "POST", "/api/appointments?allow_overlapping=false", OverlappingAppointmentError),
        ("Cannot modify a locked clinical note.", "PATCH", "/api/clinical_notes/3", ConflictError),
    ],
)
def test_409_duplicate_versus_overlap(detail, method, path, expected):
    error = _map(409, {"detail": detail}, method=method, path=path)
    assert type(error) is expected
    assert error.correlation_id == "ref-1"
    assert detail not in error.message or not detail


def test_conflict_overrides_offer_confirmation():
    assert DuplicatePatientError().user_action == UserAction.CONFIRM_OVERRIDE
    assert OverlappingAppointmentError().user_action == UserAction.CONFIRM_OVERRIDE


# --- 429 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", NOW + timedelta(seconds=120)),
        ("0", NOW),
        ("Mon, 02 Mar 2026 15:00:00 GMT", datetime(2026, 3, 2, 15, 0, tzinfo=UTC)),
        ("Mon, 02 Mar 2026 13:00:00 GMT", NOW),  # in the past: now
        ("-5", None),
        ("soon", None),
        ("99999999999999999999", None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", None),
        ("", None),
    ],
)
def test_429_retry_after_seconds_date_or_garbage(header, expected):
    error = _map(429, {"detail": "Request was throttled."}, {"Retry-After": header})
    assert type(error) is RateLimitedError
    assert error.retry_at == expected
    assert error.user_action == UserAction.RETRY_LATER


def test_429_without_retry_after_has_no_time():
    error = _map(429, None)
    assert error.retry_at is None
    assert "retry_at" not in error.details


def test_parse_retry_after_needs_an_aware_now():
    with pytest.raises(ValueError, match="aware"):
        parse_retry_after("10", datetime(2026, 3, 2, 14, 0))


# --- 5xx and writes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "method", "expected"),
    [
        (500, "GET", UpstreamUnavailableError),
        (502, "GET", UpstreamUnavailableError),
        (503, "GET", UpstreamUnavailableError),
        (504, "GET", UpstreamTimeoutError),
        (408, "GET", UpstreamTimeoutError),
        (408, "POST", UpstreamTimeoutError),
        (500, "POST", WriteOutcomeUnknownError),
        (502, "PATCH", WriteOutcomeUnknownError),
        (504, "PUT", WriteOutcomeUnknownError),
        (500, "DELETE", WriteOutcomeUnknownError),
        (503, "POST", UpstreamUnavailableError),
        (599, "GET", UpstreamUnavailableError),
    ],
)
def test_server_errors_and_unknown_write_outcomes(status, method, expected):
    error = _map(status, None, method=method)
    assert type(error) is expected
    assert error.details["status"] == status


def test_write_outcome_unknown_tells_the_user_to_check_upstream():
    assert WriteOutcomeUnknownError().user_action == UserAction.CHECK_UPSTREAM


@pytest.mark.parametrize(
    "body",
    [
        b'{"detail": "Patient Zebulon Quixote (DOB 1931-03-17) crashed the server"}',
        "Traceback (most recent call last):\n  File x, Zebulon Quixote 1931-03-17",
        b"\xff\xfe\x00not utf-8 Zebulon",
        b'{"results":[{"id":1,',
        b"[" * 100_000,
        b'{"first_name": ["Zebulon"]}' + b" " * (errors_module.MAX_ERROR_BODY_BYTES + 1),
        None,
    ],
)
def test_upstream_text_never_reaches_the_error(body):
    for status in (400, 403, 409, 500):
        shape = json.dumps(_map(status, body, method="POST").to_dict())
        assert not any(value in shape for value in PHI)
