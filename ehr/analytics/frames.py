"""Typed DataFrames built from mirror rows, the one input shape every KPI function reads.

Each builder takes rows as produced by ``ehr.analytics.records.to_row`` and returns a frame
with a fixed column set and fixed dtypes, whatever the rows hold (an empty input gives an
empty frame with the same columns), so KPI code never guesses:

* money: integer cents, nullable ``Int64`` (None stays ``<NA>`` so a KPI can count it as a
  data-quality skip instead of treating it as 0);
* other integers (foreign ids, minutes): nullable ``Int64``; a record's own id: ``int64``
  (appointments: text, as their ids are strings);
* dates: ``datetime64[ns]`` (naive, a calendar day); datetimes: ``datetime64[ns, UTC]``;
* codes and statuses: ``category``. Status categories always include every known enum value
  plus any unknown raw value found, which is kept as text, never dropped;
* other text: pandas' ``str`` dtype; flags: ``bool`` (a missing flag reads as False).

``records.cents`` turns every ``Decimal`` into cents, the line item ``quantity`` included, so
the frame divides it back into units (float). Lists are left out (modifiers, diagnosis
pointers, ICD-10 codes); appointment status transitions get a long frame of their own
(``status_transitions_frame``). Building is vectorised: one ``DataFrame.from_records`` then
column-wise conversions, because a year of line items can run to hundreds of thousands of rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Final, Literal

import numpy as np
import pandas as pd

from ehr.analytics.records import Row
from ehr.models import AppointmentBillingStatus, AppointmentStatus, ClaimStatus

__all__ = [
    "APPOINTMENT_COLUMNS",
    "LINE_ITEM_COLUMNS",
    "PATIENT_PAYMENT_COLUMNS",
    "STATUS_TRANSITION_COLUMNS",
    "TRANSACTION_COLUMNS",
    "appointments_frame",
    "line_items_frame",
    "patient_payments_frame",
    "status_transitions_frame",
    "transactions_frame",
]

# The same rows as one list per field (``storage.mirror.load_columns``); builders take either.
Columns = Mapping[str, Sequence[object]]
Kind = Literal["id", "int", "money", "units", "date", "datetime", "category", "text", "bool"]

_ISO_DATE: Final = "%Y-%m-%d"

# Status columns whose categories always include the known enum values.
_KNOWN: Final[Mapping[str, type[StrEnum]]] = {
    "status": AppointmentStatus,
    "from_status": AppointmentStatus,
    "to_status": AppointmentStatus,
    "claim_status": ClaimStatus,
    "claim_status_primary": ClaimStatus,
    "claim_status_secondary": ClaimStatus,
    "billing_status": AppointmentBillingStatus,
}

LINE_ITEM_COLUMNS: Final[Mapping[str, Kind]] = {
    "id": "id",
    "appointment_id": "text",
    "patient_id": "int",
    "doctor_id": "int",
    "code": "category",
    "procedure_type": "category",
    "quantity": "units",
    "price": "money",
    "billed": "money",
    "allowed": "money",
    "expected_reimbursement": "money",
    "adjustment": "money",
    "ins1_paid": "money",
    "ins2_paid": "money",
    "ins3_paid": "money",
    "ins_total": "money",
    "pt_paid": "money",
    "paid_total": "money",
    "balance_ins": "money",
    "balance_pt": "money",
    "balance_total": "money",
    "claim_status": "category",
    "insurance_status": "category",
    "denied": "bool",
    "posted_date": "date",
    "service_date": "date",
    "updated_at": "datetime",
}

TRANSACTION_COLUMNS: Final[Mapping[str, Kind]] = {
    "id": "id",
    "line_item_id": "int",
    "appointment_id": "text",
    "patient_id": "int",
    "doctor_id": "int",
    "insurer_rank": "int",
    "ins_paid": "money",
    "adjustment": "money",
    "adjustment_group_code": "category",
    "claim_status_code": "category",
    "payer_name": "category",
    "trace_number": "text",
    "check_date": "date",
    "posted_date": "date",
    "created_at": "datetime",
    "updated_at": "datetime",
}

PATIENT_PAYMENT_COLUMNS: Final[Mapping[str, Kind]] = {
    "id": "id",
    "patient_id": "int",
    "amount": "money",
    "doctor_id": "int",
    "appointment_id": "text",
    "line_item_id": "int",
    "payment_method": "category",
    "transaction_type": "category",
    "received_date": "date",
    "posted_date": "date",
    "created_at": "datetime",
    "updated_at": "datetime",
}

APPOINTMENT_COLUMNS: Final[Mapping[str, Kind]] = {
    "id": "text",
    "doctor_id": "int",
    "office_id": "int",
    "patient_id": "int",
    "exam_room": "int",
    "profile_id": "int",
    "scheduled_time": "datetime",
    "duration_minutes": "int",
    "status": "category",
    "is_walk_in": "bool",
    "is_break": "bool",
    "is_deleted": "bool",
    "billing_status": "category",
    "claim_status_primary": "category",
    "claim_status_secondary": "category",
    "primary_insurer_name": "category",
    "primary_insurer_payer_id": "category",
    "secondary_insurer_name": "category",
    "first_billed_date": "date",
    "created_at": "datetime",
    "updated_at": "datetime",
}

STATUS_TRANSITION_COLUMNS: Final[Mapping[str, Kind]] = {
    "appointment_id": "text",
    "from_status": "category",
    "to_status": "category",
    "at": "datetime",
}


def line_items_frame(rows: Iterable[Row] | Columns) -> pd.DataFrame:
    """Line items, one row each, with ``LINE_ITEM_COLUMNS`` (see the module docstring)."""
    return _typed(_records(rows, LINE_ITEM_COLUMNS), LINE_ITEM_COLUMNS)


def transactions_frame(rows: Iterable[Row] | Columns) -> pd.DataFrame:
    """Insurance transactions (payments and adjustments) with ``TRANSACTION_COLUMNS``."""
    return _typed(_records(rows, TRANSACTION_COLUMNS), TRANSACTION_COLUMNS)


def patient_payments_frame(rows: Iterable[Row] | Columns) -> pd.DataFrame:
    """Patient payments and refunds (negative) with ``PATIENT_PAYMENT_COLUMNS``."""
    return _typed(_records(rows, PATIENT_PAYMENT_COLUMNS), PATIENT_PAYMENT_COLUMNS)


def appointments_frame(rows: Iterable[Row] | Columns) -> pd.DataFrame:
    """Appointments with ``APPOINTMENT_COLUMNS``; transitions are in ``status_transitions_frame``."""
    return _typed(_records(rows, APPOINTMENT_COLUMNS), APPOINTMENT_COLUMNS)


def status_transitions_frame(rows: Iterable[Row]) -> pd.DataFrame:
    """One row per appointment status change, with ``STATUS_TRANSITION_COLUMNS``.

    Takes the same appointment rows as ``appointments_frame`` (materialise a one-shot iterator
    with ``list`` first to build both). Transitions missing a field keep it as missing.
    """
    nested = pd.DataFrame.from_records(_materialise(rows), columns=["id", "status_transitions"])
    exploded = nested["status_transitions"].explode().dropna()
    flat = pd.DataFrame.from_records(exploded.to_list(), columns=["from_status", "to_status", "at"])
    flat.insert(0, "appointment_id", nested["id"].to_numpy()[exploded.index.to_numpy()])
    return _typed(flat, STATUS_TRANSITION_COLUMNS)


def _materialise(rows: Iterable[Row]) -> list[Row]:
    return rows if isinstance(rows, list) else list(rows)


def _records(rows: Iterable[Row] | Columns, columns: Mapping[str, Kind]) -> pd.DataFrame:
    if isinstance(rows, Mapping):  # columns (``storage.mirror.load_columns``): no dict per row
        count = len(next(iter(rows.values()), []))
        raw = pd.DataFrame({name: _objects(rows.get(name, [None] * count)) for name in columns})
    else:
        raw = pd.DataFrame.from_records(_materialise(rows), columns=list(columns))
    if "quantity" in raw:  # units, stored as a float by ``records.to_row``
        raw["quantity"] = pd.to_numeric(raw["quantity"], errors="coerce")
    return raw


def _objects(values: Sequence[object]) -> pd.Series:
    # Plain objects, converted per column by ``_convert``: inferring a dtype first only costs.
    return pd.Series(np.asarray(values, dtype=object), dtype=object)


def _typed(raw: pd.DataFrame, columns: Mapping[str, Kind]) -> pd.DataFrame:
    return pd.DataFrame(
        {name: _convert(raw[name], name, kind) for name, kind in columns.items()},
        index=pd.RangeIndex(len(raw)),
    )


def _convert(values: pd.Series, name: str, kind: Kind) -> pd.Series:
    values = values.reset_index(drop=True)
    if kind in ("id", "int", "money", "units"):
        number = pd.to_numeric(values, errors="coerce")
        if kind == "units":
            return number.astype("float64")
        return number.astype("int64" if kind == "id" else "Int64")
    if kind == "date":
        return pd.to_datetime(values, format=_ISO_DATE, errors="coerce").astype("datetime64[ns]")
    if kind == "datetime":
        parsed = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
        return parsed.dt.as_unit("ns")
    if kind == "bool":
        return values.astype("boolean").fillna(False).astype("bool")
    if kind == "category":
        return _category(values.astype("str"), _KNOWN.get(name))
    return values.astype("str")


def _category(text: pd.Series, known: type[StrEnum] | None) -> pd.Series:
    if known is None:
        return text.astype("category")
    # Known values first in enum order, then unknown raw values sorted: a stable category set.
    values = [member.value for member in known]
    unknown = sorted(set(text.dropna().unique()) - set(values))
    return text.astype(pd.CategoricalDtype([*values, *unknown]))
