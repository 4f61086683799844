"""Scheduling KPIs against a hand-worked week in New York (UTC-5), Mon 5 .. Fri 9 Jan 2026.

appt doctor office patient local slot        min status          booked (local)
A1   1      10     100     Mon 05 09:00      30  complete        Dec 29
A2   1      10     101     Mon 05 10:00      60  no_show         Dec 20
A3   1      10     102     Tue 06 09:00      30  cancelled       Dec 01  (cancelled Mon 15:00: late)
A4   2      20     103     Tue 06 14:00      45  cancelled       Dec 20  (cancelled Jan 2: early)
A5   2      20     104     Fri 09 21:00      30  complete        Jan 07  (02:00 UTC on Saturday)
A6   2      20     103     Thu 08 11:00      30  rescheduled     Dec 20
A7   1      10     105     Fri 09 09:00      30  cancelled       Dec 20  (no transition: time unknown)
A8   1      10     -       Fri 09 12:00      60  break
A9   1      10     109     Fri 09 13:00      30  deleted
A10  1      20     100     Thu 08 09:00      40  "Waiting Room 2" Jan 05  (custom status)
A11  2      20     106     Mon 12 09:00      30  complete        Jan 10  (after the week)
A13  1      10     107     Sat 31 22:00      30  booked          Jan 30  (Feb 1 in UTC)
A14  2      20     108     Thu 08 10:00      30  complete        Jan 09  (booked after the visit)
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from ehr.analytics import scheduling as s
from ehr.analytics.frames import appointments_frame, status_transitions_frame
from ehr.analytics.records import to_row
from ehr.errors import ConfigurationError
from ehr.models import Appointment, AppointmentStatus, Other, StatusTransition

NY = "America/New_York"
WEEK = s.ScheduleFilters(date(2026, 1, 5), date(2026, 1, 9), NY)
S = AppointmentStatus


def _at(month, day, hour, minute=0, year=2026):
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(NY))


def _dec(day, hour):
    return _at(12, day, hour, year=2025)


# Status changes per appointment (from, to, when); A14's roomed time precedes its arrival.
MOVES = {
    "A1": [
        (S.BOOKED, S.ARRIVED, _at(1, 5, 8, 55)),
        (S.ARRIVED, S.CHECKED_IN, _at(1, 5, 9)),
        (S.CHECKED_IN, S.IN_ROOM, _at(1, 5, 9, 5)),
        (S.IN_ROOM, S.COMPLETE, _at(1, 5, 9, 35)),
    ],
    "A3": [(S.BOOKED, S.CANCELLED, _at(1, 5, 15))],
    "A4": [(S.BOOKED, S.CANCELLED, _at(1, 2, 9))],
    "A5": [
        (S.BOOKED, S.ARRIVED, _at(1, 9, 20, 50)),
        (S.ARRIVED, S.IN_SESSION, _at(1, 9, 21, 10)),
        (S.IN_SESSION, S.COMPLETE, _at(1, 9, 21, 40)),
    ],
    "A14": [
        (S.BOOKED, S.ARRIVED, _at(1, 8, 10, 30)),
        (S.BOOKED, S.IN_ROOM, _at(1, 8, 10, 20)),
        (S.IN_ROOM, S.COMPLETE, _at(1, 8, 10, 50)),
    ],
}


def _appt(id_, doctor, office, patient, slot, minutes, status, booked, **kw):
    return Appointment(
        id=id_,
        doctor_id=doctor,
        office_id=office,
        patient_id=patient,
        scheduled_time=slot,
        duration_minutes=minutes,
        status=status,
        created_at=booked,
        status_transitions=tuple(StatusTransition(*move) for move in MOVES.get(id_, ())),
        **kw,
    )


def _frames(appointments):
    rows = [to_row(a) for a in appointments]
    return appointments_frame(rows), status_transitions_frame(rows)


@pytest.fixture(scope="module")
def week():
    return _frames(
        [
            _appt("A1", 1, 10, 100, _at(1, 5, 9), 30, S.COMPLETE, _dec(29, 10)),
            _appt("A2", 1, 10, 101, _at(1, 5, 10), 60, S.NO_SHOW, _dec(20, 9)),
            _appt("A3", 1, 10, 102, _at(1, 6, 9), 30, S.CANCELLED, _dec(1, 9)),
            _appt("A4", 2, 20, 103, _at(1, 6, 14), 45, S.CANCELLED, _dec(20, 9)),
            _appt("A5", 2, 20, 104, _at(1, 9, 21), 30, S.COMPLETE, _at(1, 7, 8)),
            _appt("A6", 2, 20, 103, _at(1, 8, 11), 30, S.RESCHEDULED, _dec(20, 9)),
            _appt("A7", 1, 10, 105, _at(1, 9, 9), 30, S.CANCELLED, _dec(20, 9)),
            _appt("A8", 1, 10, None, _at(1, 9, 12), 60, S.BOOKED, None, is_break=True),
            _appt("A9", 1, 10, 109, _at(1, 9, 13), 30, S.BOOKED, _at(1, 2, 9), is_deleted=True),
            _appt("A10", 1, 20, 100, _at(1, 8, 9), 40, Other("Waiting Room 2"), _at(1, 5, 9)),
            _appt("A11", 2, 20, 106, _at(1, 12, 9), 30, S.COMPLETE, _at(1, 10, 9)),
            _appt("A13", 1, 10, 107, _at(1, 31, 22), 30, S.BOOKED, _at(1, 30, 9)),
            _appt("A14", 2, 20, 108, _at(1, 8, 10), 30, S.COMPLETE, _at(1, 9, 9)),
        ]
    )


def test_attendance_overall(week):
    table = s.attendance(*week, WEEK)
    row = table.frame.iloc[0]
    # A1 A2 A3 A4 A5 A7 A10 A14 (A6 rescheduled; A8 break; A9 deleted; A11, A13 outside)
    assert row[["scheduled", "no_shows", "cancelled", "late_cancelled"]].tolist() == [8, 1, 3, 1]
    assert row["no_show_rate"] == pytest.approx(1 / 8)
    assert row["cancellation_rate"] == pytest.approx(3 / 8)
    assert row["late_cancellation_rate"] == pytest.approx(1 / 8)
    assert table.skipped == 1  # A7's cancellation time is unknown


def test_attendance_by_provider(week):
    frame = s.attendance(*week, WEEK, by=["doctor_id"]).frame
    columns = ["doctor_id", "scheduled", "no_shows", "cancelled", "late_cancelled"]
    assert frame[columns].values.tolist() == [[1, 5, 1, 2, 1], [2, 3, 0, 1, 0]]
    assert frame["cancel_time_unknown"].tolist() == [1, 0]


def test_months_and_days_are_local_not_utc(week):
    january = s.ScheduleFilters(date(2026, 1, 1), date(2026, 2, 28), NY)
    frame = s.attendance(*week, january, by=["month"]).frame
    # A13 is 22:00 on Jan 31 locally (Feb 1 in UTC): January; so is A11
    assert frame["month"].tolist() == [pd.Timestamp("2026-01-01")]
    assert frame["scheduled"].tolist() == [10]
    # In UTC, A5 (21:00 Friday local) would fall on Saturday, outside the week
    utc_week = s.ScheduleFilters(WEEK.start, WEEK.end, "UTC")
    assert s.attendance(*week, utc_week).frame["scheduled"].tolist() == [7]


def test_utilisation_booked_over_available(week):
    table = s.utilisation(week[0], WEEK)
    row = table.frame.iloc[0]
    # held: A1 30 + A2 60 (no-show holds the slot) + A5 30 + A10 40 + A14 30 = 190
    # available: 2 providers x 5 weekdays x 8 h = 4800 minutes
    assert (row["booked_minutes"], row["available_minutes"]) == (190, 4800)
    assert row["utilisation"] == pytest.approx(190 / 4800)
    assert table.skipped == 0


def test_utilisation_by_office_counts_providers_at_their_home_office(week):
    frame = s.utilisation(week[0], WEEK, by=["office_id"]).frame
    # doctor 1 has 4 of 5 appointments at office 10, so A10 (office 20) counts there too
    assert frame[["office_id", "booked_minutes", "available_minutes"]].values.tolist() == [
        [10, 130, 2400],
        [20, 60, 2400],
    ]
    moved = s.utilisation(week[0], WEEK, by=["office_id"], home_offices={1: 20}).frame
    assert moved[["office_id", "booked_minutes", "available_minutes"]].values.tolist() == [
        [20, 190, 4800]
    ]


def test_utilisation_clinic_hours_are_a_parameter(week):
    mondays = s.utilisation(week[0], WEEK, by=["doctor_id"], clinic_hours={0: 4}).frame
    assert mondays["available_minutes"].tolist() == [240, 240]
    assert mondays["utilisation"].tolist() == pytest.approx([130 / 240, 60 / 240])


def test_utilisation_counts_missing_durations():
    frames = _frames([_appt("A1", 1, 10, 1, _at(1, 5, 9), None, S.COMPLETE, _at(1, 1, 9))])
    table = s.utilisation(frames[0], WEEK)
    assert table.skipped == 1
    assert table.frame["booked_minutes"].tolist() == [0]


def test_new_patient_lead_time(week):
    table = s.new_patient_lead_time(week[0], WEEK)
    row = table.frame.iloc[0]
    # first visits in the week: A1 (Dec 29 -> Jan 5: 7 days), A2 (Dec 20 -> Jan 5: 16),
    # A5 (Jan 7 -> Jan 9: 2); A14 was booked after the visit: skipped. Patients 102, 103, 105
    # only have cancelled or rescheduled visits; A10 is patient 100's second visit.
    assert row["new_patients"] == 3
    assert row["median_days"] == 7
    assert row["within_threshold_share"] == pytest.approx(2 / 3)
    assert table.skipped == 1
    strict = s.new_patient_lead_time(week[0], WEEK, threshold_days=2).frame
    assert strict["within_threshold_share"].iloc[0] == pytest.approx(1 / 3)


def test_new_patient_lead_time_by_provider(week):
    frame = s.new_patient_lead_time(week[0], WEEK, by=["doctor_id"]).frame
    assert frame[["doctor_id", "new_patients", "median_days"]].values.tolist() == [
        [1, 2, 11.5],  # median of 7 and 16
        [2, 1, 2.0],
    ]


def test_visit_cycle_times(week):
    table = s.visit_cycle_times(*week, WEEK)
    row = table.frame.iloc[0]
    # A1: 10 / 30 / 40 min; A5: 20 / 30 / 50; A14: roomed before arrival (skipped) / 30 / 20
    assert row["visits_timed"] == 3
    assert row["arrived_to_roomed"] == 15  # median of 10, 20
    assert row["roomed_to_complete"] == 30
    assert row["arrived_to_complete"] == 40  # median of 40, 50, 20
    assert table.skipped == 1


def test_visit_cycle_times_by_provider(week):
    frame = s.visit_cycle_times(*week, WEEK, by=["doctor_id"]).frame
    assert frame["arrived_to_complete"].tolist() == [40, 35]
    assert frame["arrived_to_roomed"].tolist() == [10, 20]


def test_nothing_to_measure_gives_one_row_of_zeros_and_missing_rates():
    empty = _frames([])
    assert len(empty[0]) == 0
    row = s.attendance(*empty, WEEK).frame.iloc[0]
    assert row["scheduled"] == 0
    assert row["no_show_rate"] is pd.NA
    util = s.utilisation(empty[0], WEEK).frame.iloc[0]
    assert (util["booked_minutes"], util["available_minutes"]) == (0, 0)
    assert util["utilisation"] is pd.NA
    lead = s.new_patient_lead_time(empty[0], WEEK).frame.iloc[0]
    assert lead["new_patients"] == 0
    assert lead["median_days"] is pd.NA
    cycle = s.visit_cycle_times(*empty, WEEK).frame.iloc[0]
    assert cycle["visits_timed"] == 0
    assert cycle["arrived_to_complete"] is pd.NA
    assert s.attendance(*empty, WEEK, by=["doctor_id"]).frame.empty


def test_a_week_with_no_appointments(week):
    later = s.ScheduleFilters(date(2027, 1, 4), date(2027, 1, 8), NY)
    assert s.attendance(*week, later).frame["scheduled"].tolist() == [0]
    assert s.utilisation(week[0], later).frame["available_minutes"].tolist() == [0]


def test_provider_and_office_filters(week):
    only_two = s.ScheduleFilters(WEEK.start, WEEK.end, NY, doctor_ids=frozenset({2}))
    assert s.attendance(*week, only_two).frame["scheduled"].tolist() == [3]
    office_20 = s.ScheduleFilters(WEEK.start, WEEK.end, NY, office_ids=frozenset({20}))
    assert s.attendance(*week, office_20).frame["scheduled"].tolist() == [4]  # A4 A5 A10 A14


def test_filters_refuse_a_reversed_range_and_an_unknown_zone():
    with pytest.raises(ValueError, match="starts after"):
        s.ScheduleFilters(date(2026, 1, 9), date(2026, 1, 5), NY)
    with pytest.raises(ConfigurationError):
        s.ScheduleFilters(date(2026, 1, 5), date(2026, 1, 9), "Mars/Olympus_Mons")
