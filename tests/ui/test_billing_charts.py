"""Billing chart factories and drill-down, on the hand-worked practice of the KPI tests.

The aggregated frames come from ``ehr.analytics.billing`` over the fixture documented in
``tests/ehr/analytics/test_billing.py`` (range 2026-01-01 .. 2026-02-28). Worked by hand from
it: charges Jan $170, Feb $400; A/R as of 28 Feb: insurer 0-30 $250 (L3), 31-60 $20 (L2),
patient 0-30 $100 (L4), 31-60 $20 (L1; its insurer credit is not A/R); by payer Aetna $40,
Self-pay $100, Medicare $250.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from ehr.analytics import billing as b
from ehr.services.billing_export import EXPORT_COLUMNS
from tests.ehr.analytics.test_billing import RANGE, data  # noqa: F401  (fixture)
from ui import billing_charts as charts
from ui import billing_detail as detail_view
from ui import billing_view as view
from ui.billing_charts import Selection

VISIT_IDS = np.array(["A1", "A2", "A3"], dtype=object)  # the fixture's visits, in order


def _points(trace) -> int:
    return len(trace.x if trace.orientation != "h" else trace.y)


def _bars(fig: go.Figure) -> list[go.Bar]:
    return [t for t in fig.data if isinstance(t, go.Bar)]


def _event(*customdata: list[object]) -> dict[str, object]:
    points = [
        {"curve_number": 0, "point_index": i, "customdata": c} for i, c in enumerate(customdata)
    ]
    return {"selection": {"points": points, "point_indices": [], "box": [], "lasso": []}}


@pytest.fixture
def loaded(data):  # noqa: F811
    return view.LoadedBilling((), data, VISIT_IDS)


# --- figures ------------------------------------------------------------------------------------


def test_monthly_totals_one_point_per_month_per_series(data):  # noqa: F811
    fig = charts.monthly_totals_chart(b.monthly_totals(data, RANGE).frame)
    assert [t.name for t in _bars(fig)] == ["Charges", "Payments", "Adjustments"]
    assert all(_points(t) == 2 for t in _bars(fig))
    assert list(fig.data[0].x) == ["Jan 2026", "Feb 2026"]
    assert list(fig.data[0].y) == [170.0, 400.0]
    assert [list(c) for c in fig.data[0].customdata] == [["2026-01"], ["2026-02"]]
    assert charts.select_fields(fig) == (charts.MONTH,)


def test_aging_stacks_insurer_and_patient_over_every_bucket(data):  # noqa: F811
    fig = charts.ar_aging_chart(b.ar_aging(data, RANGE).frame)
    insurer, patient = _bars(fig)
    assert (insurer.name, patient.name) == ("Insurer", "Patient")
    assert list(b.AGING_BUCKETS) == list(charts.AGING_BUCKETS)
    assert list(insurer.x) == [f"{bucket} days" for bucket in b.AGING_BUCKETS]
    assert list(insurer.y) == [250.0, 20.0, 0.0, 0.0, 0.0]
    assert list(patient.y) == [100.0, 20.0, 0.0, 0.0, 0.0]
    assert fig.layout.barmode == "stack"
    assert list(insurer.customdata[0]) == ["0-30", "insurer"]
    assert charts.select_fields(fig) == (charts.BUCKET, charts.RESPONSIBILITY)


def test_aging_by_payer_has_a_trace_per_bucket_present_and_payers_by_size(data):  # noqa: F811
    fig = charts.ar_by_payer_chart(b.ar_aging(data, RANGE).frame)
    assert [t.name for t in _bars(fig)] == ["0-30 days", "31-60 days"]
    young, older = _bars(fig)
    assert list(young.y) == ["Aetna", "Self-pay", "Medicare"]
    assert list(young.x) == [0.0, 100.0, 250.0]
    assert list(older.x) == [40.0, 0.0, 0.0]
    assert list(older.customdata[0]) == ["Aetna", "31-60"]


def test_payer_mix_bars_share_of_charges_and_payments(data):  # noqa: F811
    mix = b.payer_mix(data, RANGE).frame
    fig = charts.payer_mix_chart(mix)
    payments, charges_trace = _bars(fig)
    assert (payments.name, charges_trace.name) == ("Payments", "Charges")
    assert _points(charges_trace) == len(mix)
    assert sum(charges_trace.x) == pytest.approx(1.0)
    assert charts.select_fields(fig) == (charts.PAYER,)


def test_top_codes_show_charges_and_paid_per_unit(data):  # noqa: F811
    top = b.top_cpt_codes(data, RANGE).frame
    fig = charts.top_cpt_chart(top)
    charged, per_unit = _bars(fig)
    assert _points(charged) == _points(per_unit) == len(top)
    # Largest at the top of a horizontal chart: the last point drawn.
    assert charged.y[-1] == str(top["code"].iloc[0])
    assert charged.x[-1] == top["charges"].iloc[0] / 100
    assert per_unit.x[-1] == pytest.approx(float(top["paid_per_unit"].iloc[0]) / 100)


def test_denials_one_trace_per_payer_and_status_on_a_full_month_axis(data):  # noqa: F811
    frame = b.denials_by_month(data, replace(RANGE, end=pd.Timestamp("2026-04-30").date()))
    frame = pd.concat(
        [
            frame.frame,
            pd.DataFrame(
                {
                    "month": [pd.Timestamp("2026-03-01")],
                    "payer": ["Medicare"],
                    "claim_status": ["rejected_payer"],
                    "denied_lines": [2],
                    "denied_charges": [5000],
                }
            ),
        ],
        ignore_index=True,
    )
    fig = charts.denials_chart(frame, view.CLAIM_STATUS_LABELS)
    assert [t.name for t in _bars(fig)] == [
        "Aetna · ERA denied",
        "Medicare · Rejected by payer",
    ]
    assert list(fig.layout.xaxis.categoryarray) == ["Jan 26", "Feb 26", "Mar 26"]
    assert sum(sum(t.y) for t in _bars(fig)) == 3
    assert list(fig.data[1].customdata[0]) == ["2026-03", "Medicare", "rejected_payer"]
    assert fig.data[0].marker.pattern.shape != fig.data[1].marker.pattern.shape


def test_providers_are_named_when_known(data):  # noqa: F811
    fig = charts.provider_chart(b.provider_productivity(data, RANGE).frame, {1: "Dr Ada"})
    _payments, charged = _bars(fig)
    assert set(charged.y) == {"Dr Ada", "Provider 2"}
    assert {c[0] for c in charged.customdata} == {"1", "2"}
    assert charged.text[-1].endswith("visits")


@pytest.mark.parametrize(
    ("factory", "columns"),
    [
        (charts.monthly_totals_chart, ["month", "charges", "payments", "adjustments"]),
        (charts.ar_aging_chart, ["payer", "responsibility", "bucket", "balance", "share"]),
        (charts.ar_by_payer_chart, ["payer", "responsibility", "bucket", "balance", "share"]),
        (charts.payer_mix_chart, ["payer", "charges", "charges_share", "payments", "payments_share", "visits"]),
        (charts.top_cpt_chart, ["code", "units", "charges", "paid", "paid_per_unit"]),
        (charts.denials_chart, ["month", "payer", "claim_status", "denied_lines", "denied_charges"]),
        (charts.provider_chart, ["doctor_id", "charges", "payments", "visits"]),
    ],
)  # fmt: skip
def test_an_empty_frame_gives_a_labelled_empty_chart(factory, columns):
    fig = factory(pd.DataFrame(columns=columns))
    assert not _bars(fig)
    assert fig.layout.annotations
    assert fig.layout.annotations[-1].text.startswith("No ")


def test_charts_carry_aggregates_not_line_items(data):  # noqa: F811
    lines = len(data.line_items)
    fig = charts.monthly_totals_chart(b.monthly_totals(data, RANGE).frame)
    assert sum(_points(t) for t in _bars(fig)) == 3 * 2  # 3 series x 2 months, not per line
    assert lines == 5


# --- selection -> filter ------------------------------------------------------------------------


def test_a_selection_event_becomes_field_value_points():
    fields = (charts.MONTH, charts.PAYER, charts.STATUS)
    event = _event(["2026-01", "Aetna", "era_denied"], ["2026-01", "Aetna", "era_denied"])
    selection = charts.selection_from_event(fields, event)
    assert selection.points == (
        {"month": "2026-01", "payer": "Aetna", "claim_status": "era_denied"},
    )
    assert selection.fields() == frozenset(fields)


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        {"selection": {"points": []}},
        _event(["2026-01"]),  # wrong arity for the fields
        _event("2026-01"),  # not a list
        _event([True, "x", "y"]),  # a flag is not an id
        _event([{"x": 1}, "x", "y"]),
    ],
)
def test_a_malformed_or_empty_event_selects_nothing(event):
    selection = charts.selection_from_event((charts.MONTH, charts.PAYER, charts.STATUS), event)
    assert not selection


def test_attribute_style_events_are_read_too():
    class Event:
        def __init__(self) -> None:
            self.selection = {"points": [{"customdata": [120001]}]}

    assert charts.selection_from_event((charts.DOCTOR,), Event()).points == (
        {"doctor_id": "120001"},
    )


def test_detail_frame_lists_the_line_items_with_ids_and_cents_only(loaded):
    detail = detail_view.detail_frame(loaded, RANGE)
    assert list(detail.columns) == list(EXPORT_COLUMNS)
    assert list(detail["line_item_id"]) == [4, 3, 5, 1, 2]  # newest service date first
    by_id = detail.set_index("line_item_id")
    assert by_id.loc[1, "visit_id"] == "A1"
    assert by_id.loc[3, "billed"] == 25000
    assert by_id.loc[1, "ar_bucket"] == "31-60"  # patient owes, aged from first billed
    assert pd.isna(by_id.loc[5, "ar_bucket"])  # unknown balances are not A/R


def test_detail_buckets_add_up_to_the_aging_kpi(loaded, data):  # noqa: F811
    detail = detail_view.detail_frame(loaded, RANGE, open_start=True)
    owed = detail["insurer_balance"].fillna(0).clip(lower=0) + detail["patient_balance"].fillna(
        0
    ).clip(lower=0)
    from_detail = owed.groupby(detail["ar_bucket"]).sum()
    aging = b.ar_aging(data, RANGE).frame.groupby("bucket", observed=True)["balance"].sum()
    assert {k: int(v) for k, v in from_detail.items() if v} == {
        str(k): int(v) for k, v in aging.items() if v
    }


def test_selecting_points_filters_the_detail(loaded):
    detail = detail_view.detail_frame(loaded, RANGE, open_start=True)

    def ids(*points: dict[str, str]) -> set[int]:
        return set(detail_view.apply_selection(detail, Selection(points))["line_item_id"])

    assert ids() == {1, 2, 3, 4, 5}  # nothing selected: everything
    assert ids({"month": "2026-01"}) == {1, 2}
    assert ids({"payer": "Medicare"}) == {3, 5}
    assert ids({"bucket": "0-30", "responsibility": "insurer"}) == {3}
    assert ids({"bucket": "31-60", "responsibility": "patient"}) == {1}
    assert ids({"payer": "Aetna"}, {"payer": "Self-pay"}) == {1, 2, 4}  # any point
    assert ids({"code": "99213"}) == {1, 4}
    assert ids({"doctor_id": "2"}) == {3, 5}
    assert ids({"claim_status": "era_denied", "month": "2026-01", "payer": "Aetna"}) == {2}
    assert ids({"unknown_field": "x"}) == set()  # never widens to everything
    assert ids({"responsibility": "nobody"}) == set()


def test_a_selection_describes_itself_with_labels():
    selection = Selection(({"payer": "Aetna", "claim_status": "era_denied"}, {"payer": "Cigna"}))
    text = selection.describe({"claim_status": {"era_denied": "ERA denied"}})
    assert text == "payer Aetna and claim status ERA denied; or payer Cigna"


def test_status_labels_and_money():
    assert view.status_label("era_denied") == "ERA denied"
    assert view.status_label("Payer Pending Review") == "Payer Pending Review (unrecognised)"
    assert view.status_label(None) == view.status_label(pd.NA) == "Not billed"
    assert view.money(123456) == "$1,234.56"
    assert view.money(123456, whole=True) == "$1,235"
    assert view.money(None) == "—"
