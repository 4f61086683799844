"""Scheduling and access KPIs over the appointment frames of ``ehr.analytics.frames``.

Definitions follow ``KPIS.md`` section 4.2 and are fixed so months compare:

Scope
    Appointments that are not deleted and not breaks, whose scheduled time falls on a day in
    [start, end] **in the practice's timezone** (the mirror stores UTC; days, weekdays and
    months are local), narrowed by provider and office. Each KPI can be grouped by
    ``doctor_id``, ``office_id`` and/or ``month`` (first day of the local month); no grouping
    gives one overall row.

Attendance (``attendance``)
    *Scheduled* (the denominator) is every appointment in scope except those with status
    ``rescheduled``, whose replacement appointment is counted instead. A *no-show* has status
    ``no_show``; late cancellations are **not** no-shows. A *late cancellation* is a
    cancelled appointment whose last recorded change to ``cancelled`` came less than 24 hours
    before its scheduled time (or after it). A cancellation with no recorded transition has
    an unknown time: it is not late, and is counted in ``cancel_time_unknown``. Custom
    statuses count as scheduled only.

Utilisation (``utilisation``)
    Booked minutes ÷ available minutes. *Booked*: durations of appointments in scope that were
    not cancelled or rescheduled (a no-show still held the slot). *Available*: the clinic
    hours of each weekday (``DEFAULT_CLINIC_HOURS``: 8 h Monday to Friday, none at weekends)
    for every day of the range, for each provider with an appointment in scope (or each
    provider filtered on). A provider's time is counted at one *home office*, the office of
    most of their appointments in scope (or as given), and grouping by office uses the home
    office for booked minutes too, so no office can exceed its providers' hours by sharing.

New-patient lead time (``new_patient_lead_time``)
    A patient's first appointment is their earliest one in the mirror that was not cancelled
    or rescheduled (patients whose earlier visits predate the mirror look new). Lag = local
    date of the appointment − local date it was booked (``created_at``), in days; its median
    and the share within ``NEW_PATIENT_THRESHOLD_DAYS`` (ECG: 7 days in primary care) are
    reported for first appointments in scope. A missing or later-than-visit booking date is
    skipped and counted.

Visit cycle times (``visit_cycle_times``)
    From status transitions: *arrived* is the first change to arrived or checked in, *roomed*
    the first to in room or in session, *complete* the first to complete. Medians in minutes
    of arrived→roomed, roomed→complete and arrived→complete; a negative interval is skipped
    and counted.

Rates and medians are nullable ``Float64``: ``<NA>`` when there is nothing to divide or take
the median of, never NaN or infinity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from pandas.api.typing import DataFrameGroupBy

from ehr.models import AppointmentStatus
from ehr.timeutil import load_practice_zone

__all__ = [
    "DEFAULT_CLINIC_HOURS",
    "LATE_CANCEL_HOURS",
    "NEW_PATIENT_THRESHOLD_DAYS",
    "Group",
    "ScheduleFilters",
    "ScheduleTable",
    "attendance",
    "new_patient_lead_time",
    "utilisation",
    "visit_cycle_times",
]

Group = Literal["doctor_id", "office_id", "month"]

# A cancellation with less notice than this is "late" (OpenEMR's "cancelled < 24 h" status).
LATE_CANCEL_HOURS: Final = 24
# Clinic hours per weekday (0 = Monday): the template when the practice gives none.
DEFAULT_CLINIC_HOURS: Final[Mapping[int, float]] = {0: 8, 1: 8, 2: 8, 3: 8, 4: 8, 5: 0, 6: 0}
# ECG Management Consultants' primary-care threshold for new-patient access.
NEW_PATIENT_THRESHOLD_DAYS: Final = 7
_MINUTES_PER_HOUR: Final = 60
_SECONDS_PER_MINUTE: Final = 60

_NO_SHOW: Final = AppointmentStatus.NO_SHOW.value
_CANCELLED: Final = AppointmentStatus.CANCELLED.value
_RESCHEDULED: Final = AppointmentStatus.RESCHEDULED.value
_NOT_HELD: Final = [_CANCELLED, _RESCHEDULED]
_ARRIVED: Final = [AppointmentStatus.ARRIVED.value, AppointmentStatus.CHECKED_IN.value]
_ROOMED: Final = [AppointmentStatus.IN_ROOM.value, AppointmentStatus.IN_SESSION.value]
_COMPLETE: Final = [AppointmentStatus.COMPLETE.value]


@dataclass(frozen=True, slots=True)
class ScheduleFilters:
    """Local days [start, end], the practice's IANA timezone, optional provider/office sets."""

    start: date
    end: date
    timezone: str
    doctor_ids: frozenset[int] = frozenset()
    office_ids: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError("the range starts after it ends")
        load_practice_zone(self.timezone)  # ConfigurationError for an unknown zone


@dataclass(frozen=True, slots=True)
class ScheduleTable:
    """A KPI table and how many records were skipped for missing or inconsistent data."""

    frame: pd.DataFrame
    skipped: int = 0


def attendance(
    appointments: pd.DataFrame,
    transitions: pd.DataFrame,
    filters: ScheduleFilters,
    by: Sequence[Group] = (),
) -> ScheduleTable:
    """No-show, cancellation and late-cancellation counts and rates per group.

    Columns: the ``by`` keys, ``scheduled``, ``no_shows``, ``cancelled``, ``late_cancelled``,
    ``cancel_time_unknown`` and the Float64 rates ``no_show_rate``, ``cancellation_rate``,
    ``late_cancellation_rate`` (each ÷ scheduled).
    """
    rows = _in_scope(appointments, filters)
    rows = rows[rows["status"] != _RESCHEDULED]
    cancelled = rows["status"] == _CANCELLED
    cancelled_at = _entered(rows, transitions, [_CANCELLED], last=True)
    notice = rows["scheduled_time"] - cancelled_at
    counts = pd.DataFrame(
        {
            "scheduled": 1,
            "no_shows": rows["status"] == _NO_SHOW,
            "cancelled": cancelled,
            "late_cancelled": cancelled & (notice < pd.Timedelta(hours=LATE_CANCEL_HOURS)),
            "cancel_time_unknown": cancelled & cancelled_at.isna(),
        },
        index=rows.index,
    ).astype("int64")
    table = _sum_groups(counts, rows, by)
    for rate, column in (
        ("no_show_rate", "no_shows"),
        ("cancellation_rate", "cancelled"),
        ("late_cancellation_rate", "late_cancelled"),
    ):
        table[rate] = _ratios(table[column], table["scheduled"])
    return ScheduleTable(table, skipped=int(table["cancel_time_unknown"].sum()))


def utilisation(
    appointments: pd.DataFrame,
    filters: ScheduleFilters,
    by: Sequence[Group] = (),
    clinic_hours: Mapping[int, float] = DEFAULT_CLINIC_HOURS,
    home_offices: Mapping[int, int] | None = None,
) -> ScheduleTable:
    """Booked ÷ available minutes per group (see the module docstring for both).

    Columns: the ``by`` keys, ``booked_minutes``, ``available_minutes`` (int64) and
    ``utilisation`` (Float64). ``skipped``: held appointments with no duration.
    """
    rows = _in_scope(appointments, filters)
    homes = _home_offices(rows, home_offices or {})
    held = rows[~rows["status"].isin(_NOT_HELD)]
    booked = pd.DataFrame(
        {
            "doctor_id": held["doctor_id"],
            "office_id": held["doctor_id"].map(homes).astype("Int64"),
            "month": held["month"],
            "booked_minutes": held["duration_minutes"],
        }
    )
    available = _availability(sorted(_providers(rows, filters)), homes, filters, clinic_hours)
    table = pd.concat(
        [
            _sum_groups(booked[["booked_minutes"]].fillna(0), booked, by),
            _sum_groups(available[["available_minutes"]], available, by),
        ]
    )
    table = _sum_groups(table[["booked_minutes", "available_minutes"]], table, by)
    table["utilisation"] = _ratios(table["booked_minutes"], table["available_minutes"])
    return ScheduleTable(table, skipped=int(held["duration_minutes"].isna().sum()))


def new_patient_lead_time(
    appointments: pd.DataFrame,
    filters: ScheduleFilters,
    by: Sequence[Group] = (),
    threshold_days: int = NEW_PATIENT_THRESHOLD_DAYS,
) -> ScheduleTable:
    """Median days from booking to each patient's first appointment, per group.

    Columns: the ``by`` keys, ``new_patients`` (with a usable lag), ``median_days`` and
    ``within_threshold_share`` (Float64). ``skipped``: first visits with no or a later
    booking date.
    """
    first = _first_appointments(appointments)
    rows = _in_scope(appointments.loc[first], filters)
    booked_on = _local_day(rows["created_at"], filters.timezone)
    all_lags: pd.Series = (rows["day"] - booked_on).dt.days
    usable = all_lags.notna() & (all_lags >= 0)
    rows, lag = rows[usable], all_lags[usable].astype("Float64")
    values = pd.DataFrame(
        {"lag": lag, "within": (lag <= threshold_days).astype("Float64")}, index=rows.index
    )
    grouped = _groups(values.assign(**_keys(rows, by)), by)
    table = pd.DataFrame(
        {
            "new_patients": grouped["lag"].count(),
            "median_days": grouped["lag"].median(),
            "within_threshold_share": grouped["within"].mean(),
        }
    )
    return ScheduleTable(_finish(table, by), skipped=int((~usable).sum()))


def visit_cycle_times(
    appointments: pd.DataFrame,
    transitions: pd.DataFrame,
    filters: ScheduleFilters,
    by: Sequence[Group] = (),
) -> ScheduleTable:
    """Median minutes arrived→roomed, roomed→complete and arrived→complete per group.

    Columns: the ``by`` keys, ``visits_timed`` (appointments with arrived→complete),
    ``arrived_to_roomed``, ``roomed_to_complete``, ``arrived_to_complete`` (Float64 minutes).
    ``skipped``: negative intervals (transitions recorded out of order).
    """
    rows = _in_scope(appointments, filters)
    arrived = _entered(rows, transitions, _ARRIVED)
    roomed = _entered(rows, transitions, _ROOMED)
    complete = _entered(rows, transitions, _COMPLETE)
    spans = pd.DataFrame(
        {
            "arrived_to_roomed": _minutes(roomed - arrived),
            "roomed_to_complete": _minutes(complete - roomed),
            "arrived_to_complete": _minutes(complete - arrived),
        },
        index=rows.index,
    )
    negative = (spans < 0).fillna(False).astype("bool")
    spans = spans.mask(negative)
    grouped = _groups(spans.assign(**_keys(rows, by)), by)
    table = grouped[list(spans.columns)].median()
    table.insert(0, "visits_timed", grouped["arrived_to_complete"].count())
    return ScheduleTable(_finish(table, by), skipped=int(negative.to_numpy().sum()))


def _in_scope(appointments: pd.DataFrame, filters: ScheduleFilters) -> pd.DataFrame:
    rows = appointments[~appointments["is_deleted"] & ~appointments["is_break"]]
    day = _local_day(rows["scheduled_time"], filters.timezone)
    mask = day.between(pd.Timestamp(filters.start), pd.Timestamp(filters.end))
    if filters.doctor_ids:
        mask &= rows["doctor_id"].isin(list(filters.doctor_ids))
    if filters.office_ids:
        mask &= rows["office_id"].isin(list(filters.office_ids))
    return rows[mask].assign(day=day[mask], month=_month(day[mask]))


def _local_day(times: pd.Series, timezone: str) -> pd.Series:
    local = times.dt.tz_convert(timezone).dt.tz_localize(None)
    day: pd.Series = local.dt.normalize()
    return day


def _month(days: pd.Series) -> pd.Series:
    months = days.to_numpy().astype("datetime64[M]").astype("datetime64[ns]")
    return pd.Series(months, index=days.index)


def _keys(rows: pd.DataFrame, by: Sequence[Group]) -> dict[str, pd.Series]:
    return {key: rows[key] for key in by}


def _groups(values: pd.DataFrame, by: Sequence[Group]) -> DataFrameGroupBy[Any, Any]:
    if by:
        return values.groupby(list(by), observed=True, sort=True)
    return values.groupby(np.zeros(len(values), dtype=np.int64))


def _sum_groups(values: pd.DataFrame, rows: pd.DataFrame, by: Sequence[Group]) -> pd.DataFrame:
    summed = _groups(values.assign(**_keys(rows, by)), by)[list(values.columns)].sum()
    return _finish(summed.astype("int64"), by)


def _finish(table: pd.DataFrame, by: Sequence[Group]) -> pd.DataFrame:
    """Group keys as columns; with no grouping, exactly one row (zeros when there is no data)."""
    if by:
        return table.reset_index()
    if table.empty:
        table = table.reindex([0])
        counts = [c for c in table.columns if table[c].dtype != "Float64"]
        table[counts] = table[counts].fillna(0).astype("int64")
    return table.reset_index(drop=True)


def _ratios(num: pd.Series, den: pd.Series) -> pd.Series:
    shares = num.astype("Float64") / den.astype("Float64")
    return shares.where(den > 0, pd.NA)


def _minutes(spans: pd.Series) -> pd.Series:
    minutes: pd.Series = (spans.dt.total_seconds() / _SECONDS_PER_MINUTE).astype("Float64")
    return minutes


def _entered(
    rows: pd.DataFrame, transitions: pd.DataFrame, statuses: list[str], *, last: bool = False
) -> pd.Series:
    """When each appointment first (or last) changed to one of ``statuses``; NaT if never."""
    hits = transitions[transitions["to_status"].isin(statuses)].groupby("appointment_id")["at"]
    times = hits.max() if last else hits.min()
    found = times.reindex(pd.Index(rows["id"])).astype(transitions["at"].dtype)
    return pd.Series(found.array, index=rows.index)


def _first_appointments(appointments: pd.DataFrame) -> pd.Index:
    candidates = appointments[
        ~appointments["is_deleted"]
        & ~appointments["is_break"]
        & ~appointments["status"].isin(_NOT_HELD)
        & appointments["patient_id"].notna()
        & appointments["scheduled_time"].notna()
    ]
    ordered = candidates.sort_values(["scheduled_time", "id"], kind="stable")
    return ordered.drop_duplicates("patient_id", keep="first").index


def _providers(rows: pd.DataFrame, filters: ScheduleFilters) -> set[int]:
    seen = {int(d) for d in rows["doctor_id"].dropna().unique()}
    return set(filters.doctor_ids) or seen


def _home_offices(rows: pd.DataFrame, given: Mapping[int, int]) -> dict[int, int]:
    known = rows.dropna(subset=["doctor_id", "office_id"])
    counts = known.groupby(["doctor_id", "office_id"]).size().reset_index(name="n")
    # Most appointments wins; ties go to the lowest office id, so the choice is stable.
    counts = counts.sort_values(["doctor_id", "n", "office_id"], ascending=[True, False, True])
    busiest = counts.drop_duplicates("doctor_id")
    homes = {
        int(d): int(o) for d, o in zip(busiest["doctor_id"], busiest["office_id"], strict=True)
    }
    return homes | dict(given)


def _availability(
    providers: list[int],
    homes: Mapping[int, int],
    filters: ScheduleFilters,
    clinic_hours: Mapping[int, float],
) -> pd.DataFrame:
    days = pd.Series(pd.date_range(filters.start, filters.end, freq="D", unit="ns"))
    hours = days.dt.day_of_week.map(dict(clinic_hours)).fillna(0)
    minutes = (hours * _MINUTES_PER_HOUR).round().astype("int64")
    per_day = pd.DataFrame({"day": days, "available_minutes": minutes})
    per_day["month"] = _month(per_day["day"])
    grid = pd.DataFrame({"doctor_id": pd.array(providers, dtype="Int64")}).merge(
        per_day, how="cross"
    )
    grid["office_id"] = grid["doctor_id"].map(homes).astype("Int64")
    return grid
