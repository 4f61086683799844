"""Query-string filters of the sandbox list endpoints (drchrono.md §2.4 and §3).

Each filter turns one raw query value into a predicate over ``(id, record, stamp)``; a bad value
is a 400 with a django-filter style message. Filters that DrChrono applies through a related
object (a line item's office is its appointment's office) look the relation up in the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ehr.sandbox.api_fields import ApiError, parse_date, parse_datetime
from ehr.sandbox.store import Key, Record, Store

# DrChrono rejects appointment date_range windows longer than this (drchrono.md §3.2).
MAX_DATE_RANGE_DAYS = 190
# Longest filter value parsed; longer values are garbage and rejected cheaply.
MAX_FILTER_CHARS = 200

Predicate = Callable[[Key, Record, dt.datetime], bool]
FilterParser = Callable[[str, str, Store], Predicate]


def _bad(name: str, message: str) -> ApiError:
    return ApiError(400, {name: [message]})


def _int_value(name: str, raw: str) -> int:
    text = raw.strip()
    if not text or len(text) > 18 or not text.lstrip("-").isdigit():
        raise _bad(name, "Enter a whole number.")
    return int(text)


def _date_value(name: str, raw: str) -> dt.date:
    parsed = parse_date(raw.strip())
    if parsed is None:
        raise _bad(name, "Enter a valid date.")
    return parsed


def _range_value(name: str, raw: str, max_days: int | None) -> tuple[dt.date, dt.date]:
    start_text, sep, end_text = raw.strip().partition("/")
    start, end = parse_date(start_text), parse_date(end_text)
    if not sep or start is None or end is None:
        raise _bad(name, "Enter a valid date range (YYYY-MM-DD/YYYY-MM-DD).")
    if end < start:
        raise _bad(name, "The end of the date range must not be before its start.")
    if max_days is not None and (end - start).days > max_days:
        raise _bad(name, f"Date range cannot exceed {max_days} days.")
    return start, end


def _day(value: object) -> dt.date | None:
    return parse_date(value[:10]) if isinstance(value, str) else None


def equals(field: str) -> FilterParser:
    """Integer id filter on ``field`` (ids may be stored as int or numeric string)."""

    def parse(name: str, raw: str, _store: Store) -> Predicate:
        wanted = str(_int_value(name, raw))
        return lambda _k, rec, _s: rec.get(field) is not None and str(rec.get(field)) == wanted

    return parse


def own_id() -> FilterParser:
    """Filter by the record's own id (``/api/doctors?doctor=...``)."""

    def parse(name: str, raw: str, _store: Store) -> Predicate:
        wanted = str(_int_value(name, raw))
        return lambda key, _rec, _s: str(key) == wanted

    return parse


def text_equals(field: str) -> FilterParser:
    """Case-insensitive exact text match on ``field``.

    DrChrono does not document whether its name filters match exactly or by substring; exact
    (ignoring case) is the stricter choice, so client code written against the sandbox works
    either way.
    """

    def parse(_name: str, raw: str, _store: Store) -> Predicate:
        wanted = raw.strip().casefold()
        return lambda _k, rec, _s: str(rec.get(field) or "").casefold() == wanted

    return parse


def date_is(field: str) -> FilterParser:
    """Records whose date (or the date part of a timestamp) in ``field`` equals the value."""

    def parse(name: str, raw: str, _store: Store) -> Predicate:
        wanted = _date_value(name, raw)
        return lambda _k, rec, _s: _day(rec.get(field)) == wanted

    return parse


def date_within(field: str, max_days: int | None = None) -> FilterParser:
    """Records whose date in ``field`` lies in ``start/end`` (inclusive)."""

    def parse(name: str, raw: str, _store: Store) -> Predicate:
        start, end = _range_value(name, raw, max_days)

        def match(_k: Key, rec: Record, _s: dt.datetime) -> bool:
            day = _day(rec.get(field))
            return day is not None and start <= day <= end

        return match

    return parse


def date_on_or_after(field: str) -> FilterParser:
    """Records whose date in ``field`` is on or after the value (``occurred_since``)."""

    def parse(name: str, raw: str, _store: Store) -> Predicate:
        start = _date_value(name, raw)

        def match(_k: Key, rec: Record, _s: dt.datetime) -> bool:
            day = _day(rec.get(field))
            return day is not None and day >= start

        return match

    return parse


def since() -> FilterParser:
    """Records written at or after a date or naive timestamp (internal write stamp)."""

    def parse(name: str, raw: str, store: Store) -> Predicate:
        text = raw.strip()
        moment: dt.datetime | None
        day = parse_date(text)
        if day is not None:
            moment = dt.datetime.combine(day, dt.time())
        else:
            moment = parse_datetime(text, store.timezone) if text else None
        if moment is None:
            raise _bad(name, "Enter a valid date/time.")
        threshold = moment
        return lambda _k, _rec, stamp: stamp >= threshold

    return parse


def _appointment_of(store: Store, record: Record) -> Record | None:
    appointment = record.get("appointment")
    if appointment is None:
        return None
    return store.peek("appointments", str(appointment))


def via_appointment(field: str) -> FilterParser:
    """Integer filter on a field of the record's appointment (e.g. a line item's office)."""

    def parse(name: str, raw: str, store: Store) -> Predicate:
        wanted = str(_int_value(name, raw))

        def match(_k: Key, rec: Record, _s: dt.datetime) -> bool:
            if field in rec and rec.get(field) is not None:
                return str(rec[field]) == wanted
            appointment = _appointment_of(store, rec)
            return appointment is not None and str(appointment.get(field)) == wanted

        return match

    return parse


def appointment_date_within(max_days: int | None = None) -> FilterParser:
    """Records whose appointment's scheduled date is in ``start/end``."""

    def parse(name: str, raw: str, store: Store) -> Predicate:
        start, end = _range_value(name, raw, max_days)

        def match(_k: Key, rec: Record, _s: dt.datetime) -> bool:
            appointment = _appointment_of(store, rec)
            day = _day(appointment.get("scheduled_time")) if appointment else None
            return day is not None and start <= day <= end

        return match

    return parse


def appointment_date_is() -> FilterParser:
    """Records whose appointment is scheduled on the given date."""

    def parse(name: str, raw: str, store: Store) -> Predicate:
        wanted = _date_value(name, raw)

        def match(_k: Key, rec: Record, _s: dt.datetime) -> bool:
            appointment = _appointment_of(store, rec)
            return appointment is not None and _day(appointment.get("scheduled_time")) == wanted

        return match

    return parse


def via_lab_order(field: str, order_field: str = "lab_order") -> FilterParser:
    """Integer filter on a field of the record's lab order (lab tests and results)."""

    def parse(name: str, raw: str, store: Store) -> Predicate:
        wanted = str(_int_value(name, raw))

        def match(_k: Key, rec: Record, _s: dt.datetime) -> bool:
            order_id = rec.get(order_field)
            if order_id is None and rec.get("lab_test") is not None:
                test = store.peek("lab_tests", _int_or_str(rec["lab_test"]))
                order_id = test.get("lab_order") if test else None
            if order_id is None:
                return False
            if field == "id":
                return str(order_id) == wanted
            order = store.peek("lab_orders", _int_or_str(order_id))
            return order is not None and str(order.get(field)) == wanted

        return match

    return parse


def contains_any(*fields: str) -> FilterParser:
    """Case-insensitive substring search over several fields (``/api/insurances?term=``)."""

    def parse(_name: str, raw: str, _store: Store) -> Predicate:
        wanted = raw.strip().casefold()
        return lambda _k, rec, _s: any(wanted in str(rec.get(f) or "").casefold() for f in fields)

    return parse


def choice_of(*allowed: str) -> FilterParser:
    """A parameter that must be one of ``allowed`` but does not narrow the results."""

    def parse(name: str, raw: str, _store: Store) -> Predicate:
        if raw not in allowed:
            raise _bad(
                name, f"Select a valid choice. {raw[:40]} is not one of the available choices."
            )
        return lambda _k, _rec, _s: True

    return parse


def text_field(field: str) -> FilterParser:
    """Exact (case-sensitive) match of a code-like text field, e.g. ``status`` or ``cvx_code``."""

    def parse(_name: str, raw: str, _store: Store) -> Predicate:
        return lambda _k, rec, _s: str(rec.get(field) or "") == raw

    return parse


def _int_or_str(value: object) -> Key:
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdigit() else text
