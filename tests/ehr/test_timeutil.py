"""Practice-timezone parsing, with the server's zone set to Tokyo to prove it is never used."""

import time
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ehr.errors import ConfigurationError
from ehr.timeutil import (
    classify_wall_time,
    format_practice,
    load_practice_zone,
    parse_date,
    parse_practice_datetime,
    to_utc,
)

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def server_in_tokyo(monkeypatch):
    """Run every test with the process's local zone at UTC+9 (no DST), then restore it."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    assert datetime.now().astimezone().utcoffset() == timedelta(hours=9)
    yield
    monkeypatch.undo()
    time.tzset()


def test_naive_timestamps_are_practice_local_not_server_local():
    parsed = parse_practice_datetime("2026-03-02T09:00:00", NEW_YORK)
    assert parsed is not None
    assert parsed.tzinfo is NEW_YORK
    assert parsed.utcoffset() == timedelta(hours=-5)
    assert to_utc(parsed) == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def test_short_and_fractional_forms_are_accepted():
    assert parse_practice_datetime("2020-12-18T14:30", NEW_YORK) == datetime(
        2020, 12, 18, 14, 30, tzinfo=NEW_YORK
    )
    assert parse_practice_datetime(" 2026-03-02T09:00:00.250 ", NEW_YORK) == datetime(
        2026, 3, 2, 9, 0, 0, 250000, tzinfo=NEW_YORK
    )
    assert parse_practice_datetime("2026-03-02", NEW_YORK) == datetime(2026, 3, 2, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-03-02T14:00:00Z", datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
        ("2026-03-02T23:00:00+09:00", datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
        ("2026-03-02T09:00:00-05:00", datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
    ],
)
def test_z_and_offsets_keep_their_instant(text, utc):
    parsed = parse_practice_datetime(text, NEW_YORK)
    assert parsed is not None
    assert to_utc(parsed) == utc
    assert parsed.tzinfo is NEW_YORK


@pytest.mark.parametrize(
    "value", ["2026-13-01", "2026-13-01T09:00:00", "", "   ", None, "soon", 1700000000, "9" * 80]
)
def test_invalid_values_give_none(value):
    assert parse_practice_datetime(value, NEW_YORK) is None


def test_spring_forward_gap_moves_later_by_the_gap():
    parsed = parse_practice_datetime("2026-03-08T02:30:00", NEW_YORK)
    assert parsed is not None
    assert to_utc(parsed) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert (parsed.hour, parsed.minute, parsed.utcoffset()) == (3, 30, timedelta(hours=-4))
    assert classify_wall_time(datetime(2026, 3, 8, 2, 30), NEW_YORK) == "gap"


def test_fall_back_overlap_is_the_first_occurrence():
    parsed = parse_practice_datetime("2026-11-01T01:30:00", NEW_YORK)
    assert parsed is not None
    assert to_utc(parsed) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(hours=-4)
    assert classify_wall_time(datetime(2026, 11, 1, 1, 30), NEW_YORK) == "ambiguous"
    assert classify_wall_time(datetime(2026, 11, 1, 3, 30), NEW_YORK) == "normal"


def test_format_practice_writes_naive_local_text():
    instant = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    assert format_practice(instant, NEW_YORK) == "2026-03-02T09:30:00"
    tokyo = instant.astimezone(ZoneInfo("Asia/Tokyo"))
    assert format_practice(tokyo, NEW_YORK) == "2026-03-02T09:30:00"
    round_trip = parse_practice_datetime(format_practice(instant, NEW_YORK), NEW_YORK)
    assert round_trip == instant


def test_naive_datetimes_are_refused_where_the_zone_matters():
    with pytest.raises(ValueError, match="naive"):
        to_utc(datetime(2026, 3, 2, 9, 0))
    with pytest.raises(ValueError, match="naive"):
        format_practice(datetime(2026, 3, 2, 9, 0), NEW_YORK)
    assert to_utc(datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))).hour == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1931-03-17", date(1931, 3, 17)),
        ("2026-03-08T23:30:00", date(2026, 3, 8)),
        ("2026-02-30", None),
        ("", None),
        (None, None),
        ("17/03/1931", None),
    ],
)
def test_parse_date(text, expected):
    assert parse_date(text) == expected


def test_practice_zone_must_be_a_real_zone():
    assert load_practice_zone("America/New_York") == NEW_YORK
    for bad in ("", "Mars/Olympus_Mons", "../etc/passwd"):
        with pytest.raises(ConfigurationError) as caught:
            load_practice_zone(bad)
        assert caught.value.details == {"setting": "practice_timezone"}
