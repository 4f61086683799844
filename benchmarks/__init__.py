"""Benchmarks of the dashboard (issue 7): ``python -m benchmarks [--quick] [--json PATH] [--only NAME...]``.

Benchmarks measure and print; they are not tests and assert no wall-clock limits (a missed
target shows as "NO" in the table). ``REGISTRY`` lists every planned item in report order. A
built item names its module, which exposes ``run(ctx: harness.RunContext) -> list[Record]``;
an item whose ``module`` is None is listed as "not yet built". To add one, write the module and
fill in ``module`` here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    """One benchmark item: its ``--only`` name, what it measures, and its module if built."""

    name: str
    summary: str
    module: str | None = None


REGISTRY: tuple[Benchmark, ...] = (
    Benchmark(
        "paging",
        "all ~50k line items through our paging layer vs a bare session loop and a new "
        "connection per page; typed models; calls and hours at 500 calls/hour",
        "benchmarks.paging",
    ),
    Benchmark(
        "audit",
        "audit append throughput, and verifying a 1M-row chain, on SQLite and PostgreSQL",
        "benchmarks.audit",
    ),
    Benchmark(
        "cold_start",
        "streamlit run Home.py until GET /api/health answers 200",
        "benchmarks.cold_start",
    ),
    Benchmark("requests_per_view", "EHR calls each page view makes"),
    Benchmark("clinic_day", "a simulated clinic day of page views against the sandbox"),
    Benchmark("incremental_sync", "a since-based mirror sync after a day of changes"),
    Benchmark(
        "mirror_load",
        "100k line items from the encrypted mirror into a DataFrame vs a plain typed table",
        "benchmarks.mirror_load",
    ),
    Benchmark(
        "kpis_at_scale",
        "every Billing KPI and chart aggregate over 1M line items vs one groupby-sum",
        "benchmarks.kpis_at_scale",
    ),
    Benchmark("page_script_time", "Streamlit page script run time per page"),
)


def by_name(name: str) -> Benchmark:
    """The registered benchmark called ``name`` (KeyError naming the choices otherwise)."""
    for item in REGISTRY:
        if item.name == name:
            return item
    raise KeyError(f"no benchmark {name!r}; choose from {', '.join(b.name for b in REGISTRY)}")
