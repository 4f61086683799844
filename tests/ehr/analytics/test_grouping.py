"""The whole-column group helpers give exactly what the plain pandas spelling gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ehr.analytics import grouping


def _rows(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    count = 5000
    doctor = pd.array(rng.integers(1, 6, count), dtype="Int64")
    doctor[rng.random(count) < 0.05] = pd.NA
    payer = pd.Categorical(rng.choice(["Aetna", "Cigna", "Self-pay"], count))
    return pd.DataFrame(
        {
            "doctor_id": doctor,
            "payer": payer.add_categories(["Never used"]),
            "visit": rng.integers(-1, 700, count),  # -1: no visit
        }
    )


@pytest.mark.parametrize("key", ["doctor_id", "payer"])
@pytest.mark.parametrize("limit", [grouping.MARKER_LIMIT, 0])  # flag array, then hashing
def test_visits_by_counts_distinct_visits_like_nunique(monkeypatch, key, limit) -> None:
    monkeypatch.setattr(grouping, "MARKER_LIMIT", limit)
    rows = _rows(seed=3)
    want = rows[rows["visit"] >= 0].groupby(key, observed=True)["visit"].nunique()
    got = grouping.visits_by(rows, key)
    pd.testing.assert_series_equal(got, want, check_index_type=False)
    assert grouping.visits_by(rows.iloc[:0], key).empty


def test_month_is_the_calendar_month_of_each_date_missing_dates_included() -> None:
    dates = pd.Series(pd.to_datetime(["2024-02-29", "2025-12-31", "2026-01-01", "2025-03-15"]))
    want = dates.dt.to_period("M").dt.to_timestamp().astype("datetime64[ns]")
    assert grouping.month(dates).tolist() == want.tolist()
    with_gap = pd.concat([dates, pd.Series([pd.NaT])], ignore_index=True)
    assert grouping.month(with_gap).isna().tolist() == [False] * 4 + [True]
    assert grouping.month(dates.iloc[:0]).empty
