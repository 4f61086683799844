"""Request-body parsing and field validation for the sandbox REST API, DRF style.

DrChrono is a Django REST Framework service, so the sandbox answers bad input the way DRF
serializers do: 400 with ``{"field": ["message", ...]}``, messages worded like DRF's, unknown
fields ignored, read-only fields ignored, the whole body validated before anything is written.
Bodies may be JSON, form-encoded or multipart (drchrono.md §2.1).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

from starlette.requests import Request

# Largest request body read at all (DrChrono's own objects are a few KB; files are not emulated).
MAX_BODY_BYTES = 1_000_000
# Longest string accepted in any field (DrChrono's text fields are far shorter; stops abuse).
MAX_STRING_CHARS = 20_000
# Largest magnitude accepted in a number field (money and quantities are far smaller).
MAX_NUMBER = Decimal(10) ** 12
# Largest list accepted in a list field.
MAX_LIST_ITEMS = 1_000

REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."

Kind = Literal[
    "str", "int", "bool", "number", "decimal", "date", "datetime", "time", "choice",
    "list_str", "list_int", "list_obj", "obj", "any",
]  # fmt: skip


class ApiError(Exception):
    """An HTTP error answer: status plus a JSON body (``{"detail": ...}`` or field errors)."""

    def __init__(self, status: int, body: Any, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def detail(status: int, message: str) -> ApiError:
    """An ``ApiError`` with a DRF ``{"detail": message}`` body."""
    return ApiError(status, {"detail": message})


@dataclass(frozen=True, slots=True)
class Field:
    """One writable field: its kind, allowed choices, and the resource an id must exist in."""

    kind: Kind
    choices: tuple[str, ...] = ()
    ref: str | None = None

    def blank(self) -> Any:
        """The value a new record gets when the field is not given."""
        if self.kind in ("str", "time"):
            return ""
        if self.kind == "choice":
            return self.choices[0] if self.choices else ""
        if self.kind == "bool":
            return False
        if self.kind.startswith("list_"):
            return []
        return None


def choice(*values: str) -> Field:
    """A field whose value must be one of ``values`` (the first is the default)."""
    return Field("choice", tuple(values))


def fk(resource: str) -> Field:
    """An integer id that must name an existing record of ``resource``."""
    return Field("int", ref=resource)


STR = Field("str")
INT = Field("int")
BOOL = Field("bool")
NUMBER = Field("number")
DECIMAL = Field("decimal")
DATE = Field("date")
DATETIME = Field("datetime")
TIME = Field("time")
LIST_STR = Field("list_str")
LIST_INT = Field("list_int")
LIST_OBJ = Field("list_obj")
OBJ = Field("obj")
ANY = Field("any")

_TRUE = {"true", "True", "TRUE", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "False", "FALSE", "0", "no", "off", "f", "n"}


@dataclass(frozen=True, slots=True)
class Body:
    """A parsed request body: the data and whether it came from a form (lists repeat keys)."""

    data: dict[str, Any]
    form: bool


async def read_body(request: Request) -> Body:
    """Parse a JSON, form-encoded or multipart body; empty bodies are ``{}``.

    Raises ``ApiError`` 400 ``{"detail": "JSON parse error - ..."}`` for malformed JSON, 400
    for a JSON value that is not an object, 413 for oversized bodies and 415 for other types.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form(max_files=0, max_fields=MAX_LIST_ITEMS)
        data: dict[str, Any] = {}
        for key in form:
            values = [v for v in form.getlist(key) if isinstance(v, str)]
            data[key] = values[0] if len(values) == 1 else values
        return Body(data, form=True)
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise detail(413, "Request body too large.")
    if not raw.strip():
        return Body({}, form=False)
    if content_type not in ("", "application/json") and not content_type.endswith("+json"):
        raise detail(415, f'Unsupported media type "{content_type}" in request.')
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise detail(400, f"JSON parse error - {_parse_message(exc)}") from None
    if not isinstance(parsed, dict):
        got = type(parsed).__name__
        raise ApiError(
            400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {got}."]}
        )
    return Body(parsed, form=False)


def _parse_message(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg}: line {exc.lineno} column {exc.colno} (char {exc.pos})"
    return "Invalid JSON."


def parse_bool(value: object) -> bool | None:
    """DRF's boolean parsing of a JSON or form value; None when it is not a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    return None


def parse_date(value: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` date or None."""
    if len(value) != 10:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def parse_datetime(value: str, zone: ZoneInfo) -> dt.datetime | None:
    """An ISO 8601 timestamp as practice-local naive time (offsets converted), or None."""
    if len(value) > 40 or len(value) < 16 or value[10:11] not in ("T", " "):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(zone).replace(tzinfo=None)
    return parsed


Exists = Callable[[str, int], bool]


def validate(
    fields: Mapping[str, Field],
    required: tuple[str, ...],
    body: Body,
    *,
    partial: bool,
    exists: Exists,
    zone: ZoneInfo,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate a body against writable ``fields``: returns (clean values, field errors).

    ``partial`` (PATCH) skips the required check. Names not in ``fields`` are ignored, as DRF
    ignores unknown and read-only fields. ``exists(resource, id)`` checks referenced ids.
    """
    clean: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    if not partial:
        for name in required:
            if name not in body.data:
                errors[name] = [REQUIRED]
    for name, spec in fields.items():
        if name not in body.data or name in errors:
            continue
        value = body.data[name]
        if value is None:
            if (
                name in required
                or spec.kind in ("str", "bool", "choice")
                or spec.kind.startswith("list_")
            ):
                errors[name] = [NOT_NULL]
            else:
                clean[name] = None
            continue
        try:
            clean[name] = _convert(spec, value, body.form, zone)
        except ValueError as exc:
            errors[name] = [str(exc)]
            continue
        if spec.ref is not None and not exists(spec.ref, clean[name]):
            errors[name] = [f'Invalid pk "{clean[name]}" - object does not exist.']
    return clean, errors


def _convert(spec: Field, value: Any, form: bool, zone: ZoneInfo) -> Any:
    kind = spec.kind
    if kind in ("str", "time"):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("Not a valid string.")
        text = str(value)
        if len(text) > MAX_STRING_CHARS:
            raise ValueError(f"Ensure this field has no more than {MAX_STRING_CHARS} characters.")
        if kind == "time" and text and not _is_time(text):
            raise ValueError("Time has wrong format. Use one of these formats instead: hh:mm[:ss].")
        return text
    if kind == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            raise ValueError(f'"{_short(value)}" is not a valid choice.')
        return value
    if kind == "int":
        return _to_int(value)
    if kind == "bool":
        parsed = parse_bool(value)
        if parsed is None:
            raise ValueError("Must be a valid boolean.")
        return parsed
    if kind in ("number", "decimal"):
        number = _to_decimal(value)
        if kind == "decimal":
            return f"{number.quantize(Decimal('0.01')):f}"
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "date":
        parsed_date = parse_date(value) if isinstance(value, str) else None
        if parsed_date is None:
            if value == "":
                return None
            raise ValueError("Date has wrong format. Use one of these formats instead: YYYY-MM-DD.")
        return parsed_date.isoformat()
    if kind == "datetime":
        parsed_dt = parse_datetime(value, zone) if isinstance(value, str) else None
        if parsed_dt is None:
            raise ValueError(
                "Datetime has wrong format. Use one of these formats instead: "
                "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
            )
        return parsed_dt.replace(microsecond=0).isoformat()
    if kind.startswith("list_"):
        items = [value] if form and isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError(f'Expected a list of items but got type "{type(value).__name__}".')
        if len(items) > MAX_LIST_ITEMS:
            raise ValueError(f"Ensure this field has no more than {MAX_LIST_ITEMS} elements.")
        if kind == "list_str":
            if not all(isinstance(i, str | int) and not isinstance(i, bool) for i in items):
                raise ValueError("Not a valid string.")
            return [str(i) for i in items]
        if kind == "list_int":
            return [_to_int(i) for i in items]
        if not all(isinstance(i, dict) for i in items):
            raise ValueError("Invalid data. Expected a dictionary.")
        return items
    if kind == "obj":
        if not isinstance(value, dict):
            raise ValueError(
                f"Invalid data. Expected a dictionary, but got {type(value).__name__}."
            )
        return value
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("A valid integer is required.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and 0 < len(value.strip()) <= 18:
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    raise ValueError("A valid integer is required.")


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("A valid number is required.")
    text = str(value).strip()
    if not text or len(text) > 30:
        raise ValueError("A valid number is required.")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError("A valid number is required.") from None
    if not number.is_finite() or abs(number) >= MAX_NUMBER:
        raise ValueError("A valid number is required.")
    return number


def _is_time(text: str) -> bool:
    if text == "24:00" or text == "24:00:00":
        return True
    try:
        dt.time.fromisoformat(text)
    except ValueError:
        return False
    return True


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:40] + "…"
