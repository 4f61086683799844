"""Timing and reporting for ``python -m benchmarks``: runs, medians, ratios, records, the table.

A figure is the median of several runs, reported with its min and max. A candidate and its
baseline are timed in the same rounds, interleaved (``interleaved``), and their ratio is the
median of the per-round ratios (``paired_ratio``): neighbours in time share the machine's load,
so the ratio holds on a noisy machine even when the absolute times drift. Every ``target`` is an
upper bound: on the ratio when the record has a baseline, else on the value.

Peak memory is the process's peak resident set during a run, read from Linux's ``VmHWM`` after
resetting it through ``/proc/self/clear_refs``. Unlike ``tracemalloc`` this costs nothing, so
the timed runs measure it too; it includes the interpreter and every loaded library (~100 MiB),
and it is what an operator sees. Where the peak cannot be reset it is not reported (None).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Rounds per figure by default, and with --quick (which must finish in minutes on 2 cores).
DEFAULT_RUNS = 5
QUICK_RUNS = 3
# Untimed rounds before the timed ones: connection pools, imports and OS caches warm up.
DEFAULT_WARMUP = 1
# Keys of one JSON record, in order (the machine-readable output's contract).
RECORD_KEYS = (
    "name",
    "value",
    "unit",
    "baseline_name",
    "baseline_value",
    "ratio",
    "target",
    "met",
    "runs",
    "min",
    "max",
)
# Significant digits shown in the printed table.
_SHOWN_DIGITS = 4
_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
# Writing "5" to clear_refs resets the peak resident set size (VmHWM) to the current one.
_RESET_PEAK_RSS = "5"
_KIB = 1024
_MIB = 1024 * 1024


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (ValueError when empty)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def paired_ratio(candidate: Sequence[float], baseline: Sequence[float]) -> float:
    """The median of ``candidate[i] / baseline[i]`` over rounds measured side by side."""
    if len(candidate) != len(baseline) or not candidate:
        raise ValueError("paired ratio needs equally many rounds, at least one")
    if any(b <= 0 for b in baseline):
        raise ValueError("baseline values must be positive")
    return median([c / b for c, b in zip(candidate, baseline, strict=True)])


def time_call(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` took (wall clock, ``time.perf_counter``)."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def interleaved(
    variants: Mapping[str, Callable[[], object]], runs: int, *, warmup: int = DEFAULT_WARMUP
) -> dict[str, list[float]]:
    """Seconds per run of each variant, all variants once per round, ``runs`` rounds.

    The order rotates each round, so no variant always runs first (after an idle spell) or
    right after the same neighbour. ``warmup`` rounds run first and are discarded.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(warmup + runs):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = time_call(variants[name])
            if round_number >= warmup:
                times[name].append(seconds)
    return times


@dataclass(frozen=True)
class Record:
    """One reported figure (see ``RECORD_KEYS``); ``note`` is printed, not written to JSON."""

    name: str
    value: float
    unit: str
    baseline_name: str | None
    baseline_value: float | None
    ratio: float | None
    target: float | None
    met: bool | None
    runs: int
    min: float
    max: float
    note: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object ``--json`` writes."""
        return {key: getattr(self, key) for key in RECORD_KEYS}


def make_record(
    name: str,
    values: Sequence[float],
    unit: str,
    *,
    baseline: tuple[str, Sequence[float]] | None = None,
    target: float | None = None,
    note: str = "",
) -> Record:
    """A record for ``values`` (one per run), optionally against a baseline measured alongside.

    With a baseline the ratio is ``paired_ratio`` and ``target`` bounds it; without one
    ``target`` bounds the median value. ``met`` is None when there is no target.
    """
    value = median(values)
    baseline_name: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    if baseline is not None:
        baseline_name = baseline[0]
        baseline_value = median(baseline[1])
        ratio = paired_ratio(values, baseline[1])
    met: bool | None = None
    if target is not None:
        met = (ratio if ratio is not None else value) <= target
    return Record(
        name=name,
        value=value,
        unit=unit,
        baseline_name=baseline_name,
        baseline_value=baseline_value,
        ratio=ratio,
        target=target,
        met=met,
        runs=len(values),
        min=min(values),
        max=max(values),
        note=note,
    )


def exact_record(name: str, value: float, unit: str, *, note: str = "") -> Record:
    """A record for a figure that is counted or computed, not timed (one run, no spread)."""
    return make_record(name, [value], unit, note=note)


@dataclass(frozen=True)
class RunContext:
    """What every benchmark module's ``run(ctx)`` gets: the mode, where to say progress, and
    ``notes`` for what the printed report must mention (a part skipped, and why)."""

    quick: bool
    runs: int
    progress: Callable[[str], None] = field(default=lambda _message: None)
    notes: list[str] = field(default_factory=list)


# --- peak memory -------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int | None:
    try:
        text = _PROC_STATUS.read_text()
    except OSError:
        return None
    found = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def peak_rss_supported() -> bool:
    """Whether this platform lets the peak resident set be reset (Linux ``clear_refs``)."""
    return _status_kib("VmHWM") is not None and _PROC_CLEAR_REFS.exists()


class PeakRss:
    """Context manager: ``peak_mib`` is the process's peak resident set inside the block.

    None when the platform cannot reset the peak (see ``peak_rss_supported``).
    """

    def __init__(self) -> None:
        self.peak_mib: float | None = None
        self._armed = False

    def __enter__(self) -> PeakRss:
        if peak_rss_supported():
            _PROC_CLEAR_REFS.write_text(_RESET_PEAK_RSS)
            self._armed = True
        return self

    def __exit__(self, *_exc: object) -> None:
        peak = _status_kib("VmHWM")
        if self._armed and peak is not None:
            self.peak_mib = peak * _KIB / _MIB


class WithPeakRss:
    """A callable running ``fn`` that appends each call's peak resident set (MiB) to ``peaks``.

    Pass it to ``interleaved`` in place of ``fn`` to get memory from the timed runs.
    """

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn
        self.peaks: list[float] = []

    def __call__(self) -> object:
        with PeakRss() as peak:
            result = self.fn()
        if peak.peak_mib is not None:
            self.peaks.append(peak.peak_mib)
        return result

    def timed(self, runs: int) -> list[float]:
        """The peaks of the last ``runs`` calls (the timed rounds after the warm-up)."""
        return self.peaks[-runs:] if runs else []


# --- the table ---------------------------------------------------------------------------------


def _shown(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 10**_SHOWN_DIGITS:
        return f"{value:,.0f}"
    return f"{value:.{_SHOWN_DIGITS}g}"


def _met(record: Record) -> str:
    if record.met is None:
        return "-"
    return "yes" if record.met else "NO"


def _target(record: Record) -> str:
    if record.target is None:
        return "-"
    return f"<= {_shown(record.target)}{'x' if record.ratio is not None else ''}"


def format_table(records: Sequence[Record]) -> str:
    """The records as an aligned plain-text table, one row each, notes numbered below it."""
    header: tuple[str, ...] = ("name", "value", "unit", "min", "max", "runs", "baseline")
    header += ("base value", "ratio", "target", "met")
    rows: list[tuple[str, ...]] = [header]
    notes: list[str] = []
    for record in records:
        name = record.name
        if record.note:
            notes.append(record.note)
            name = f"{name} [{len(notes)}]"
        rows.append(
            (
                name,
                _shown(record.value),
                record.unit,
                _shown(record.min),
                _shown(record.max),
                str(record.runs),
                record.baseline_name or "-",
                _shown(record.baseline_value),
                "-" if record.ratio is None else f"{record.ratio:.3f}x",
                _target(record),
                _met(record),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = {1, 3, 4, 5, 7, 8}
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(f"[{number}] {note}" for number, note in enumerate(notes, start=1))
    return "\n".join(lines)
