"""Field reads of ``ehr.drchrono.fields``: the fast money and DST-gap paths keep the full rules.

Money stays an exact ``Decimal`` (never rounded here: cents are rounded half-even only when a
mirror row is written, ``ehr.analytics.records.cents``), and a bad amount is None plus a
``BAD_MONEY`` data-quality count, exactly as ``quirks.parse_money`` decides.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from ehr.analytics.records import cents
from ehr.drchrono import quirks
from ehr.drchrono.fields import Record, in_dst_gap, plain_decimal, shifted_from
from ehr.errors import UpstreamDataError
from ehr.models import DataQuality, QualityIssue
from ehr.timeutil import parse_practice_datetime

NY = ZoneInfo("America/New_York")

AMOUNTS = [
    ("12.30", Decimal("12.30"), 1230),
    ("-12.30", Decimal("-12.30"), -1230),
    ("5", Decimal("5"), 500),
    ("0", Decimal("0"), 0),
    ("-0.00", Decimal("-0.00"), 0),
    ("7.1", Decimal("7.1"), 710),
    ("1.005", Decimal("1.005"), 100),  # kept exact; half-even to cents when stored
    ("1.015", Decimal("1.015"), 102),
    ("-2.675", Decimal("-2.675"), -268),
    ("123456789012.123456789", Decimal("123456789012.123456789"), 12345678901212),
    ("0.10", Decimal("0.10"), 10),
    ("00012.50", Decimal("12.50"), 1250),
    ("1,234.50", Decimal("1234.50"), 123450),  # grouped: the full parser's path
    (" 7.10 ", Decimal("7.10"), 710),
    ("+3.25", Decimal("3.25"), 325),
    (12, Decimal(12), 1200),
    (12.3, Decimal("12.3"), 1230),
    ("\u0661\u0662", Decimal(12), 1200),  # Arabic-Indic digits, accepted by parse_money too
]
BAD = ["NaN", "Infinity", "1e5", "12,34", "1,2345.00", "$5", "5.", ".5", "1_000", "- 5", "--5",
       "1" * 40, True, float("nan"), [1], {"a": 1}]  # fmt: skip


def _read(value: object) -> tuple[Decimal | None, DataQuality]:
    quality = DataQuality()
    record = Record({"id": 1, "price": value}, "line_item", NY, quality)
    return record.money("price"), quality


@pytest.mark.parametrize(("raw", "amount", "in_cents"), AMOUNTS)
def test_money_is_exact_and_matches_parse_money(raw: object, amount: Decimal, in_cents: int):
    got, quality = _read(raw)
    assert got == amount
    assert isinstance(got, Decimal)
    assert str(got) == str(quirks.parse_money(raw))  # same digits and exponent, not just value
    assert cents(got) == in_cents
    assert quality.total() == 0


@pytest.mark.parametrize("raw", BAD, ids=repr)
def test_bad_money_is_none_and_counted(raw: object) -> None:
    got, quality = _read(raw)
    assert got is None
    assert quality.counts[(QualityIssue.BAD_MONEY, "line_item.price")] == 1
    with pytest.raises(ValueError, match="money"):
        quirks.parse_money(raw)


@pytest.mark.parametrize("raw", [None, ""])
def test_no_amount_is_none_and_not_counted(raw: object) -> None:
    got, quality = _read(raw)
    assert got is None
    assert quality.total() == 0


def test_number_counts_bad_number() -> None:
    quality = DataQuality()
    record = Record({"quantity": "two", "units": "2.5"}, "line_item", NY, quality)
    assert record.number("quantity") is None
    assert record.number("units") == Decimal("2.5")
    assert quality.counts == {(QualityIssue.BAD_NUMBER, "line_item.quantity"): 1}


def test_plain_decimal_only_takes_plain_text() -> None:
    assert plain_decimal("-12.30") == Decimal("-12.30")
    for other in ("1,234.50", " 7.10 ", "+3", "1e5", "NaN", "\u0661", "5.", ".5", "1" * 33):
        assert plain_decimal(other) is None
    assert plain_decimal("12.30") is plain_decimal("12.30")  # cached: one shared instance


def test_texts_keep_the_rules() -> None:
    quality = DataQuality()
    record = Record(
        {"a": ["A", "B"], "b": [], "c": ["A", "", 3], "d": "A", "e": [["A"]]}, "x", NY, quality
    )
    assert record.texts("a") == ("A", "B")
    assert record.texts("b") == ()
    assert record.texts("c") == ("A", "3")
    assert record.texts("missing") == ()
    for bad in ("d", "e"):
        with pytest.raises(UpstreamDataError) as caught:
            record.texts(bad)
        assert caught.value.details == {"field": f"x.{bad}", "problem": "expected a list of text"}


def test_shifted_from_agrees_with_in_dst_gap_around_both_transitions() -> None:
    # Every quarter hour across the spring-forward gap and the fall-back overlap of 2024.
    for start in (datetime(2024, 3, 10, 0, 0), datetime(2024, 11, 3, 0, 0)):
        for step in range(4 * 5):
            wall = start + timedelta(minutes=15 * step)
            for text in (wall.isoformat(), wall.isoformat() + "Z", f" {wall.isoformat()} "):
                parsed = parse_practice_datetime(text, NY)
                assert parsed is not None
                assert shifted_from(text, parsed) == in_dst_gap(text, NY), text
    assert in_dst_gap("2024-03-10T02:30:00", NY)
    assert not in_dst_gap("2024-11-03T01:30:00", NY)


def test_a_gap_time_is_shifted_and_counted() -> None:
    quality = DataQuality()
    record = Record({"at": "2024-03-10T02:30:00", "ok": "2024-03-10T03:30:00"}, "x", NY, quality)
    assert record.timestamp("at") == datetime(2024, 3, 10, 3, 30, tzinfo=NY)
    assert record.timestamp("ok") == datetime(2024, 3, 10, 3, 30, tzinfo=NY)
    assert quality.counts == {(QualityIssue.SHIFTED_LOCAL_TIME, "x.at"): 1}
