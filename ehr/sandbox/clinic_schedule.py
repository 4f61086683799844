"""Appointments: who is seen when, where, for what, and what became of each visit.

Day by day over the window, each working doctor gets a target number of visits (their panel's
demand, a weekday factor, and a booking curve that thins out the future). Visits are laid end to
end with random gaps inside the office's morning and afternoon blocks, so appointments never
overlap for a doctor (and, because each doctor owns one exam-room index per day, never overlap in
a room). New patients are seen first when their registration date comes due; established patients
are drawn by visit frequency. Past visits end Complete, No Show, Cancelled or Rescheduled; today's
are finished, in progress or upcoming relative to the clinic clock; future ones are booked or
confirmed. ``status_transitions`` record the check-in -> rooming -> completion times.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field

from ehr.sandbox import codes
from ehr.sandbox.clinic_context import GenContext, Record, pick, us_holidays
from ehr.sandbox.clinic_patients import PatientTraits
from ehr.sandbox.clinic_practice import DoctorPlan, Practice

# Past-visit outcome probabilities (no-show is scaled by each patient's propensity, mean ~1).
CANCEL_RATE = 0.08
NO_SHOW_RATE = 0.06
RESCHEDULE_RATE = 0.03
WALK_IN_RATE = 0.15  # share of sick visits that walk in
CONFIRM_AT_BOOKING = 0.2  # share confirmed right away (online booking, portal)
CONFIRM_RATE = 0.55  # share of the rest confirmed by the day-before reminder
# Monday is busiest, Friday lightest; Saturday is a half day.
WEEKDAY_FACTOR = (1.15, 1.05, 1.0, 1.0, 0.8, 0.5)
# Visits booked ahead: the share of the usual load already on the books k days out.
FUTURE_BOOKED_AT_0 = 0.95
FUTURE_BOOKED_FLOOR = 0.08
# Days between annual physicals.
PHYSICAL_INTERVAL_DAYS = 330
# Lead days (min, max) from booking to visit per profile (new patients: from registration).
LEAD_DAYS: dict[str, tuple[int, int]] = {
    "follow_up": (14, 90),
    "chronic": (28, 100),
    "physical": (30, 150),
    "sick": (0, 1),
    "telehealth": (1, 14),
    "nurse": (3, 30),
}
VITAL_KEYS = (
    "height",
    "height_units",
    "weight",
    "weight_units",
    "bmi",
    "temperature",
    "temperature_units",
    "pulse",
    "respiratory_rate",
    "oxygen_saturation",
    "blood_pressure_1",
    "blood_pressure_2",
    "head_circumference",
    "head_circumference_units",
    "pain",
    "smoking_status",
)
_MORNING = (8 * 60, 12 * 60)
_AFTERNOON = (13 * 60, 17 * 60)
_PROFILE = {p.key: p for p in codes.APPOINTMENT_PROFILES}


@dataclass(slots=True)
class Visit:
    """One appointment with the facts later stages need (completed visits only are kept)."""

    appt: Record
    patient: PatientTraits
    doctor: DoctorPlan
    office: int
    kind: str
    start: dt.datetime
    end: dt.datetime
    new_patient: bool
    acute: codes.AcuteProblem | None = None
    extra_codes: list[str] = field(default_factory=list)
    icd10: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _DoctorBook:
    plan: DoctorPlan
    per_day: float
    pool: list[PatientTraits]
    queue: deque[PatientTraits]


def _kind_tables() -> dict[tuple[bool, bool, bool], tuple[list[str], list[float]]]:
    tables: dict[tuple[bool, bool, bool], tuple[list[str], list[float]]] = {}
    for child, chronic, physical in itertools.product((False, True), repeat=3):
        weights = {
            "follow_up": 30 + (0 if chronic else 18),
            "sick": 22 + (8 if child else 0),
            "chronic": 18 if chronic else 0,
            "physical": (20 if child else 12) if physical else 0,
            "telehealth": 3 if child else 10,
            "nurse": 8,
        }
        keys = [k for k, w in weights.items() if w]
        tables[(child, chronic, physical)] = (
            keys,
            list(itertools.accumulate(float(weights[k]) for k in keys)),
        )
    return tables


def _working_days(ctx: GenContext) -> list[dt.date]:
    holidays: set[dt.date] = set()
    for year in range(ctx.start.year, ctx.end.year + 1):
        holidays |= us_holidays(year)
    days = []
    day = ctx.start
    while day <= ctx.end:
        if day.weekday() != 6 and day not in holidays:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def build_schedule(
    ctx: GenContext,
    practice: Practice,
    patients: list[PatientTraits],
    visits_per_patient_year: float,
) -> tuple[dict[int | str, Record], list[Visit]]:
    """Generate every appointment; return the table and the completed visits in time order."""
    rng = ctx.rng("schedule")
    days = _working_days(ctx)
    window_years = (ctx.today - ctx.start).days / 365.25
    books: list[_DoctorBook] = []
    for plan in practice.doctors:
        mine = [p for p in patients if p.doctor.index == plan.index]
        worked = sum(1 for d in days if d <= ctx.today and practice.works(plan, d)) or 1
        pool = [p for p in mine if p.established for _ in range(p.visit_weight)]
        queue = deque(sorted((p for p in mine if not p.established), key=lambda p: p.join))
        demand = visits_per_patient_year * window_years * len(mine)
        books.append(_DoctorBook(plan, demand / worked, pool, queue))
    kinds = _kind_tables()
    acute_child = list(itertools.accumulate(a.child_weight for a in codes.ACUTE_PROBLEMS))
    acute_adult = list(itertools.accumulate(a.adult_weight for a in codes.ACUTE_PROBLEMS))
    horizon = max(1, (ctx.end - ctx.today).days)
    table: dict[int | str, Record] = {}
    completed: list[Visit] = []
    for day in days:
        ahead = (day - ctx.today).days
        fill = 1.0
        if ahead > 0:
            fill = max(FUTURE_BOOKED_FLOOR, FUTURE_BOOKED_AT_0 * (1 - ahead / horizon) ** 1.5)
        weekday = day.weekday()
        blocks = (_MORNING,) if weekday == 5 else (_MORNING, _AFTERNOON)
        base = dt.datetime.combine(day, dt.time())
        ordinal = day.toordinal()
        for book in books:
            if not practice.works(book.plan, day):
                continue
            office = practice.office_for(book.plan, day)
            target = book.per_day * WEEKDAY_FACTOR[weekday] * fill
            n = max(0, round(rng.gauss(target, math.sqrt(target) * 0.6))) if target > 0 else 0
            picks: list[tuple[PatientTraits, str, bool, int]] = []
            seen: set[int] = set()
            capacity = sum(b[1] - b[0] for b in blocks)
            used = 0
            for _ in range(n):
                if book.queue and book.queue[0].join <= day:
                    patient = book.queue.popleft()
                    kind, new = "new", True
                    book.pool.extend(itertools.repeat(patient, patient.visit_weight))
                elif book.pool:
                    patient = book.pool[pick(rng, 0, len(book.pool) - 1)]
                    if patient.id in seen:
                        continue
                    physical_due = ordinal - patient.last_physical > PHYSICAL_INTERVAL_DAYS
                    keys, cum = kinds[(patient.age < 18, bool(patient.chronic), physical_due)]
                    kind, new = rng.choices(keys, cum_weights=cum)[0], False
                    if kind == "physical":
                        patient.last_physical = ordinal
                else:
                    break
                duration = _PROFILE[kind].duration
                if used + duration > capacity:
                    break
                used += duration
                seen.add(patient.id)
                picks.append((patient, kind, new, duration))
            if not picks:
                continue
            mean_gap = (capacity - used) / (len(picks) + 1)
            block_index = 0
            cursor = blocks[0][0]
            for patient, kind, new, duration in picks:
                gap = 5 * round(rng.uniform(0, 2 * mean_gap) / 5)
                start_min = cursor + gap
                while start_min + duration > blocks[block_index][1]:
                    block_index += 1
                    if block_index == len(blocks):
                        break
                    start_min = blocks[block_index][0] + 5 * round(rng.uniform(0, mean_gap) / 5)
                if block_index == len(blocks):
                    break
                cursor = start_min + duration
                start = base + dt.timedelta(minutes=start_min)
                acute = None
                if kind == "sick":
                    cum = acute_child if patient.age < 18 else acute_adult
                    acute = codes.ACUTE_PROBLEMS[bisect.bisect(cum, rng.random() * cum[-1])]
                visit = _appointment(
                    ctx, rng, practice, book.plan, office, patient, kind, new, start, duration
                )
                visit.acute = acute
                table[visit.appt["id"]] = visit.appt
                if visit.appt["status"] == "Complete":
                    completed.append(visit)
                patient.visits += 1
    _update_patients(ctx, table, patients)
    return table, completed


def _appointment(
    ctx: GenContext,
    rng: random.Random,
    practice: Practice,
    doctor: DoctorPlan,
    office: int,
    patient: PatientTraits,
    kind: str,
    new: bool,
    start: dt.datetime,
    duration: int,
) -> Visit:
    now = ctx.now
    profile = _PROFILE[kind]
    walk_in = kind == "sick" and start <= now and rng.random() < WALK_IN_RATE
    if new:
        created = patient.created + dt.timedelta(minutes=pick(rng, 2, 20))
    elif walk_in:
        created = start - dt.timedelta(minutes=pick(rng, 5, 30))
    else:
        low, high = LEAD_DAYS[kind]
        lead = pick(rng, low, high)
        if lead == 0:
            created = start - dt.timedelta(minutes=pick(rng, 30, 180))
        else:
            created = dt.datetime.combine(
                start.date() - dt.timedelta(days=lead),
                dt.time(8 + pick(rng, 0, 8), pick(rng, 0, 59)),
            )
    if created > now:
        created = now - dt.timedelta(minutes=pick(rng, 5, 3 * 24 * 60))
    planned_end = start + dt.timedelta(minutes=duration)
    transitions: list[tuple[str, str, dt.datetime]] = []
    status = ""
    confirm = dt.datetime.combine(
        start.date() - dt.timedelta(days=1), dt.time(10 + pick(rng, 0, 7), pick(rng, 0, 59))
    )
    booked_confirm = created + dt.timedelta(minutes=pick(rng, 1, 60))
    if (
        not walk_in
        and booked_confirm < min(now, start - dt.timedelta(minutes=20))
        and rng.random() < CONFIRM_AT_BOOKING
    ):
        transitions.append(("", "Confirmed", booked_confirm))
        status = "Confirmed"
    elif not walk_in and created < confirm <= now and rng.random() < CONFIRM_RATE:
        transitions.append(("", "Confirmed", confirm))
        status = "Confirmed"
    end = planned_end
    if planned_end + dt.timedelta(minutes=15) <= now:
        r = rng.random()
        if r < CANCEL_RATE + RESCHEDULE_RATE:
            to = "Cancelled" if r < CANCEL_RATE else "Rescheduled"
            moment = created + (start - created) * rng.uniform(0.05, 0.98)
            transitions = [t for t in transitions if t[2] < moment]
            status = transitions[-1][1] if transitions else ""
            transitions.append((status, to, moment))
            status = to
        elif r < CANCEL_RATE + RESCHEDULE_RATE + NO_SHOW_RATE * patient.noshow_factor:
            marked = min(now, start + dt.timedelta(minutes=pick(rng, 20, 60)))
            transitions.append((status, "No Show", marked))
            status = "No Show"
        else:
            status, end = _visit_flow(rng, transitions, status, start, duration, now, full=True)
    elif start <= now + dt.timedelta(minutes=20):
        status, end = _visit_flow(rng, transitions, status, start, duration, now, full=False)
    appt_id = str(ctx.next_id("appointments"))
    updated = transitions[-1][2] if transitions else created
    payer, secondary = patient.payer, patient.secondary
    insured = payer.key not in (codes.SELF_PAY, codes.WORKERS_COMP)
    appt: Record = {
        "id": appt_id,
        "doctor": doctor.id,
        "office": office,
        "patient": patient.id,
        "exam_room": doctor.room,
        "scheduled_time": ctx.ts(start),
        "duration": duration,
        "status": status,
        "custom_status": "",
        "profile": practice.profile_ids[(doctor.index, kind)],
        "reason": profile.reason,
        "notes": "",
        "color": profile.color,
        "appt_is_break": False,
        "is_walk_in": walk_in,
        "allow_overlapping": False,
        "icd9_codes": [],
        "icd10_codes": [],
        "billing_status": "",
        "ins1_status": "",
        "ins2_status": "",
        "primary_insurer_name": payer.name if insured else "",
        "primary_insurer_payer_id": payer.payer_id if insured else "",
        "primary_insurance_id_number": patient.member_id if insured else "",
        "secondary_insurer_name": secondary.name if secondary else "",
        "secondary_insurer_payer_id": secondary.payer_id if secondary else "",
        "secondary_insurance_id_number": "",
        "first_billed_date": None,
        "last_billed_date": None,
        "first_edi_date": None,
        "last_edi_date": None,
        "billing_provider": "",
        "supervising_provider": "",
        "payment_profile": patient.record["patient_payment_profile"],
        "billing_notes": [],
        "resubmit_claim_original_id": None,
        "cloned_from": None,
        "recurring_appointment": False,
        "recurs_every": None,
        "recurring_days": [],
        "recur_start_date": None,
        "recur_end_date": None,
        "base_recurring_appointment": None,
        "recurrence_instance_key": None,
        "is_virtual_base": False,
        "deleted_flag": False,
        "created_by": practice.demo_user["id"],
        "created_at": ctx.ts(created),
        "updated_at": ctx.ts(updated),
        "vitals": dict.fromkeys(VITAL_KEYS),
        "custom_vitals": [],
        "custom_fields": [],
        "clinical_note": None,
        "reminders": _reminders(ctx, start, created, walk_in),
        "status_transitions": [
            {"appointment": appt_id, "from_status": a, "to_status": b, "datetime": ctx.ts(t)}
            for a, b, t in transitions
        ],
        "extended_updated_at": ctx.ts(updated),
    }
    return Visit(appt, patient, doctor, office, kind, start, end, new)


def _visit_flow(
    rng: random.Random,
    transitions: list[tuple[str, str, dt.datetime]],
    status: str,
    start: dt.datetime,
    duration: int,
    now: dt.datetime,
    full: bool,
) -> tuple[str, dt.datetime]:
    """Arrived -> Checked In -> In Room -> Complete, cut off at the clinic clock."""
    late = rng.random() < 0.12
    arrived = start + dt.timedelta(minutes=pick(rng, 1, 15) if late else -pick(rng, 0, 15))
    checked = arrived + dt.timedelta(minutes=pick(rng, 1, 6))
    wait = min(60.0, rng.lognormvariate(math.log(10), 0.6))
    roomed = max(start - dt.timedelta(minutes=2), checked + dt.timedelta(minutes=wait))
    done = roomed + dt.timedelta(minutes=duration * rng.uniform(0.8, 1.5))
    steps = (("Arrived", arrived), ("Checked In", checked), ("In Room", roomed), ("Complete", done))
    for to, moment in steps:
        if moment > now or (to == "Complete" and not full):
            break
        transitions.append((status, to, moment))
        status = to
    return status, done


def _reminders(
    ctx: GenContext, start: dt.datetime, created: dt.datetime, walk_in: bool
) -> list[Record]:
    if walk_in:
        return []
    day = start.date()
    reminders = []
    for kind, days_before, hour in (("email", 3, 9), ("sms", 1, 10)):
        moment = dt.datetime.combine(day - dt.timedelta(days=days_before), dt.time(hour))
        if moment > created:
            reminders.append(
                {"id": ctx.next_id("reminders"), "type": kind, "scheduled_time": ctx.ts(moment)}
            )
    return reminders


def _update_patients(
    ctx: GenContext, table: dict[int | str, Record], patients: list[PatientTraits]
) -> None:
    """Fill each patient's first/last appointment dates, offices and updated_at."""
    today_text = ctx.date(ctx.today)
    by_patient: dict[int, list[Record]] = {}
    for appt in table.values():
        by_patient.setdefault(appt["patient"], []).append(appt)
    for patient in patients:
        record = patient.record
        appts = by_patient.get(patient.id, [])
        seen = sorted(a["scheduled_time"] for a in appts if a["status"] == "Complete")
        first = ctx.date(patient.created.date()) if patient.established else None
        if seen and first is None:
            first = seen[0][:10]
        record["date_of_first_appointment"] = first
        record["date_of_last_appointment"] = seen[-1][:10] if seen else first
        record["offices"] = sorted({a["office"] for a in appts})
        if seen and seen[-1][:10] <= today_text:
            record["updated_at"] = max(record["updated_at"], seen[-1])
