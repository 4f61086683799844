"""``python -m benchmarks``: run the registered benchmarks, print a table, optionally write JSON.

``--quick`` uses smaller data and fewer runs (meant to finish in under 3 minutes on a 2-core
machine with nothing else running); ``--json PATH`` also writes the records as a JSON list;
``--only NAME...`` runs just those items. The exit status is 1 when a benchmark failed to run,
never because a target was missed. The load average is printed with the total time, because
every figure depends on what else the machine was doing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from benchmarks import REGISTRY, Benchmark, by_name
from benchmarks.harness import (
    DEFAULT_RUNS,
    QUICK_RUNS,
    Record,
    RunContext,
    format_table,
)

Runner = Callable[[RunContext], list[Record]]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write records here")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", choices=[b.name for b in REGISTRY], help="run these"
    )
    return parser.parse_args(argv)


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def _load(item: Benchmark) -> Runner:
    return cast(Runner, importlib.import_module(item.module).run)


def _load_average() -> str:
    try:
        one, five, _fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; returns the exit status."""
    args = parse_args(argv)
    chosen = [by_name(n) for n in args.only] if args.only else list(REGISTRY)
    ctx = RunContext(
        quick=args.quick, runs=QUICK_RUNS if args.quick else DEFAULT_RUNS, progress=_progress
    )
    started = time.perf_counter()
    load_before = _load_average()
    records: list[Record] = []
    failed: list[str] = []
    for item in chosen:
        item_started = time.perf_counter()
        try:
            records.extend(_load(item)(ctx))
        except Exception:  # report it, run the rest: one broken item must not hide the others
            traceback.print_exc()
            failed.append(item.name)
        _progress(f"{item.name} took {time.perf_counter() - item_started:.0f} s")
    total = time.perf_counter() - started
    mode = "quick" if args.quick else "full"
    print(f"\nBenchmarks ({mode}; each figure the median of its runs, min and max beside it)\n")
    print(format_table(records) if records else "(no figures)")
    for note in ctx.notes:
        print(f"note: {note}")
    if failed:
        print(f"\nFAILED to run: {', '.join(failed)} (traceback above)")
    print(f"\ntotal run time {total:.0f} s; load average {load_before} before, ", end="")
    print(f"{_load_average()} after")
    if args.json is not None:
        args.json.write_text(json.dumps([r.to_json() for r in records], indent=2) + "\n")
        print(f"wrote {len(records)} records to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
