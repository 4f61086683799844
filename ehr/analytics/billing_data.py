"""The joined, slimmed money frames the billing KPIs read, and how they are filtered.

``billing_data`` links every line item to its visit (appointment), and every insurance
transaction and patient payment to its line item and visit, once, so each KPI is a mask and a
sum. Linking is positional (one ``factorize`` per key) because string-keyed joins of a million
rows cost seconds; the frames keep only the columns KPIs use, with the visit as an integer
position (``visit``, -1 when none) instead of its text id.

Who a row belongs to (see ``ehr.analytics.billing`` for why): the office, first-billed date and
payer come from the visit; a transaction or payment without its own visit or provider takes
them through its line item; the payer of a row without a visit is the transaction's own payer
name, else ``UNLINKED``; a visit without a primary insurer is ``SELF_PAY``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.extensions import take

__all__ = ["SELF_PAY", "UNLINKED", "BillingData", "BillingFilters", "billing_data", "scoped"]

SELF_PAY: Final = "Self-pay"
UNLINKED: Final = "Unlinked"
_NOWHERE: Final = -1  # position of a row that links to nothing

Positions = npt.NDArray[np.intp]
Frame = Literal["line_items", "transactions", "patient_payments"]
T = TypeVar("T")
# Results kept per BillingData (masks and the aged A/R of recent filters): a page view asks
# for about a dozen aggregations of the same few scopes; the oldest entry goes first.
_MEMO_ENTRIES: Final = 64

_LINE_COLUMNS: Final = [
    "id",
    "doctor_id",
    "code",
    "quantity",
    "billed",
    "paid_total",
    "balance_ins",
    "balance_pt",
    "claim_status",
    "denied",
    "service_date",
]
_TRANSACTION_COLUMNS: Final = [
    "doctor_id",
    "ins_paid",
    "adjustment",
    "adjustment_group_code",
    "posted_date",
]
_PATIENT_COLUMNS: Final = ["doctor_id", "amount", "posted_date"]


@dataclass(frozen=True, slots=True)
class BillingFilters:
    """A date range (inclusive) and optional dimension filters; an empty set means "all"."""

    start: date
    end: date
    doctor_ids: frozenset[int] = frozenset()
    office_ids: frozenset[int] = frozenset()
    payers: frozenset[str] = frozenset()
    cpt_codes: frozenset[str] = frozenset()
    claim_statuses: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError("the range starts after it ends")

    def dimensions(self) -> tuple[tuple[str, frozenset[int] | frozenset[str]], ...]:
        """The (column, wanted values) pairs every frame of ``BillingData`` carries."""
        return (
            ("doctor_id", self.doctor_ids),
            ("office_id", self.office_ids),
            ("payer", self.payers),
            ("code", self.cpt_codes),
            ("claim_status", self.claim_statuses),
        )


@dataclass(frozen=True, slots=True)
class BillingData:
    """Joined money frames. All three carry ``visit``, ``doctor_id``, ``office_id``,
    ``payer``, ``code`` and ``claim_status``. ``line_items`` adds ``id``, ``quantity``,
    ``billed``, ``paid_total``, ``balance_ins``, ``balance_pt``, ``denied``, ``service_date``
    and ``first_billed_date``; ``transactions`` adds ``ins_paid``, ``adjustment``,
    ``adjustment_group_code`` and ``posted_date``; ``patient_payments`` adds ``amount`` and
    ``posted_date``."""

    line_items: pd.DataFrame
    transactions: pd.DataFrame
    patient_payments: pd.DataFrame
    # Per-object memo (see ``rows`` and ``memo``); the frames are treated as read-only.
    _memo: dict[Hashable, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, kept under ``key`` for later calls on this object (bounded)."""
        if key in self._memo:
            kept: T = self._memo[key]
            return kept
        value = compute()
        if len(self._memo) >= _MEMO_ENTRIES:
            del self._memo[next(iter(self._memo))]
        self._memo[key] = value
        return value

    def rows(
        self,
        frame: Frame,
        filters: BillingFilters,
        date_column: str,
        columns: list[str],
        *,
        end: date | None = None,
        open_start: bool = False,
    ) -> pd.DataFrame:
        """``scoped`` rows of one of the frames, its mask computed once per filters."""
        table: pd.DataFrame = getattr(self, frame)
        mask = self.memo(
            ("mask", frame, filters, date_column, end, open_start),
            lambda: _mask(table, filters, date_column, end, open_start),
        )
        return table.loc[mask, columns]


def billing_data(
    line_items: pd.DataFrame,
    transactions: pd.DataFrame,
    patient_payments: pd.DataFrame,
    appointments: pd.DataFrame,
) -> BillingData:
    """Join frames from ``ehr.analytics.frames`` once: line item → visit, payment → line item.

    A duplicated appointment or line item id resolves to its last row.
    """
    visits = appointments.reset_index(drop=True)
    lines = line_items.reset_index(drop=True)
    transactions = transactions.reset_index(drop=True)
    patient_payments = patient_payments.reset_index(drop=True)
    # One factorize of every appointment id: string hashing is the expensive part.
    line_visit, transaction_visit, payment_visit = _positions(
        visits["id"],
        lines["appointment_id"],
        transactions["appointment_id"],
        patient_payments["appointment_id"],
    )
    items = lines[_LINE_COLUMNS].assign(visit=line_visit)
    payers = _visit_payers(visits)
    # One factorize of the line ids for both frames (a million integer ids cost ~20 ms a pass).
    transaction_line, payment_line = _line_positions(
        items["id"], transactions["line_item_id"], patient_payments["line_item_id"]
    )
    return BillingData(
        line_items=_with_visit(items, visits, payers),
        transactions=_with_visit(
            _through_line(
                transactions, _TRANSACTION_COLUMNS, transaction_visit, transaction_line, items
            ),
            visits,
            payers,
            fallback_payer=transactions["payer_name"],
        ),
        patient_payments=_with_visit(
            _through_line(patient_payments, _PATIENT_COLUMNS, payment_visit, payment_line, items),
            visits,
            payers,
        ),
    )


def scoped(
    frame: pd.DataFrame,
    filters: BillingFilters,
    date_column: str,
    columns: list[str],
    *,
    end: date | None = None,
    open_start: bool = False,
) -> pd.DataFrame:
    """``columns`` of the rows dated within the filters' range (or up to ``end``) that match
    every dimension filter. Selecting columns first keeps the copy small."""
    return frame.loc[_mask(frame, filters, date_column, end, open_start), columns]


def _mask(
    frame: pd.DataFrame,
    filters: BillingFilters,
    date_column: str,
    end: date | None,
    open_start: bool,
) -> npt.NDArray[np.bool_]:
    dates = frame[date_column]
    mask = dates <= pd.Timestamp(end or filters.end)
    if not open_start:
        mask &= dates >= pd.Timestamp(filters.start)
    for column, wanted in filters.dimensions():
        if wanted:
            mask &= frame[column].isin(list(wanted))
    return mask.to_numpy(dtype=bool)


def _positions(keys: pd.Series, *wanted: pd.Series) -> list[Positions]:
    """For each series in ``wanted``, the row position in ``keys`` of each value (the last
    one when a key repeats), or -1 when the value is missing or not a key."""
    codes, _ = pd.factorize(pd.concat([keys, *wanted], ignore_index=True))
    key_codes = codes[: len(keys)]
    known = key_codes >= 0
    # One spare slot at the end stays -1, so a missing value (code -1) finds nothing.
    lookup = np.full(int(codes.max(initial=_NOWHERE)) + 2, _NOWHERE, dtype=np.intp)
    lookup[key_codes[known]] = np.arange(len(keys), dtype=np.intp)[known]
    bounds = np.cumsum([len(keys), *(len(w) for w in wanted)])
    return [lookup[codes[a:b]] for a, b in itertools.pairwise(bounds)]


def _take(values: pd.Series, positions: Positions) -> pd.Series:
    taken: pd.Series = pd.Series(take(values.array, positions, allow_fill=True))
    return taken


def _line_positions(ids: pd.Series, *wanted: pd.Series) -> list[Positions]:
    if not any(len(w) for w in wanted):  # nothing links to a line item: no hashing needed
        return [np.full(0, _NOWHERE, dtype=np.intp) for _ in wanted]
    # The same (nullable) dtype on both sides, so the concatenation is not object dtype.
    return _positions(ids.astype("Int64"), *(w.astype("Int64") for w in wanted))


def _through_line(
    frame: pd.DataFrame,
    columns: list[str],
    own_visit: Positions,
    line: Positions,
    items: pd.DataFrame,
) -> pd.DataFrame:
    line_visit = _take(items["visit"], line).fillna(_NOWHERE).to_numpy(dtype=np.intp)
    out = frame[columns].assign(visit=np.where(own_visit != _NOWHERE, own_visit, line_visit))
    out["doctor_id"] = out["doctor_id"].fillna(_take(items["doctor_id"], line))
    out["code"] = _take(items["code"], line)
    out["claim_status"] = _take(items["claim_status"], line)
    return out


def _visit_payers(visits: pd.DataFrame) -> pd.Series:
    names = visits["primary_insurer_name"].astype("category")
    extra = [name for name in (SELF_PAY, UNLINKED) if name not in names.cat.categories]
    return names.cat.add_categories(extra).fillna(SELF_PAY)


def _with_visit(
    frame: pd.DataFrame,
    visits: pd.DataFrame,
    payers: pd.Series,
    fallback_payer: pd.Series | None = None,
) -> pd.DataFrame:
    visit: Positions = np.asarray(frame["visit"], dtype=np.intp)
    frame["office_id"] = _take(visits["office_id"], visit)
    payer = _take(payers, visit)
    unlinked = payer.isna().to_numpy()
    if fallback_payer is not None and unlinked.any():
        fill = fallback_payer[unlinked].astype("str").fillna(UNLINKED)
        payer = payer.cat.add_categories(sorted(set(fill) - set(payer.cat.categories)))
        payer[unlinked] = fill.to_numpy()
    frame["payer"] = payer.fillna(UNLINKED)
    if "service_date" in frame:
        frame["first_billed_date"] = _take(visits["first_billed_date"], visit)
    return frame
