"""The per-``BillingData`` memo (masks, aged A/R, claim lines): each KPI still answers for the
filters it is given, one object's memo never answers for another, and the memo stays bounded.
Every answer is compared with one from a fresh ``BillingData`` (an empty memo)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pandas as pd
import pytest

from benchmarks.synthetic import appointment_rows, line_item_rows
from ehr.analytics import billing as b
from ehr.analytics.billing_data import _MEMO_ENTRIES
from ehr.analytics.frames import (
    appointments_frame,
    line_items_frame,
    patient_payments_frame,
    transactions_frame,
)

KPIS = [
    b.charges,
    b.payments,
    b.adjustments,
    b.gross_collection_rate,
    b.net_collection_rate,
    b.days_in_ar,
    b.ar_aging,
    b.ar_over_90,
    b.ar_over_90_by_payer,
    b.denial_rate,
    b.payer_mix,
    b.top_cpt_codes,
    b.denials_by_month,
    b.provider_productivity,
    b.monthly_totals,
]
YEAR = b.BillingFilters(date(2025, 1, 1), date(2025, 12, 31))
SPRING = b.BillingFilters(date(2025, 3, 1), date(2025, 5, 31))
DOCTOR_3 = dataclasses.replace(YEAR, doctor_ids=frozenset({3}))


def _data(seed: int) -> b.BillingData:
    rows = line_item_rows(3000, seed=seed)
    return b.billing_data(
        line_items_frame(rows),
        transactions_frame([]),
        patient_payments_frame([]),
        appointments_frame(appointment_rows(rows)),
    )


def _fresh(data: b.BillingData) -> b.BillingData:
    return b.BillingData(data.line_items, data.transactions, data.patient_payments)


def _same(got: object, want: object) -> bool:
    if isinstance(got, b.Breakdown) and isinstance(want, b.Breakdown):
        try:
            pd.testing.assert_frame_equal(got.frame, want.frame)
        except AssertionError:
            return False
        return got.skipped == want.skipped
    return got == want


@pytest.fixture(scope="module")
def data() -> b.BillingData:
    return _data(seed=7)


@pytest.mark.parametrize("kpi", KPIS, ids=lambda f: f.__name__)
def test_each_filter_gets_its_own_answer(data, kpi) -> None:
    answers = [kpi(data, f) for f in (YEAR, SPRING, DOCTOR_3, YEAR)]
    for filters, got in zip((YEAR, SPRING, DOCTOR_3, YEAR), answers, strict=True):
        assert _same(got, kpi(_fresh(data), filters))
    if kpi is not b.adjustments and kpi is not b.payments:  # no transactions: zero either way
        assert not _same(answers[0], answers[1]) or not _same(answers[0], answers[2])


def test_the_memo_belongs_to_one_billing_data() -> None:
    first, second = _data(seed=1), _data(seed=2)
    assert b.charges(first, YEAR) != b.charges(second, YEAR)
    assert b.ar_over_90(first, YEAR) != b.ar_over_90(second, YEAR)
    assert b.denial_rate(second, YEAR) == b.denial_rate(_fresh(second), YEAR)
    assert b.charges(second, YEAR) == b.charges(_fresh(second), YEAR)


def test_the_memo_is_bounded(data) -> None:
    copy = _fresh(data)
    for day in range(1, _MEMO_ENTRIES + 10):
        filters = b.BillingFilters(date(2025, 1, 1), date(2025, 3, 1) + pd.Timedelta(days=day))
        assert b.charges(copy, filters) == b.charges(_fresh(data), filters)
    assert 0 < len(copy._memo) <= _MEMO_ENTRIES
