"""Shared state and formatting for the synthetic clinic generator.

One ``GenContext`` is built per ``generate_clinic`` call. It holds the clock (``today`` and the
practice-local "now"), the history/future window, one independent seeded PRNG per generator
stage (so changing one stage never shifts another's draws), id allocation per resource, and the
JSON formatting helpers: dates ``YYYY-MM-DD``, naive timestamps ``YYYY-MM-DDTHH:MM:SS`` and money
as 2-decimal strings computed from integer cents (so sums are exact).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# The clinic's clock on ``today``: mid-morning, so today's schedule shows finished, in-progress
# and upcoming visits at once.
NOW_CLOCK = dt.time(11, 0)

# First id of each resource; distinct ranges make a mixed-up foreign key easy to spot.
ID_BASES: dict[str, int] = {
    "users": 90001,
    "doctors": 120001,
    "offices": 130001,
    "appointment_profiles": 140001,
    "billing_profiles": 150001,
    "patients": 60000001,
    "appointments": 200000001,
    "problems": 30000001,
    "medications": 31000001,
    "allergies": 32000001,
    "clinical_notes": 33000001,
    "clinical_note_field_values": 33500001,
    "lab_orders": 34000001,
    "lab_tests": 35000001,
    "lab_results": 36000001,
    "lab_documents": 36500001,
    "patient_vaccine_records": 37000001,
    "line_items": 40000001,
    "transactions": 41000001,
    "patient_payments": 42000001,
    "eligibility_checks": 43000001,
    "reminders": 44000001,
}

Record = dict[str, Any]


_MONEY_CACHE: dict[int, str] = {}
# Amounts repeat a lot (fees, copays, zero); caching shares one string per amount. Bounded so a
# million-line clinic cannot grow it without limit.
_MONEY_CACHE_MAX = 200_000


def money(cents: int) -> str:
    """Format integer cents as DrChrono's decimal string (``12345`` -> ``"123.45"``)."""
    text = _MONEY_CACHE.get(cents)
    if text is None:
        sign = "-" if cents < 0 else ""
        whole, frac = divmod(abs(cents), 100)
        text = f"{sign}{whole}.{frac:02d}"
        if len(_MONEY_CACHE) < _MONEY_CACHE_MAX:
            _MONEY_CACHE[cents] = text
    return text


def pick(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]``; several times faster than ``Random.randint``."""
    return low + int(rng.random() * (high - low + 1))


@dataclass
class GenContext:
    """Clock, window, PRNG streams, id counters and formatters for one generation run."""

    seed: int
    today: dt.date
    start: dt.date
    end: dt.date
    _counters: dict[str, Iterator[int]] = field(default_factory=dict)
    _date_cache: dict[dt.date, str] = field(default_factory=dict)

    @property
    def now(self) -> dt.datetime:
        """The practice-local moment the data is generated "as of"."""
        return dt.datetime.combine(self.today, NOW_CLOCK)

    def rng(self, stage: str) -> random.Random:
        """An independent PRNG for one generator stage, seeded from the run seed."""
        return random.Random(f"{self.seed}:{stage}")

    def next_id(self, resource: str) -> int:
        """The next integer id of ``resource``."""
        counter = self._counters.get(resource)
        if counter is None:
            counter = itertools.count(ID_BASES[resource])
            self._counters[resource] = counter
        return next(counter)

    def date(self, day: dt.date) -> str:
        """``YYYY-MM-DD``, cached so the few hundred distinct days share one string each."""
        text = self._date_cache.get(day)
        if text is None:
            text = self._date_cache[day] = day.isoformat()
        return text

    @staticmethod
    def ts(moment: dt.datetime) -> str:
        """Naive practice-local timestamp ``YYYY-MM-DDTHH:MM:SS`` (sub-seconds dropped)."""
        return moment.isoformat(timespec="seconds")


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole calendar months, clamped to the month's last day."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(f"no valid day in {year}-{month}")  # unreachable: 28 always fits


def us_holidays(year: int) -> set[dt.date]:
    """The federal holidays a small practice closes on (observed dates)."""

    def nth_weekday(month: int, weekday: int, n: int) -> dt.date:
        first = dt.date(year, month, 1)
        offset = (weekday - first.weekday()) % 7
        return first + dt.timedelta(days=offset + 7 * (n - 1))

    def last_weekday(month: int, weekday: int) -> dt.date:
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        last = nxt - dt.timedelta(days=1)
        return last - dt.timedelta(days=(last.weekday() - weekday) % 7)

    def observed(day: dt.date) -> dt.date:
        if day.weekday() == 5:
            return day - dt.timedelta(days=1)
        if day.weekday() == 6:
            return day + dt.timedelta(days=1)
        return day

    return {
        observed(dt.date(year, 1, 1)),
        last_weekday(5, 0),  # Memorial Day
        observed(dt.date(year, 7, 4)),
        nth_weekday(9, 0, 1),  # Labor Day
        nth_weekday(11, 3, 4),  # Thanksgiving
        observed(dt.date(year, 12, 25)),
    }


def weighted_table(weights: Mapping[str, float]) -> tuple[list[str], list[float]]:
    """Keys and cumulative weights for ``random.Random.choices(..., cum_weights=...)``."""
    keys = list(weights)
    return keys, list(itertools.accumulate(weights[k] for k in keys))
