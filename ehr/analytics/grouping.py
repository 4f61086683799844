"""Whole-column group helpers the billing KPIs share: sums by key and by calendar month, and
distinct visits per key, written so a million rows cost milliseconds (no per-row Python, no
per-row calendar math, no hashing where a flag array will do)."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

__all__ = ["MARKER_LIMIT", "month", "sum_by", "sum_by_month", "visits_by"]

# Largest (key x visit) flag array ``visits_by`` allocates (bytes) before it hashes instead.
MARKER_LIMIT: Final = 64_000_000


def sum_by(frame: pd.DataFrame, key: str, column: str) -> pd.Series:
    """Σ ``column`` per ``key`` over the rows where it is present."""
    present = frame[frame[column].notna()]
    return present.groupby(key, observed=True)[column].sum()


def sum_by_month(frame: pd.DataFrame, date_column: str, column: str) -> pd.Series:
    """Σ ``column`` per calendar month of ``date_column`` over the rows where it is present."""
    present = frame[frame[column].notna()]
    return present.groupby(month(present[date_column]))[column].sum()


def month(dates: pd.Series) -> pd.Series:
    """The first day of each date's month (``datetime64[ns]``), named ``month``."""
    days = dates.to_numpy().astype("datetime64[D]")
    if len(days) and not np.isnat(days).any():
        # Calendar math once per distinct day, not per row (30 ms a million rows otherwise).
        first = days.min()
        span = np.arange(first, days.max() + np.timedelta64(1, "D"))
        months = span.astype("datetime64[M]").astype("datetime64[ns]")[(days - first).view("i8")]
    else:
        months = days.astype("datetime64[M]").astype("datetime64[ns]")
    result: pd.Series = pd.Series(months, index=dates.index, name="month")
    return result


def visits_by(rows: pd.DataFrame, key: str) -> pd.Series:
    """Distinct visits per ``key`` (rows without a visit or key left out), as
    ``groupby(key)["visit"].nunique()`` gives them, without its sort of a million pairs."""
    linked = rows[rows["visit"] >= 0]
    codes, keys = pd.factorize(linked[key], sort=True)
    known = codes >= 0
    visits = linked["visit"].to_numpy(dtype=np.int64)[known]
    width = int(visits.max(initial=0)) + 1
    pairs = codes[known].astype(np.int64) * width + visits
    if len(keys) * width <= MARKER_LIMIT:  # a flag per (key, visit): no hashing at all
        seen = np.zeros(len(keys) * width, dtype=bool)
        seen[pairs] = True
        counts = seen.reshape(len(keys), width).sum(axis=1)
    else:
        counts = np.bincount(pd.unique(pairs) // width, minlength=len(keys))
    result: pd.Series = pd.Series(counts, index=pd.Index(keys, name=key), name="visit")
    return result
