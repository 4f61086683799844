"""The benchmark harness's arithmetic and record shape (the benchmarks themselves are not tests)."""

from __future__ import annotations

import json

import pytest

from benchmarks import REGISTRY, by_name
from benchmarks.harness import (
    RECORD_KEYS,
    exact_record,
    format_table,
    interleaved,
    make_record,
    median,
    paired_ratio,
)


def test_median_of_odd_and_even_counts():
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        median([])


def test_paired_ratio_is_the_median_of_per_round_ratios():
    # Rounds 2x, 3x and 10x: the median is 3x, not the ratio of medians (4 / 1.5).
    assert paired_ratio([2.0, 6.0, 10.0], [1.0, 2.0, 1.0]) == 3.0
    with pytest.raises(ValueError, match="equally many"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        paired_ratio([1.0], [0.0])


def test_record_with_baseline_bounds_the_ratio():
    met = make_record("x", [1.1, 1.2, 1.0], "s", baseline=("base", [1.0, 1.0, 1.0]), target=1.15)
    assert met.value == 1.1
    assert (met.baseline_name, met.baseline_value) == ("base", 1.0)
    assert met.ratio == pytest.approx(1.1)
    assert met.met is True
    assert (met.runs, met.min, met.max) == (3, 1.0, 1.2)
    missed = make_record("x", [1.2, 1.3, 1.2], "s", baseline=("base", [1.0] * 3), target=1.15)
    assert missed.met is False


def test_record_without_baseline_bounds_the_value_and_no_target_means_unjudged():
    assert make_record("x", [3.0, 1.0, 2.0], "s", target=2.0).met is True
    assert make_record("x", [3.0, 2.5, 2.1], "s", target=2.0).met is False
    plain = make_record("x", [3.0, 1.0, 2.0], "s")
    assert (plain.met, plain.target, plain.ratio, plain.baseline_name) == (None, None, None, None)


def test_json_record_has_exactly_the_documented_keys():
    record = make_record("paging.transport", [2.0, 2.2], "s", baseline=("bare", [2.0, 2.0]))
    as_json = json.loads(json.dumps(record.to_json()))
    assert list(as_json) == [
        "name", "value", "unit", "baseline_name", "baseline_value", "ratio",
        "target", "met", "runs", "min", "max",
    ]  # fmt: skip
    assert list(as_json) == list(RECORD_KEYS)
    assert as_json["ratio"] == pytest.approx(1.05)
    assert exact_record("calls", 41, "calls").to_json()["runs"] == 1


def test_interleaved_rotates_the_order_and_drops_warmup_rounds():
    calls: list[str] = []
    times = interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=1
    )
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert {name: len(values) for name, values in times.items()} == {"a": 3, "b": 3}
    assert all(value >= 0 for values in times.values() for value in values)


def test_table_shows_ratio_target_verdict_and_numbered_notes():
    record = make_record(
        "paging.transport", [2.0], "s", baseline=("bare", [1.0]), target=1.15, note="why"
    )
    table = format_table([record])
    assert "paging.transport [1]" in table
    assert "2.000x" in table
    assert "<= 1.15x" in table
    assert " NO" in table
    assert table.splitlines()[-1] == "[1] why"


def test_registry_names_are_unique_and_every_item_is_built():
    names = [item.name for item in REGISTRY]
    assert len(names) == len(set(names))
    assert by_name("paging").module == "benchmarks.paging"
    assert all(item.module.startswith("benchmarks.") for item in REGISTRY)
    with pytest.raises(KeyError, match="choose from"):
        by_name("nope")
