"""KPIs at scale: every Billing KPI and chart aggregate over a million line items.

The candidate is what the Billing page computes for a 12-month range: the one join
(``billing_data``) and all KPI and chart functions of ``ehr.analytics.billing``. The baseline is
one pandas groupby-sum over the same line-item frame, measured in the same run; the KPIs alone over
already-joined data are reported beside it (the page joins once per mirror version). Targets (issue
7): at most 20x the baseline, peak memory at most 1.5 GB (reported as the process's peak
resident set, which includes the interpreter and the frames themselves).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from benchmarks.harness import Record, RunContext, WithPeakRss, interleaved
from benchmarks.harness import make_record as rec
from benchmarks.synthetic import appointment_rows, line_item_rows
from ehr.analytics import billing
from ehr.analytics.frames import (
    appointments_frame,
    line_items_frame,
    patient_payments_frame,
    transactions_frame,
)

ROWS = 1_000_000
QUICK_ROWS = 100_000
# Rows generated as dicts; the big frame is this one repeated with fresh ids (dicts for a
# million rows would cost more memory than the benchmark measures).
BLOCK_ROWS = 100_000
TARGET_RATIO = 20.0
TARGET_PEAK_MIB = 1536.0
FILTERS = billing.BillingFilters(start=date(2025, 7, 1), end=date(2026, 6, 30))


def _frames(count: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = line_item_rows(min(count, BLOCK_ROWS))
    block = line_items_frame(rows)
    visits_block = appointments_frame(appointment_rows(rows))
    copies = max(1, count // len(block))
    lines, visits = [], []
    for copy in range(copies):
        lines.append(
            block.assign(
                id=block["id"] + copy * len(block),
                appointment_id=block["appointment_id"] + f"-{copy}",
            )
        )
        visits.append(visits_block.assign(id=visits_block["id"] + f"-{copy}"))
    return pd.concat(lines, ignore_index=True), pd.concat(visits, ignore_index=True)


def _all_kpis(lines: pd.DataFrame, visits: pd.DataFrame) -> object:
    data = billing.billing_data(lines, transactions_frame([]), patient_payments_frame([]), visits)
    return _kpis(data)


def _kpis(data: billing.BillingData) -> object:
    f = FILTERS
    return (
        billing.charges(data, f),
        billing.payments(data, f),
        billing.adjustments(data, f),
        billing.gross_collection_rate(data, f),
        billing.net_collection_rate(data, f),
        billing.days_in_ar(data, f),
        billing.ar_aging(data, f),
        billing.ar_over_90(data, f),
        billing.ar_over_90_by_payer(data, f),
        billing.denial_rate(data, f),
        billing.payer_mix(data, f),
        billing.top_cpt_codes(data, f),
        billing.denials_by_month(data, f),
        billing.provider_productivity(data, f),
        billing.monthly_totals(data, f),
    )


def run(ctx: RunContext) -> list[Record]:
    count = QUICK_ROWS if ctx.quick else ROWS
    ctx.progress(f"kpis_at_scale: building a {count:,}-line frame")
    lines, visits = _frames(count)
    kpis = WithPeakRss(lambda: _all_kpis(lines, visits))

    def one_groupby() -> object:
        return lines.groupby("code", observed=True)["price"].sum()

    ctx.progress("kpis_at_scale: timing")
    times = interleaved({"kpis": kpis, "groupby": one_groupby}, ctx.runs, warmup=1)
    # Timed after the peaks above, so holding the joined frames does not raise them.
    joined = billing.billing_data(lines, transactions_frame([]), patient_payments_frame([]), visits)

    def after_join() -> object:
        # What a filter change costs on the page, which keeps the joined data per mirror
        # version: a new BillingData over the same frames, so its memo starts empty each run.
        frames = (joined.line_items, joined.transactions, joined.patient_payments)
        return _kpis(billing.BillingData(*frames))

    later = interleaved({"after_join": after_join, "groupby": one_groupby}, ctx.runs, warmup=1)
    note = f"{len(lines):,} line items, {len(visits):,} visits, 15 KPI and chart functions"
    records = [
        rec("kpis.one_groupby_sum", times["groupby"], "s", note=note),
        rec(
            "kpis.all_billing",
            times["kpis"],
            "s",
            baseline=("kpis.one_groupby_sum", times["groupby"]),
            target=TARGET_RATIO,
        ),
        rec(
            "kpis.all_billing.after_join",
            later["after_join"],
            "s",
            baseline=("kpis.one_groupby_sum", later["groupby"]),
            note="the same KPIs over data already joined (no target: the join is kept per version)",
        ),
    ]
    peaks = kpis.timed(ctx.runs)
    if peaks:
        records.append(rec("kpis.all_billing.peak_rss", peaks, "MiB", target=TARGET_PEAK_MIB))
    return records
