"""Where the DrChrono backend sends each call: paths, page sizes, query parameters, cursors.

``ehr.drchrono.backend`` says *what* to fetch; this module knows how DrChrono spells it
(drchrono.md §2-3): resource paths, the page sizes each list allows, the filters and override
flags, the two-query patient name search, and the opaque cursors handed to callers. Everything
here is pure: no HTTP, no models.

A cursor is the same-origin ``next`` URL DrChrono returned (plus, for patient search, which
name query it belongs to), base64url-encoded so callers treat it as opaque. Decoding checks its
shape and that it names the expected endpoint; the origin is checked by the transport before
anything is sent, so a forged off-origin cursor is refused and never fetched. A search cursor
holds the search's query string, so it is as sensitive as the search: keep it in session state,
never in a URL or a log.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from urllib.parse import urlencode, urlsplit

from ehr.drchrono import quirks
from ehr.errors import UpstreamDataError
from ehr.paging import MAX_PAGE_SIZE

__all__ = [
    "ALLERGIES",
    "APPOINTMENTS",
    "APPOINTMENTS_PAGE_SIZE",
    "APPOINTMENTS_VERBOSE_PAGE_SIZE",
    "APPOINTMENT_PROFILES",
    "CLINICAL_NOTES",
    "DOCTORS",
    "EARLIEST",
    "INSURANCES",
    "LAB_ORDERS",
    "LAB_RESULTS",
    "LINE_ITEMS",
    "MEDICATIONS",
    "OFFICES",
    "PATIENTS",
    "PATIENT_PAYMENTS",
    "PAYER_DIRECTORY",
    "PROBLEMS",
    "TRANSACTIONS",
    "USERS_CURRENT",
    "appointment_sync_params",
    "appointment_window_params",
    "decode_cursor",
    "encode_cursor",
    "found_by_earlier_query",
    "lab_order_ids",
    "list_url",
    "name_search_queries",
    "patient_visits_params",
    "record_path",
    "sync_params",
    "with_duplicate_override",
    "with_overlap_override",
]

USERS_CURRENT = "/api/users/current"
DOCTORS = "/api/doctors"
OFFICES = "/api/offices"
APPOINTMENT_PROFILES = "/api/appointment_profiles"
INSURANCES = "/api/insurances"
PATIENTS = "/api/patients"
APPOINTMENTS = "/api/appointments"
PROBLEMS = "/api/problems"
MEDICATIONS = "/api/medications"
ALLERGIES = "/api/allergies"
LAB_ORDERS = "/api/lab_orders"
LAB_RESULTS = "/api/lab_results"
CLINICAL_NOTES = "/api/clinical_notes"
LINE_ITEMS = "/api/line_items"
TRANSACTIONS = "/api/transactions"
PATIENT_PAYMENTS = "/api/patient_payments"

# Appointments page far smaller than other lists: the description says "max 20" and the
# verbose parameter "limits page_size to 25" (drchrono.md §2.3); asking for more is clamped.
APPOINTMENTS_PAGE_SIZE = 20
APPOINTMENTS_VERBOSE_PAGE_SIZE = 25
# /api/insurances requires a payer directory (emdeon, gateway or ihcfa, drchrono.md §3.15);
# Emdeon (Change Healthcare) is DrChrono's default clearinghouse.
PAYER_DIRECTORY = "emdeon"
# A date before any EHR record: "since the beginning" for filters that must be present
# (appointment lists require a date filter, drchrono.md §3.2).
EARLIEST = date(1900, 1, 1)
# Longest cursor accepted: a next URL with a search query is a few hundred characters.
MAX_CURSOR_CHARS = 4096

_TRUE = "true"


def record_path(collection: str, record_id: int | str) -> str:
    """The path of one record; ``ValueError`` for an id unsafe in a URL path.

    Integer ids are DrChrono's norm; appointment ids are strings (``quirks.appointment_id``).
    """
    if isinstance(record_id, bool) or (isinstance(record_id, int) and record_id < 0):
        raise ValueError("not a record id")
    return f"{collection}/{quirks.appointment_id(record_id)}"


def list_url(base_url: str, path: str, params: Mapping[str, Any]) -> str:
    """The absolute URL of the first page of a listing (parameters in the given order)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{base_url}{path}?{query}" if query else f"{base_url}{path}"


# --- patients --------------------------------------------------------------------------------


def name_search_queries(
    name: str | None,
    date_of_birth: date | None,
    chart_id: str | None,
    updated_since: date | None = None,
) -> list[dict[str, str]]:
    """The patient list queries of one search, in order (one query without a name).

    DrChrono filters ``first_name`` and ``last_name`` separately and has no "either" filter
    (drchrono.md §3.1), so a name is searched as first name, then as last name; the other
    criteria go into both. ``updated_since`` is DrChrono's ``since`` (a date for patients).
    """
    common: dict[str, str] = {}
    if updated_since is not None:
        common["since"] = updated_since.isoformat()
    if date_of_birth is not None:
        common["date_of_birth"] = date_of_birth.isoformat()
    if chart_id is not None and chart_id.strip():
        common["chart_id"] = chart_id.strip()
    term = (name or "").strip()
    if not term:
        return [common]
    return [{"first_name": term, **common}, {"last_name": term, **common}]


def found_by_earlier_query(record: object, earlier: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a patient record was already returned by one of the ``earlier`` name queries.

    Matching mirrors the filters: names equal ignoring case (the sandbox's documented
    choice), so a patient whose first and last name are both the search term appears once.
    """
    if not isinstance(record, dict):
        return False
    for query in earlier:
        names = {k: v for k, v in query.items() if k in ("first_name", "last_name")}
        if names and all(
            str(record.get(k) or "").casefold() == str(v).casefold() for k, v in names.items()
        ):
            return True
    return False


def with_duplicate_override(allow_duplicate: bool) -> dict[str, str] | None:
    """Query parameters for a patient create: DrChrono's duplicate check is overridden by
    ``allow_duplicates=true`` in the query string (drchrono.md §2.6)."""
    return {"allow_duplicates": _TRUE} if allow_duplicate else None


# --- appointments ----------------------------------------------------------------------------


def appointment_window_params(
    start: date,
    end: date,
    *,
    doctor_id: int | None,
    office_id: int | None,
    patient_id: int | None,
    status_label: str | None,
) -> list[dict[str, Any]]:
    """One appointment-list query per ``date_range`` window covering ``start``..``end``.

    Raises ``ValueError`` when ``end`` is before ``start``. A blank ``status_label`` (booked)
    is not sent: DrChrono ignores empty filters, so the caller filters those itself.
    """
    filters: dict[str, Any] = {
        "doctor": doctor_id,
        "office": office_id,
        "patient": patient_id,
        "status": status_label or None,
        "page_size": APPOINTMENTS_PAGE_SIZE,
    }
    return [
        {"date_range": quirks.date_range_param(lo, hi), **filters}
        for lo, hi in quirks.split_date_range(start, end)
    ]


def appointment_sync_params(since: date | None) -> dict[str, Any]:
    """Appointments written on or after ``since`` (all when None), verbose for the status
    history. DrChrono requires a date filter here, so "all" is ``since`` = ``EARLIEST``.
    ``show_archived`` lists deleted ones too (drchrono.md §2.4): without it a deletion never
    reaches the sync, which keeps them as tombstones."""
    return {
        "since": (since or EARLIEST).isoformat(),
        "verbose": _TRUE,
        "show_archived": _TRUE,
        "page_size": APPOINTMENTS_VERBOSE_PAGE_SIZE,
    }


def patient_visits_params(patient_id: int, start: date | None, *, verbose: bool) -> dict[str, Any]:
    """One patient's appointments scheduled on or after ``start`` (all when None);
    ``verbose`` adds vitals and the status history at a smaller page size."""
    params: dict[str, Any] = {
        "patient": patient_id,
        "occurred_since": (start or EARLIEST).isoformat(),
        "page_size": APPOINTMENTS_VERBOSE_PAGE_SIZE if verbose else APPOINTMENTS_PAGE_SIZE,
    }
    if verbose:
        params["verbose"] = _TRUE
    return params


def with_overlap_override(body: dict[str, Any], allow_overlap: bool) -> dict[str, Any]:
    """An appointment write body, with ``allow_overlapping: true`` when the user confirmed a
    double booking (DrChrono answers 409 otherwise, drchrono.md §3.2)."""
    return {**body, "allow_overlapping": True} if allow_overlap and body else body


# --- billing -------------------------------------------------------------------------------


def sync_params(since: date | None) -> dict[str, Any]:
    """A full-size page of records written on or after ``since`` (all when None)."""
    params: dict[str, Any] = {"page_size": MAX_PAGE_SIZE}
    if since is not None:
        params["since"] = since.isoformat()
    return params


# --- labs ------------------------------------------------------------------------------------


def _int_field(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def lab_order_ids(records: list[Any], patient_id: int) -> list[int]:
    """Ids of the lab orders that belong to ``patient_id``.

    The ``patient`` filter on ``/api/lab_orders`` is not in DrChrono's schema (the sandbox has
    it), so orders of other patients are dropped here rather than trusted to the filter.
    Raises ``UpstreamDataError`` for an order without a readable id.
    """
    ids: list[int] = []
    for record in records:
        if not isinstance(record, dict):
            raise UpstreamDataError(details={"field": "lab_order", "problem": "expected an object"})
        if _int_field(record, "patient") != patient_id:
            continue
        order_id = _int_field(record, "id")
        if order_id is None:
            raise UpstreamDataError(details={"field": "lab_order.id", "problem": "missing"})
        ids.append(order_id)
    return ids


# --- cursors ---------------------------------------------------------------------------------


def encode_cursor(next_url: str, query_index: int = 0) -> str:
    """An opaque cursor for the page at ``next_url`` (of the ``query_index``-th query)."""
    raw = json.dumps({"u": next_url, "q": query_index}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, base_url: str, path: str) -> tuple[str, int]:
    """The ``(url, query_index)`` of a cursor made by ``encode_cursor`` for ``path``.

    Raises ``ValueError`` for anything else: garbage, or a URL for another endpoint. The
    origin is left to the transport, which refuses another one before sending anything.
    """
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise ValueError("invalid cursor")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError("invalid cursor") from None
    url = data.get("u") if isinstance(data, dict) else None
    index = data.get("q") if isinstance(data, dict) else None
    if not isinstance(url, str) or not isinstance(index, int) or isinstance(index, bool):
        raise ValueError("invalid cursor")
    expected = urlsplit(base_url).path.rstrip("/") + path
    if index < 0 or urlsplit(url).path.rstrip("/") != expected:
        raise ValueError("invalid cursor")
    return url, index
