"""The sandbox's synthetic clinic: a deterministic, realistic DrChrono practice.

``generate_clinic(ClinicConfig(...))`` returns every resource the sandbox serves as DrChrono JSON
records (field names and value shapes as the API returns them): dates ``"YYYY-MM-DD"``, naive
practice-local timestamps ``"YYYY-MM-DDTHH:MM:SS"``, money as 2-decimal strings, integer ids
except ``Appointment.id`` (a numeric string). References to an appointment from other resources
(``line_items.appointment``, ``problems.appointment``, ...) are integers, as the OAS types the
writable ones; read-only ``patient``/``doctor`` references are integers too (the OAS types many
read-only fields as strings, an artifact of its generator).

The same config, including a fixed ``today``, always yields identical output: every stage draws
from its own ``random.Random`` seeded from ``config.seed`` and Faker is seeded per instance.

Stages (each module documents its own rules): practice (doctors, offices, profiles, users, payer
directory) -> patients -> schedule (appointments, statuses, transitions) -> chart (problems,
medications, allergies, vitals, notes) -> labs and vaccines -> billing (line items, ERAs, patient
payments) -> eligibility checks. Money identities are listed in ``clinic_billing``.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ehr.sandbox.clinic_billing import build_billing
from ehr.sandbox.clinic_clinical import build_chart
from ehr.sandbox.clinic_context import GenContext, Record, add_months
from ehr.sandbox.clinic_eligibility import build_eligibility
from ehr.sandbox.clinic_labs import build_labs_and_vaccines
from ehr.sandbox.clinic_patients import build_patients
from ehr.sandbox.clinic_practice import (
    PRACTICE_GROUP_ID,
    TIMEZONE,
    build_practice,
    practice_size,
)
from ehr.sandbox.clinic_schedule import build_schedule

# Every resource the generator fills, by DrChrono URL name.
RESOURCE_NAMES: tuple[str, ...] = (
    "users",
    "doctors",
    "offices",
    "appointment_profiles",
    "patients",
    "appointments",
    "problems",
    "medications",
    "allergies",
    "clinical_notes",
    "lab_orders",
    "lab_tests",
    "lab_results",
    "patient_vaccine_records",
    "line_items",
    "transactions",
    "patient_payments",
    "insurances",
    "eligibility_checks",
    "billing_profiles",
)

# Fields DrChrono returns only with ``verbose=true`` (OAS ``x-verbose-required``).
VERBOSE_ONLY_FIELDS: dict[str, frozenset[str]] = {
    "offices": frozenset({"online_timeslots"}),
    "patients": frozenset(
        {
            "auto_accident_insurance",
            "custom_demographics",
            "patient_flags",
            "patient_flags_attached",
            "primary_insurance",
            "referring_doctor",
            "secondary_insurance",
            "tertiary_insurance",
            "workers_comp_insurance",
        }
    ),
    "appointments": frozenset(
        {
            "reminders",
            "vitals",
            "custom_fields",
            "custom_vitals",
            "clinical_note",
            "extended_updated_at",
            "status_transitions",
        }
    ),
    "allergies": frozenset({"description"}),
    "line_items": frozenset({"description"}),
}

# Visits per patient per year of history in the default clinic (primary care runs ~3-4).
DEFAULT_VISITS_PER_PATIENT_YEAR = 4.0
# Demand one doctor absorbs per clinic day; a day holds ~20 visits, so this leaves slack.
MAX_VISITS_PER_DOCTOR_DAY = 13.0
# Clinic days per doctor per calendar day: 4 weekdays, a share of Saturdays, minus holidays.
DOCTOR_DAYS_PER_DAY = 4.2 / 7 * 0.975
# Line items produced per unit of scheduled demand (patients x rate x years), measured on the
# default clinic: completed share (~83%) x lines per visit (~1.6) x demand actually booked.
LINE_ITEMS_PER_DEMAND_VISIT = 1.2


@dataclass(frozen=True)
class ClinicConfig:
    """What clinic to generate; equal configs (with a fixed ``today``) give equal clinics."""

    seed: int = 7
    patients: int = 1500
    months_back: int = 16  # history before `today`
    months_ahead: int = 2  # future appointments
    doctors: int = 3
    offices: int = 2
    today: dt.date | None = None  # None -> date.today(); fix it for byte-identical output
    line_items_target: int | None = None  # scale knob: about this many line items


@dataclass
class Clinic:
    """A generated clinic: ``tables[resource][id] -> record`` plus the demo login's profile."""

    practice_group: int
    timezone: str  # all timestamps are naive practice-local times in this zone
    user: dict[str, Any]
    tables: dict[str, dict[int | str, dict[str, Any]]]


def _demand(config: ClinicConfig, ctx: GenContext) -> tuple[float, int, int]:
    """Visit rate and practice size needed for the requested volume."""
    past_days = max(1, (ctx.today - ctx.start).days)
    patient_years = max(1, config.patients) * past_days / 365.25
    rate = DEFAULT_VISITS_PER_PATIENT_YEAR
    if config.line_items_target:
        rate = config.line_items_target / LINE_ITEMS_PER_DEMAND_VISIT / patient_years
    doctor_days = past_days * DOCTOR_DAYS_PER_DAY
    needed = math.ceil(rate * patient_years / (doctor_days * MAX_VISITS_PER_DOCTOR_DAY))
    doctors, offices = practice_size(max(config.doctors, needed), config.offices)
    return rate, doctors, offices


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while generating.

    The generator allocates hundreds of thousands of acyclic dicts and lists that all stay
    alive; every automatic collection would rescan them for nothing (~25% of the run time,
    and much more at benchmark scale). The previous state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def generate_clinic(config: ClinicConfig = ClinicConfig()) -> Clinic:  # noqa: B008
    """Generate the whole synthetic clinic described by ``config``.

    Returns a ``Clinic`` whose ``tables`` map each name in ``RESOURCE_NAMES`` to ``{id: record}``
    (appointments keyed by their string id, insurances by payer id). Deterministic for a given
    config when ``today`` is set. When ``line_items_target`` is set, the visit rate (and, when
    needed, the number of doctors and offices) is raised so about that many line items result.
    """
    with _no_cyclic_gc():
        return _generate(config)


def _generate(config: ClinicConfig) -> Clinic:
    today = config.today or dt.date.today()
    ctx = GenContext(
        seed=config.seed,
        today=today,
        start=add_months(today, -max(0, config.months_back)),
        end=add_months(today, max(0, config.months_ahead)),
    )
    rate, n_doctors, n_offices = _demand(config, ctx)
    practice = build_practice(ctx, n_doctors, n_offices)
    traits, patients = build_patients(ctx, practice.doctors, max(1, config.patients))
    appointments, completed = build_schedule(ctx, practice, traits, rate)
    staff = next(u["id"] for u in practice.tables["users"].values() if u["username"] == "frontdesk")
    chart = build_chart(ctx, traits, completed)
    labs = build_labs_and_vaccines(ctx, completed, staff)
    billing = build_billing(ctx, completed, staff)
    eligibility = build_eligibility(ctx, appointments, {p.id: p for p in traits})
    tables: dict[str, dict[int | str, Record]] = {
        **practice.tables,
        "patients": patients,
        "appointments": appointments,
        **chart,
        **labs,
        **billing,
        "eligibility_checks": eligibility,
    }
    return Clinic(
        practice_group=PRACTICE_GROUP_ID,
        timezone=TIMEZONE,
        user=practice.demo_user,
        tables={name: tables[name] for name in RESOURCE_NAMES},
    )
