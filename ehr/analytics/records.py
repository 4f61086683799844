"""Flat rows for the analytics mirror: one JSON-ready dict per record, and back.

The encrypted mirror (``storage/mirror.py``) stores records as rows of plain JSON values so a
batch of them encrypts as one blob and loads straight into a DataFrame. Conventions, fixed so
stored rows stay readable across versions:

* money is **integer cents** (``Decimal("12.30")`` → ``1230``; KPIs aggregate integers, never
  ``Decimal`` objects — see issue 7's measurements); an unreadable amount stays ``None``; a
  ``Decimal`` that is not money (a line item's ``quantity``, in units) is a float;
* dates are ISO ``YYYY-MM-DD``; datetimes ISO 8601 in UTC;
* enums are their value; an ``Other`` (an upstream value the app does not know) is its raw text;
* tuples become lists; nested status transitions become lists of small dicts.

Only the fields analytics need are kept: no names, no free-text clinical content (the visit
``reason`` is left out), so even a decrypted mirror row holds ids, codes, amounts and dates.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum
from typing import Any, Final

from ehr.models import Appointment, Other, StatusTransition
from ehr.models_billing import LineItem, PatientPayment, Transaction

__all__ = ["EXCLUDED_FIELDS", "UNIT_FIELDS", "Row", "cents", "to_row"]

Row = dict[str, Any]
Mirrored = LineItem | Transaction | PatientPayment | Appointment

# Fields never written to the mirror: free text that can name conditions or people.
EXCLUDED_FIELDS: Final = frozenset({"reason", "description", "adjustment_reason"})
_CENT: Final = Decimal("0.01")
# Decimal fields that count units, not money.
UNIT_FIELDS: Final = frozenset({"quantity"})


def cents(amount: Decimal | None) -> int | None:
    """Money as integer cents, rounded half-even (banker's rounding, as ledgers do)."""
    if amount is None:
        return None
    return int((amount.quantize(_CENT, rounding=ROUND_HALF_EVEN) * 100).to_integral_value())


def _value(value: object) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return cents(value)
    if isinstance(value, Other):
        return value.raw
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, StatusTransition):
        return {
            "from_status": _value(value.from_status),
            "to_status": _value(value.to_status),
            "at": _value(value.at),
        }
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    raise TypeError(f"cannot store a {type(value).__name__} in a mirror row")


def to_row(record: Mirrored) -> Row:
    """The mirror row of a billing or scheduling record (see the module docstring)."""
    row: Row = {}
    for f in dataclasses.fields(record):
        if f.name in EXCLUDED_FIELDS:
            continue
        value = getattr(record, f.name)
        if f.name in UNIT_FIELDS and isinstance(value, Decimal):
            row[f.name] = float(value)
        else:
            row[f.name] = _value(value)
    return row
