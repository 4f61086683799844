"""Page script time: how long a warm rerun of a page script takes, per page and clinic size.

Each page is opened in its own ``AppTest`` session, signed in (``benchmarks.demo_app``), and run
once cold (upstream calls, the mirror decrypted); the timed runs are the reruns after it, the
ones a user waits for on every click, with the session's caches warm. The three sessions are
rerun in interleaved rounds:

- ``patients``: the Patients page showing the results of a search by last name;
- ``appointments``: the day view of the next weekday (all doctors);
- ``billing``: the Billing page, its default 12 months.

Two clinic sizes: the default demo clinic (1,500 patients, the mirror synced from the sandbox)
and a large one. The issue's large figure is 100,000 patients; here the large clinic has
``LARGE_PATIENTS``: generating 100,000 in the in-process sandbox takes ~95 s and ~8 GB, and
syncing its mirror through the API (~25,000 appointment pages of 20) would take hours, so the
large clinic's mirror is filled directly with synthetic rows of the same format
(``benchmarks.synthetic``, ~6.4 line items per patient as the demo clinic has) through
``storage.mirror.commit_page``. Target (issue 7): at most 200 ms per rerun.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

from benchmarks.demo_app import DemoApp, OpenedPage, check
from benchmarks.harness import Record, RunContext, interleaved
from benchmarks.harness import make_record as rec
from benchmarks.synthetic import appointment_rows, line_item_rows
from storage import mirror
from ui import wiring

DEFAULT_PATIENTS: Final = 1500
QUICK_PATIENTS: Final = 60
LARGE_PATIENTS: Final = 20_000
# Line items per patient in the generated demo clinic (9,669 for 1,500 patients).
LINE_ITEMS_PER_PATIENT: Final = 6.4
MIRROR_BATCH_ROWS: Final = 1_000
TARGET_S: Final = 0.2
SEARCH_BUTTON: Final = "FormSubmitter:patients.search-Search"
SATURDAY: Final = 5


def _next_weekday(today: date) -> date:
    day = today + timedelta(days=1)
    while day.weekday() >= SATURDAY:
        day += timedelta(days=1)
    return day


def _fill_mirror(patients: int) -> int:
    """Synthetic line items and their visits straight into the app's mirror; returns lines."""
    engine, cipher = wiring.app_engine(), wiring.cipher()
    lines = line_item_rows(round(patients * LINE_ITEMS_PER_PATIENT))
    now = datetime.now(UTC)
    for kind, rows in (("line_item", lines), ("appointment", appointment_rows(lines))):
        state = mirror.load_state(engine, cipher, kind)
        for start in range(0, len(rows), MIRROR_BATCH_ROWS):
            batch = rows[start : start + MIRROR_BATCH_ROWS]
            state = mirror.commit_page(engine, cipher, state, rows=batch, now=now)
    return len(lines)


def _open(app: DemoApp) -> dict[str, OpenedPage]:
    store = app.sandbox.store
    named = (r for _k, r, _s in store.scan("patients") if r.get("last_name"))
    last_name = str(min(named, key=lambda r: int(r["id"]))["last_name"])
    patients = app.open_page("front_desk", "patients")
    patients.at.text_input(key="patients.search.name").input(last_name)
    check(patients.at.button(key=SEARCH_BUTTON).click().run())
    today = datetime.now(wiring.app_settings().practice_timezone).date()
    day = {"view": "day", "day": _next_weekday(today).isoformat()}
    return {
        "patients": patients,
        "appointments": app.open_page("front_desk", "appointments", query=day),
        "billing": app.open_page("billing", "billing"),
    }


def _measure(ctx: RunContext, patients: int, *, synthetic_mirror: bool) -> dict[str, list[float]]:
    ctx.progress(f"page_script_time: demo app with {patients:,} patients")
    with DemoApp(patients) as app:
        if synthetic_mirror:
            lines = _fill_mirror(patients)
            ctx.progress(f"page_script_time: {lines:,} synthetic line items in the mirror")
        else:
            app.sync_mirror()
        opened = _open(app)
        ctx.progress(f"page_script_time: {ctx.runs} interleaved rounds of 3 reruns")

        def rerun(page: OpenedPage) -> object:
            return check(page.at.run())

        variants = {name: (lambda page=page: rerun(page)) for name, page in opened.items()}
        return interleaved(variants, ctx.runs, warmup=0)


def run(ctx: RunContext) -> list[Record]:
    """Warm reruns of each page at the default (quick: small) and the large clinic."""
    sizes = [(QUICK_PATIENTS if ctx.quick else DEFAULT_PATIENTS, False)]
    if not ctx.quick:
        sizes.append((LARGE_PATIENTS, True))
    else:
        ctx.notes.append(
            f"page_script_time: --quick measures a {QUICK_PATIENTS}-patient clinic only"
        )
    records: list[Record] = []
    for patients, synthetic in sizes:
        times = _measure(ctx, patients, synthetic_mirror=synthetic)
        for number, (page, seconds) in enumerate(times.items()):
            note = ""
            if number == 0:
                mirror_text = "synthetic rows" if synthetic else "synced from the sandbox"
                note = f"{patients:,} patients, mirror {mirror_text}; warm reruns (AppTest)"
            records.append(
                rec(
                    f"page_script_time.{page}.{patients}",
                    seconds,
                    "s",
                    target=TARGET_S,
                    note=note,
                )
            )
    return records
