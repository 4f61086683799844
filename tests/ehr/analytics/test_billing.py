"""Billing KPIs against a hand-worked practice: 5 line items, 3 visits, 3 payers.

The fixture (amounts in cents; range 2026-01-01 .. 2026-02-28):

visit  doctor office payer     first billed
A1     1      10     Aetna     2026-01-05
A2     2      20     Medicare  2026-02-02
A3     1      10     (none)    -            -> "Self-pay"

line visit code  qty billed  paid_total bal_ins bal_pt status              service
L1   A1    99213 1   15000   9000       -500    2000   paid_in_full        2026-01-03
L2   A1    36415 2   2000    0          2000    0      era_denied (denied) 2026-01-03
L3   A2    99214 1   25000   0          25000   0      in_process_payer    2026-02-01
L4   A3    99213 1   15000   5000       0       10000  (not billed)        2026-02-10
L5   A2    99000 1   None    None       None    None   "Payer Pending Review" 2026-02-01

insurance transactions (posted): T1 L1 paid 7000 adj 4000 CO 01-20; T2 L2 paid 0 adj 0 01-20;
T3 unlinked (payer "Cigna") paid 3000 adj 500 PR 02-15; T4 L3 paid None adj 0 02-20.
patient payments (posted): P1 L1 2000 01-03; P2 L4 5000 02-10; P3 visit A3 refund -500 02-12.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from ehr.analytics import billing as b
from ehr.analytics.frames import (
    appointments_frame,
    line_items_frame,
    patient_payments_frame,
    transactions_frame,
)
from ehr.analytics.records import to_row
from ehr.models import Appointment, ClaimStatus, Other
from ehr.models_billing import LineItem, PatientPayment, Transaction

RANGE = b.BillingFilters(date(2026, 1, 1), date(2026, 2, 28))


def _money(cents):
    return None if cents is None else Decimal(cents) / 100


def _visit(id_, doctor, office, payer, first_billed):
    return Appointment(
        id=id_,
        doctor_id=doctor,
        office_id=office,
        scheduled_time=None,
        primary_insurer_name=payer,
        first_billed_date=first_billed,
    )


def _line(id_, visit, doctor, code, qty, billed, paid, bal_ins, bal_pt, status, served, **kw):
    return LineItem(
        id=id_,
        appointment_id=visit,
        doctor_id=doctor,
        code=code,
        quantity=Decimal(qty),
        billed=_money(billed),
        paid_total=_money(paid),
        balance_ins=_money(bal_ins),
        balance_pt=_money(bal_pt),
        claim_status=status,
        service_date=served,
        **kw,
    )


def _txn(id_, line, visit, doctor, paid, adj, group, posted, payer=None):
    return Transaction(
        id=id_,
        line_item_id=line,
        appointment_id=visit,
        doctor_id=doctor,
        ins_paid=_money(paid),
        adjustment=_money(adj),
        adjustment_group_code=group,
        payer_name=payer,
        posted_date=posted,
    )


def _frames(visits=(), lines=(), txns=(), pays=()):
    return b.billing_data(
        line_items_frame([to_row(x) for x in lines]),
        transactions_frame([to_row(x) for x in txns]),
        patient_payments_frame([to_row(x) for x in pays]),
        appointments_frame([to_row(x) for x in visits]),
    )


@pytest.fixture(scope="module")
def data():
    jan3, feb1 = date(2026, 1, 3), date(2026, 2, 1)
    visits = [
        _visit("A1", 1, 10, "Aetna", date(2026, 1, 5)),
        _visit("A2", 2, 20, "Medicare", date(2026, 2, 2)),
        _visit("A3", 1, 10, None, None),
    ]
    lines = [
        _line(1, "A1", 1, "99213", 1, 15000, 9000, -500, 2000, ClaimStatus.PAID_IN_FULL, jan3),
        _line(2, "A1", 1, "36415", 2, 2000, 0, 2000, 0, ClaimStatus.ERA_DENIED, jan3, denied=True),
        _line(3, "A2", 2, "99214", 1, 25000, 0, 25000, 0, ClaimStatus.IN_PROCESS_PAYER, feb1),
        _line(4, "A3", 1, "99213", 1, 15000, 5000, 0, 10000, None, date(2026, 2, 10)),
        _line(5, "A2", 2, "99000", 1, None, None, None, None, Other("Payer Pending Review"), feb1),
    ]
    txns = [
        _txn(1, 1, "A1", 1, 7000, 4000, "CO", date(2026, 1, 20), "Aetna"),
        _txn(2, 2, "A1", 1, 0, 0, None, date(2026, 1, 20), "Aetna"),
        _txn(3, None, None, None, 3000, 500, "PR", date(2026, 2, 15), "Cigna"),
        _txn(4, 3, None, None, None, 0, None, date(2026, 2, 20), "Medicare"),
    ]
    pays = [
        PatientPayment(1, None, Decimal(20), line_item_id=1, posted_date=jan3),
        PatientPayment(2, None, Decimal(50), line_item_id=4, posted_date=date(2026, 2, 10)),
        PatientPayment(
            3, None, Decimal(-5), doctor_id=1, appointment_id="A3", posted_date=date(2026, 2, 12)
        ),
    ]
    return _frames(visits, lines, txns, pays)


def test_charges_sum_billed_by_service_date_and_count_missing_amounts(data):
    # 15000 + 2000 + 25000 + 15000; L5 has no amount
    assert b.charges(data, RANGE) == b.Amount(cents=57000, rows=4, skipped=1)


def test_payments_split_insurance_and_patient_by_posted_date(data):
    paid = b.payments(data, RANGE)
    assert paid.insurance == b.Amount(10000, 3, 1)  # 7000 + 0 + 3000; T4 has no amount
    assert paid.patient == b.Amount(6500, 3, 0)  # 2000 + 5000 - 500 refund
    assert (paid.total_cents, paid.skipped) == (16500, 1)


def test_adjustments_all_and_contractual(data):
    adjusted = b.adjustments(data, RANGE)
    assert adjusted.total == b.Amount(4500, 4, 0)  # 4000 + 0 + 500 + 0
    assert adjusted.contractual == b.Amount(4000, 1, 0)  # group CO only


def test_gross_and_net_collection_rates(data):
    gross = b.gross_collection_rate(data, RANGE)
    assert gross.value == pytest.approx(16500 / 57000)  # 0.2895
    assert (gross.numerator, gross.denominator, gross.skipped) == (16500, 57000, 2)
    net = b.net_collection_rate(data, RANGE)
    assert net.value == pytest.approx(16500 / (57000 - 4000))  # 0.3113
    assert (net.start, net.end) == (date(2025, 3, 1), date(2026, 2, 28))  # 365 days


def test_days_in_ar_excludes_credits_and_uses_a_90_day_lookback(data):
    dar = b.days_in_ar(data, RANGE)
    # A/R = 2000 (L1 pt) + 2000 (L2) + 25000 (L3) + 10000 (L4); L1's -500 is a credit
    assert (dar.ar_cents, dar.credit_cents, dar.lookback_charges_cents) == (39000, 500, 57000)
    assert dar.days == pytest.approx(39000 / (57000 / 90))  # 61.58 days
    assert (dar.as_of, dar.lookback_days, dar.skipped) == (date(2026, 2, 28), 90, 2)


def test_days_in_ar_lookback_is_the_90_days_before_as_of(data):
    # As of 2026-04-05 the look-back starts 2026-01-06: L1 and L2 (Jan 3) fall out.
    dar = b.days_in_ar(data, RANGE, as_of=date(2026, 4, 5))
    assert dar.lookback_charges_cents == 40000
    assert dar.days == pytest.approx(39000 / (40000 / 90))


def test_ar_aging_by_payer_responsibility_and_bucket(data):
    aging = b.ar_aging(data, RANGE).frame
    got = {
        (r.payer, r.responsibility, r.bucket): (r.balance, round(r.share, 4))
        for r in aging.itertuples()
    }
    # ages on 2026-02-28: A1 from first bill 01-05 = 54 days; A2 from 02-02 = 26;
    # A3 never billed, from service 02-10 = 18
    assert got == {
        ("Aetna", "insurer", "31-60"): (2000, round(2000 / 39000, 4)),
        ("Aetna", "patient", "31-60"): (2000, round(2000 / 39000, 4)),
        ("Medicare", "insurer", "0-30"): (25000, round(25000 / 39000, 4)),
        ("Self-pay", "patient", "0-30"): (10000, round(10000 / 39000, 4)),
    }
    assert list(aging["bucket"].cat.categories) == ["0-30", "31-60", "61-90", "91-120", "120+"]


def test_aging_bucket_edges_and_share_over_90(data):
    as_of = date(2026, 5, 5)  # A1: 120 days (still 91-120), A2: 92, A3: 84
    aging = b.ar_aging(data, RANGE, as_of).frame
    assert dict(zip(aging["payer"], aging["bucket"], strict=True)) == {
        "Aetna": "91-120",
        "Medicare": "91-120",
        "Self-pay": "61-90",
    }
    over = b.ar_over_90(data, RANGE, as_of)
    assert (over.numerator, over.denominator) == (29000, 39000)
    assert over.value == pytest.approx(29000 / 39000)
    assert b.ar_aging(data, RANGE, date(2026, 5, 6)).frame["bucket"].iloc[0] == "120+"
    by_payer = b.ar_over_90_by_payer(data, RANGE, as_of).frame.set_index("payer")
    assert by_payer.loc["Aetna", ["ar", "over_90"]].tolist() == [4000, 4000]
    assert by_payer["share"].tolist() == [1.0, 1.0, 0.0]


def test_denial_rate_by_claims_and_dollars(data):
    rate = b.denial_rate(data, RANGE)
    # submitted claims A1 (L1, L2) and A2 (L3, L5); L4 not billed; A1 has a denied line
    assert (rate.by_count.numerator, rate.by_count.denominator) == (1, 2)
    assert rate.by_count.value == 0.5
    # denied $ = L2 2000; submitted $ = 15000 + 2000 + 25000 (L5 has no amount)
    assert (rate.by_dollars.numerator, rate.by_dollars.denominator) == (2000, 42000)
    assert rate.by_dollars.skipped == 1
    assert rate.unknown_statuses == 1  # "Payer Pending Review" counts as submitted


def test_payer_mix_charges_payments_and_visits(data):
    mix = b.payer_mix(data, RANGE)
    rows = {r.payer: (r.charges, r.payments, r.visits) for r in mix.frame.itertuples()}
    # Cigna's transaction has no visit: its own payer name; Medicare's only payment has no amount
    assert rows == {
        "Aetna": (17000, 9000, 1),
        "Medicare": (25000, 0, 1),
        "Self-pay": (15000, 4500, 1),
        "Cigna": (0, 3000, 0),
    }
    shares = mix.frame.set_index("payer")
    assert shares.loc["Aetna", "charges_share"] == pytest.approx(17000 / 57000)
    assert shares.loc["Self-pay", "payments_share"] == pytest.approx(4500 / 16500)
    assert mix.skipped == 2


def test_top_cpt_codes_with_paid_per_unit(data):
    top = b.top_cpt_codes(data, RANGE)
    assert top.frame[["code", "units", "charges", "paid"]].values.tolist() == [
        ["99213", 2.0, 30000, 14000],
        ["99214", 1.0, 25000, 0],
        ["36415", 2.0, 2000, 0],
    ]
    assert top.frame["paid_per_unit"].tolist() == [7000.0, 0.0, 0.0]
    assert top.skipped == 1
    assert b.top_cpt_codes(data, RANGE, limit=1).frame["code"].tolist() == ["99213"]


def test_denials_by_month_payer_and_status(data):
    table = b.denials_by_month(data, RANGE).frame
    assert table.astype({"payer": "str", "claim_status": "str"}).values.tolist() == [
        [pd.Timestamp("2026-01-01"), "Aetna", "era_denied", 1, 2000]
    ]


def test_provider_productivity(data):
    table = b.provider_productivity(data, RANGE).frame
    # doctor 1: 15000 + 2000 + 15000 charged; 7000 + 0 + 2000 + 5000 - 500 paid; visits A1, A3
    assert table.values.tolist() == [[1, 32000, 13500, 2], [2, 25000, 0, 1]]


def test_monthly_totals_cover_every_month(data):
    # From Jan 15: the Jan 3 services and copay fall out, the Jan 20 ERA stays.
    table = b.monthly_totals(data, b.BillingFilters(date(2026, 1, 15), date(2026, 3, 31)))
    assert table.frame.values.tolist() == [
        [pd.Timestamp("2026-01-01"), 0, 7000, 4000],
        [pd.Timestamp("2026-02-01"), 40000, 7500, 500],
        [pd.Timestamp("2026-03-01"), 0, 0, 0],
    ]
    assert table.skipped == 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"doctor_ids": frozenset({2})}, 25000),
        ({"office_ids": frozenset({10})}, 32000),
        ({"payers": frozenset({"Aetna"})}, 17000),
        ({"cpt_codes": frozenset({"99213"})}, 30000),
        ({"claim_statuses": frozenset({"era_denied"})}, 2000),
    ],
)
def test_filters_narrow_charges(data, change, expected):
    filters = b.BillingFilters(RANGE.start, RANGE.end, **change)
    assert b.charges(data, filters).cents == expected


def test_payer_filter_reaches_payments_through_the_visit(data):
    paid = b.payments(data, b.BillingFilters(RANGE.start, RANGE.end, payers=frozenset({"Aetna"})))
    assert (paid.insurance.cents, paid.patient.cents) == (7000, 2000)


def test_a_payer_with_no_claims_gives_none_not_nan(data):
    nobody = b.BillingFilters(RANGE.start, RANGE.end, payers=frozenset({"Nobody"}))
    assert b.gross_collection_rate(data, nobody).value is None
    assert b.net_collection_rate(data, nobody).value is None
    assert b.days_in_ar(data, nobody).days is None
    assert b.ar_over_90(data, nobody).value is None
    rate = b.denial_rate(data, nobody)
    assert rate.by_count.value is None
    assert rate.by_dollars.value is None


def test_a_payer_without_a_r_has_a_missing_share_not_nan():
    data = _frames(
        [_visit("A1", 1, 10, "Aetna", None)],
        [_line(1, "A1", 1, "99213", 1, 100, 100, 0, 0, None, date(2026, 1, 3))],
    )
    mix = b.ar_over_90_by_payer(data, RANGE).frame
    assert mix.empty  # no debit balance at all
    assert b.ar_aging(data, RANGE).frame.empty


def test_a_range_with_no_data_and_no_data_at_all(data):
    later = b.BillingFilters(date(2030, 1, 1), date(2030, 1, 31))
    for source in (data, _frames()):
        assert b.charges(source, later) == b.Amount(0, 0, 0)
        assert b.payments(source, later).total_cents == 0
        assert b.gross_collection_rate(source, later).value is None
        assert b.denial_rate(source, later).by_count.value is None
        assert b.payer_mix(source, later).frame.empty
        assert b.top_cpt_codes(source, later).frame.empty
        assert b.denials_by_month(source, later).frame.empty
        assert b.provider_productivity(source, later).frame.empty
        assert b.monthly_totals(source, later).frame["charges"].tolist() == [0]
    empty = _frames()
    assert b.days_in_ar(empty, later).days is None
    assert list(b.ar_aging(empty, later).frame.columns) == [
        "payer",
        "responsibility",
        "bucket",
        "balance",
        "share",
    ]


def test_a_reversed_range_is_refused():
    with pytest.raises(ValueError, match="starts after"):
        b.BillingFilters(date(2026, 2, 1), date(2026, 1, 1))


def test_every_kpi_function_has_a_formula():
    documented = set(b.KPI_FORMULAS)
    kpis = {
        "charges",
        "payments",
        "adjustments",
        "gross_collection_rate",
        "net_collection_rate",
        "days_in_ar",
        "ar_aging",
        "ar_over_90",
        "denial_rate",
        "payer_mix",
        "top_cpt_codes",
        "denials_by_month",
        "provider_productivity",
        "monthly_totals",
    }
    assert kpis <= documented
    assert all(callable(getattr(b, name)) for name in documented)
    assert all(f.formula and f.date_basis for f in b.KPI_FORMULAS.values())
