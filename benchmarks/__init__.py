"""Benchmarks of the dashboard (issue 7): ``python -m benchmarks [--quick] [--json PATH] [--only NAME...]``.

Benchmarks measure and print; they are not tests and assert no wall-clock limits (a missed
target shows as "NO" in the table). ``REGISTRY`` lists every item in report order, each naming
its module, which exposes ``run(ctx: harness.RunContext) -> list[Record]``. To add one, write
the module and list it here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    """One benchmark item: its ``--only`` name, what it measures, and its module."""

    name: str
    summary: str
    module: str


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
    Benchmark(
        "requests_per_view",
        "EHR calls each page view makes, at 60 and 600 patients (target: equal)",
        "benchmarks.requests_per_view",
    ),
    Benchmark(
        "clinic_day",
        "a scripted clinic day through the services: EHR calls vs 500 calls/hour",
        "benchmarks.clinic_day",
    ),
    Benchmark(
        "incremental_sync",
        "a since-based mirror refresh after 1% of line items changed, vs the full sync",
        "benchmarks.incremental_sync",
    ),
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
    Benchmark(
        "page_script_time",
        "warm rerun time of the Patients, Appointments and Billing page scripts",
        "benchmarks.page_script_time",
    ),
)


def by_name(name: str) -> Benchmark:
    """The registered benchmark called ``name`` (KeyError naming the choices otherwise)."""
    for item in REGISTRY:
        if item.name == name:
            return item
    raise KeyError(f"no benchmark {name!r}; choose from {', '.join(b.name for b in REGISTRY)}")
