"""DrChrono oddities, each in one small named function with one test.

Each function absorbs one way DrChrono differs from what a client would guess: the list
envelope key, the date-range parameter and its window, string appointment ids, money as
strings, and how a 409's wording tells a duplicate patient from an overlapping appointment.
Sources are cited per function (``shared/ehr-api/drchrono.md``).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ehr.errors import UpstreamDataError

__all__ = [
    "MAX_DATE_RANGE_DAYS",
    "appointment_id",
    "date_range_param",
    "is_duplicate_patient_conflict",
    "is_overlap_conflict",
    "list_key",
    "parse_money",
    "split_date_range",
]

# DrChrono's documented window for the appointments `date_range` filter (drchrono.md §3.2),
# counted inclusively so a chunk never exceeds it whichever way upstream counts.
MAX_DATE_RANGE_DAYS = 190
# Appointment ids go into URL paths; a longer one is not an id.
MAX_APPOINTMENT_ID_CHARS = 64
# A money string longer than this is not an amount a clinic bills.
MAX_MONEY_CHARS = 32

# Appointment ids are "usually numeric, but not always" (virtual recurring instances); only
# characters safe in a URL path segment are accepted.
_APPOINTMENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]+$")
# Plain decimals ("-12.30") or properly grouped thousands ("1,234.50"); no exponents, no NaN.
_MONEY = re.compile(r"^[+-]?(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?$")
_DUPLICATE = re.compile(r"duplicate", re.IGNORECASE)
_OVERLAP = re.compile(r"overlap|double[- ]?book", re.IGNORECASE)


def list_key(envelope: object) -> list[Any]:
    """The record list of a DrChrono list response, from ``results`` or ``data``.

    The real API and every client use ``results``; DrChrono's OpenAPI schema labels the array
    ``data`` (drchrono.md §2.3). Raises ``UpstreamDataError`` naming the field when the
    envelope is not an object or the list is missing or not a list.
    """
    if not isinstance(envelope, dict):
        raise UpstreamDataError(details={"field": "envelope", "problem": "expected an object"})
    for key in ("results", "data"):
        if key in envelope:
            records = envelope[key]
            if not isinstance(records, list):
                raise UpstreamDataError(details={"field": key, "problem": "expected a list"})
            return records
    raise UpstreamDataError(details={"field": "results", "problem": "missing"})


def date_range_param(start: date, end: date) -> str:
    """The ``date_range`` filter value ``"YYYY-MM-DD/YYYY-MM-DD"`` (both ends inclusive).

    Raises ``ValueError`` when ``end`` is before ``start`` or the span exceeds
    ``MAX_DATE_RANGE_DAYS`` (use ``split_date_range`` first).
    """
    if end < start:
        raise ValueError("date range ends before it starts")
    if (end - start).days + 1 > MAX_DATE_RANGE_DAYS:
        raise ValueError(f"date range longer than {MAX_DATE_RANGE_DAYS} days")
    return f"{start.isoformat()}/{end.isoformat()}"


def split_date_range(
    start: date, end: date, max_days: int = MAX_DATE_RANGE_DAYS
) -> list[tuple[date, date]]:
    """Consecutive inclusive ``(start, end)`` chunks of at most ``max_days`` days covering the range.

    Raises ``ValueError`` when ``end`` is before ``start`` or ``max_days`` is below 1.
    """
    if end < start:
        raise ValueError("date range ends before it starts")
    if max_days < 1:
        raise ValueError("max_days must be at least 1")
    chunks: list[tuple[date, date]] = []
    chunk_start = start
    while chunk_start <= end:
        chunk_end = min(end, chunk_start + timedelta(days=max_days - 1))
        chunks.append((chunk_start, chunk_end))
        chunk_start = chunk_end + timedelta(days=1)
    return chunks


def appointment_id(value: object) -> str:
    """An appointment id as a string: DrChrono types it as a string that is usually numeric.

    Integers are converted; strings must be non-empty, short and URL-path safe. Raises
    ``ValueError`` otherwise (booleans included, though Python treats them as integers).
    """
    if isinstance(value, bool):
        raise ValueError("appointment id is a boolean")
    if isinstance(value, int):
        return str(value)
    if (
        isinstance(value, str)
        and len(value) <= MAX_APPOINTMENT_ID_CHARS
        and _APPOINTMENT_ID.match(value)
    ):
        return value
    raise ValueError("not an appointment id")


def parse_money(value: object) -> Decimal | None:
    """A money amount as ``Decimal``: DrChrono returns decimals as strings (``"123.45"``).

    Accepts strings (``"12.30"``, ``"-5"``, ``"1,234.50"``), integers and finite floats.
    Returns None for None or an empty string (no amount). Raises ``ValueError`` for anything
    else (``"NaN"``, ``"1e5"``, ``"12,34"``, booleans); negative amounts are valid
    (adjustments, refunds).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("money is a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str) and len(value) <= MAX_MONEY_CHARS:
        text = value.strip().replace(",", "") if _MONEY.match(value.strip()) else ""
    else:
        text = ""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError("not a money amount") from None
    if not amount.is_finite():
        raise ValueError("not a money amount")
    return amount


def is_duplicate_patient_conflict(detail: str) -> bool:
    """Whether a 409 ``detail`` reports a possible duplicate patient.

    DrChrono answers a patient create with "Potential duplicate patient(s) found." when the
    practice's duplicate check is on (drchrono.md §2.6); override with ``allow_duplicates``.
    """
    return bool(_DUPLICATE.search(detail))


def is_overlap_conflict(detail: str) -> bool:
    """Whether a 409 ``detail`` reports an appointment overlapping another one.

    DrChrono refuses overlapping appointments unless ``allow_overlapping`` is true
    (drchrono.md §3.2); the message wording is undocumented, so "overlap" and "double book"
    are both recognised.
    """
    return bool(_OVERLAP.search(detail))
