"""Chart factories: bands where the ranges say, one point per reading, honest empty charts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from ehr.models_clinical import LabResult, Vital
from ui import charts
from ui.charts import LOINC

TZ = ZoneInfo("America/New_York")


def reading(key: str, value: str | None, day: int, unit: str = "", hour: int = 9) -> Vital:
    taken = datetime(2026, 3, day, hour, 30, tzinfo=TZ)
    return Vital(1, LOINC[key], key, None if value is None else Decimal(value), unit, taken)


def bands(fig) -> list[tuple[float, float]]:
    return sorted((s.y0, s.y1) for s in fig.layout.shapes if s.type == "rect")


def points(fig, name: str) -> list[float]:
    trace = next(t for t in fig.data if t.name == name)
    return list(trace.y)


VISITS = [
    # three visits, given out of order; one systolic reading has no value and is skipped
    *(reading(k, v, 12, "mm[Hg]") for k, v in (("systolic", "132"), ("diastolic", "84"))),
    *(reading(k, v, 2, "mm[Hg]") for k, v in (("systolic", "141"), ("diastolic", "91"))),
    reading("systolic", None, 20, "mm[Hg]"),
    reading("diastolic", "79", 20, "mm[Hg]"),
    reading("heart_rate", "72", 2, "/min"),
    reading("heart_rate", "64", 12, "/min"),
    reading("weight", "181.0", 2, "lb"),
    reading("weight", "179.4", 12, "lb"),
    reading("bmi", "27.1", 2, "kg/m2"),
    reading("bmi", "26.8", 12, "kg/m2"),
]


def test_blood_pressure_has_both_bands_and_a_point_per_reading_oldest_first():
    fig = charts.blood_pressure_chart(VISITS, tz=TZ)
    assert bands(fig) == [(60, 80), (90, 120)]
    assert points(fig, "Systolic") == [141.0, 132.0]
    assert points(fig, "Diastolic") == [91.0, 84.0, 79.0]
    trace = next(t for t in fig.data if t.name == "Diastolic")
    assert [pd.Timestamp(x).day for x in trace.x] == [2, 12, 20]


def test_times_are_drawn_as_practice_wall_clock():
    utc = Vital(
        1,
        LOINC["heart_rate"],
        "hr",
        Decimal(70),
        "/min",
        datetime(2026, 3, 2, 14, 0, tzinfo=ZoneInfo("UTC")),
    )
    fig = charts.heart_rate_chart([utc], tz=TZ)
    (x,) = fig.data[0].x
    assert pd.Timestamp(x) == pd.Timestamp(
        "2026-03-02 09:00"
    )  # 14:00 UTC is 09:00 in New York in March


def test_heart_rate_and_weight_bmi_bands():
    heart = charts.heart_rate_chart(VISITS, tz=TZ)
    assert bands(heart) == [(60, 100)]
    assert points(heart, "Heart rate") == [72.0, 64.0]
    body = charts.weight_bmi_chart(VISITS, tz=TZ)
    assert bands(body) == [(18.5, 25)]
    (bmi_band,) = [s for s in body.layout.shapes if s.type == "rect"]
    assert bmi_band.yref.startswith("y2"), "the BMI band sits on the BMI panel, not on weight"
    assert points(body, "Weight") == [181.0, 179.4]
    assert points(body, "BMI") == [27.1, 26.8]
    assert body.layout.yaxis.title.text == "Weight (lb)"


@pytest.mark.parametrize(
    ("units", "expected_band", "expected_points"),
    [
        (("°F", "°F"), (97.0, 99.0), [98.6, 100.4]),
        (("°C", "Cel"), (36.1, 37.2), [37.0, 38.0]),
        # mixed scales are drawn in the latest reading's unit
        (("°C", "°F"), (97.0, 99.0), [98.6, 100.4]),
    ],
)
def test_temperature_band_follows_the_unit_of_the_readings(units, expected_band, expected_points):
    first = "37.0" if units[0] != "°F" else "98.6"
    second = "100.4" if units[1] == "°F" else "38.0"
    temps = [
        reading("temperature", first, 2, units[0]),
        reading("temperature", second, 12, units[1]),
    ]
    fig = charts.temperature_chart(temps, tz=TZ)
    assert bands(fig) == [expected_band]
    assert points(fig, "Temperature") == pytest.approx(expected_points)


def test_a_temperature_in_an_unknown_unit_gets_no_band_rather_than_a_wrong_one():
    fig = charts.temperature_chart([reading("temperature", "310", 2, "K")], tz=TZ)
    assert bands(fig) == []
    assert points(fig, "Temperature") == [310.0]


@pytest.mark.parametrize(
    "factory",
    [
        charts.blood_pressure_chart,
        charts.heart_rate_chart,
        charts.weight_bmi_chart,
        charts.temperature_chart,
    ],
)
def test_no_readings_gives_an_empty_chart_that_says_so(factory):
    fig = factory(
        [reading("heart_rate", None, 2)] if factory is not charts.heart_rate_chart else [], tz=TZ
    )
    assert not fig.data
    assert not bands(fig)
    assert fig.layout.annotations[0].text.startswith("No ")


def lab(
    result_id: int,
    order: int,
    value: str,
    flag: str = "N",
    *,
    test: str = "Glucose",
    day: date | None = None,
) -> LabResult:
    return LabResult(
        id=result_id,
        patient_id=1,
        test=test,
        value=value,
        unit="mg/dL",
        normal_range="70 99",
        abnormal_flag=flag,
        is_abnormal=flag != "N",
        numeric_value=Decimal(value),
        order_id=order,
        performed_on=day,
    )


def test_a_lab_trend_uses_the_reported_range_and_marks_abnormal_points():
    results = [
        lab(3, 30, "157", "H"),
        lab(1, 10, "92"),
        lab(2, 20, "104", "H"),
        lab(9, 40, "5.1", test="A1c"),
    ]
    fig = charts.lab_trend_chart(results, "Glucose")
    assert bands(fig) == [(70, 99)]
    (trace,) = fig.data
    assert list(trace.y) == [92.0, 104.0, 157.0]  # by lab order, oldest first
    assert list(trace.x) == [1, 2, 3]
    assert fig.layout.xaxis.title.text.startswith("Result (by lab order")
    normal, high = trace.marker.color[0], trace.marker.color[1]
    assert normal != high
    assert trace.marker.color[2] == high


def test_a_dated_lab_trend_is_drawn_against_the_dates():
    results = [lab(1, 10, "92", day=date(2026, 5, 1)), lab(2, 20, "104", "H", day=date(2026, 1, 1))]
    fig = charts.lab_trend_chart(results, "Glucose")
    (trace,) = fig.data
    assert [pd.Timestamp(x).month for x in trace.x] == [1, 5]
    assert list(trace.y) == [104.0, 92.0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("70 99", (70.0, 99.0)),
        ("4 5.6", (4.0, 5.6)),
        ("3.5-5.0", (3.5, 5.0)),
        ("3.5 – 5.0", (3.5, 5.0)),
        ("0.6 to 1.3", (0.6, 1.3)),
        ("<5.7", None),
        ("negative", None),
        ("9 1", None),
        ("", None),
        (None, None),
    ],
)
def test_normal_range_text_is_parsed_or_left_alone(text, expected):
    assert charts.parse_normal_range(text) == expected
