"""Requests per view: EHR calls each page view makes, at two clinic sizes.

The real pages run in ``streamlit.testing.v1.AppTest``, signed in, against the embedded sandbox
(``benchmarks.demo_app``); the calls are counted from the sandbox's own request log, so nothing
the client does goes uncounted. Each view is a new browser session (an empty per-session cache)
that lands on Home first, as after sign-in; only the page's own runs are counted:

- ``patient_search``: the Patients page, then a search by a patient's last name;
- ``patient_detail``: the Patients page opened on ``?patient=<id>``;
- ``schedule.doctor<N>``: the Appointments page's day view of today for each of three doctors;
- ``clinical_chart``: the Clinical page opened on a patient's chart (summary tab), as clinician;
- ``billing``: the Billing page (12 months) with the mirror already synced, as billing.

The same views run against a small and a ten-times larger clinic. A page view should cost a
fixed number of calls whatever the size of the practice (the rows shown are one page at most),
so the target is a ratio of 1 (equal counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

from benchmarks.demo_app import PAGES, ROOT, DemoApp, check
from benchmarks.harness import Record, RunContext, exact_record
from benchmarks.harness import make_record as rec

SMALL_PATIENTS: Final = 60
LARGE_PATIENTS: Final = 600
# Equal counts at both sizes: the number of calls must not grow with the practice.
TARGET_RATIO: Final = 1.0
SCHEDULE_DOCTORS: Final = 3
SEARCH_BUTTON: Final = "FormSubmitter:patients.search-Search"

View = Callable[[DemoApp], int]


@dataclass(frozen=True)
class _Subject:
    """Who the views are about: a patient with a name and the first doctors."""

    patient_id: int
    last_name: str
    doctor_ids: tuple[int, ...]


def _subject(app: DemoApp) -> _Subject:
    store = app.sandbox.store
    patients = sorted(
        (r for _key, r, _stamp in store.scan("patients") if r.get("last_name")),
        key=lambda r: int(r["id"]),
    )
    doctors = sorted(int(key) for key, _r, _s in store.scan("doctors"))
    first = patients[0]
    return _Subject(int(first["id"]), str(first["last_name"]), tuple(doctors[:SCHEDULE_DOCTORS]))


def _patient_search(app: DemoApp, subject: _Subject) -> int:
    opened = app.open_page("front_desk", "patients")
    before = app.requests_made()
    opened.at.text_input(key="patients.search.name").input(subject.last_name)
    check(opened.at.button(key=SEARCH_BUTTON).click().run())
    return opened.requests + app.requests_made() - before


def _schedule(app: DemoApp, query: dict[str, str]) -> int:
    return app.open_page("front_desk", "appointments", query=query).requests


def _views(app: DemoApp, subject: _Subject) -> dict[str, Callable[[], int]]:
    patient = {"patient": str(subject.patient_id)}
    views: dict[str, Callable[[], int]] = {
        "patient_search": lambda: _patient_search(app, subject),
        "patient_detail": lambda: app.open_page("front_desk", "patients", query=patient).requests,
    }
    for number, doctor_id in enumerate(subject.doctor_ids, start=1):
        day = {"view": "day", "doctor": str(doctor_id)}
        views[f"schedule.doctor{number}"] = partial(_schedule, app, day)
    views["clinical_chart"] = lambda: app.open_page("clinician", "clinical", query=patient).requests
    if _billing_built():
        views["billing"] = lambda: app.open_page("billing", "billing").requests
    return views


def _billing_built() -> bool:
    return (ROOT / PAGES["billing"]).exists()


def _counts(ctx: RunContext, patients: int) -> tuple[dict[str, int], int]:
    ctx.progress(f"requests_per_view: demo app with {patients} patients")
    with DemoApp(patients) as app:
        subject = _subject(app)
        synced = app.sync_mirror().requests if _billing_built() else 0
        return {name: view() for name, view in _views(app, subject).items()}, synced


def run(ctx: RunContext) -> list[Record]:
    """Every view at both clinic sizes; one record per view (large vs small)."""
    small, small_sync = _counts(ctx, SMALL_PATIENTS)
    large, large_sync = _counts(ctx, LARGE_PATIENTS)
    if not _billing_built():
        ctx.notes.append("requests_per_view: pages/billing.py does not exist; Billing not built")
    records: list[Record] = []
    for name in small:
        note = ""
        if not records:
            note = (
                f"calls counted in the sandbox's request log; {SMALL_PATIENTS} vs "
                f"{LARGE_PATIENTS} patients; each view a new session after Home"
            )
        if name == "billing":
            note = (
                f"mirror synced first ({small_sync} and {large_sync} calls, not counted here); "
                "the page's calls are the provider and office names"
            )
        records.append(
            rec(
                f"requests_per_view.{name}",
                [large[name]],
                "calls",
                baseline=(f"at {SMALL_PATIENTS} patients", [max(small[name], 1)]),
                target=TARGET_RATIO,
                note=note,
            )
        )
    records.append(
        exact_record(
            "requests_per_view.all_views",
            sum(large.values()),
            "calls",
            note=f"{sum(small.values())} calls at {SMALL_PATIENTS} patients",
        )
    )
    return records
