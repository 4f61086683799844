"""The practice itself: doctors, offices with exam rooms, appointment profiles, users, billing
profiles and the payer directory.

Also decides *where* each doctor works: a doctor uses the same exam-room index every day and
rotates between offices by weekday, with one weekday off; the room/office pattern is chosen so no
two doctors ever share an exam room on the same day (that is what keeps the schedule free of
doctor+room overlaps by construction).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from ehr.sandbox import codes
from ehr.sandbox.clinic_context import GenContext, Record, money

PRACTICE_GROUP_ID = 71001
PRACTICE_GROUP_NAME = "Harborview Medical Group"
TIMEZONE = "America/New_York"
# Doctors use rooms 1..3 of every office; an office's 4th room is the procedure room.
DOCTOR_ROOMS = 3
ROOMS_PER_OFFICE = (4, 3)
OFFICE_OPEN = dt.time(8, 0)
OFFICE_CLOSE = dt.time(17, 0)
SATURDAY_CLOSE = dt.time(12, 0)
PERMISSIONS = (
    "manage-patients",
    "scheduling",
    "clinical-notes",
    "billing",
    "show-billing-tab",
    "access-patient-payments",
    "settings",
    "calendar",
    "message-center",
    "clinical",
)

_DOCTOR_NAMES: tuple[tuple[str, str, str], ...] = (
    ("Maya", "Patel", "MD"),
    ("Daniel", "Okafor", "MD"),
    ("Laura", "Chen", "DO"),
    ("Samuel", "Rivera", "MD"),
    ("Grace", "Lindqvist", "MD"),
    ("Omar", "Haddad", "DO"),
    ("Hannah", "Brooks", "MD"),
    ("Victor", "Nakamura", "MD"),
)
_SITES: tuple[tuple[str, str, str, str], ...] = (
    ("Main Office", "1250 Massachusetts Ave", "Cambridge", "02138"),
    ("Medford Clinic", "410 Salem St", "Medford", "02155"),
    ("Somerville Clinic", "88 Highland Ave", "Somerville", "02143"),
    ("Arlington Clinic", "700 Massachusetts Ave", "Arlington", "02474"),
    ("Waltham Clinic", "160 Moody St", "Waltham", "02453"),
)


@dataclass(frozen=True, slots=True)
class DoctorPlan:
    """Where and when one doctor works (hidden facts the schedule needs)."""

    index: int
    id: int
    specialty: str
    room: int
    block: int
    day_off: int | None  # weekday 0-4, or None for a solo practice


@dataclass(slots=True)
class Practice:
    """The practice's records plus the doctor plans and office ids the other stages use."""

    doctors: list[DoctorPlan]
    office_ids: list[int]
    profile_ids: dict[tuple[int, str], int]
    demo_user: Record
    tables: dict[str, dict[int | str, Record]]

    def office_for(self, doctor: DoctorPlan, day: dt.date) -> int:
        """The office ``doctor`` works at on ``day`` (Saturday clinic: the block's home office)."""
        weekday = day.weekday()
        shift = 0 if weekday == 5 else weekday
        return self.office_ids[(doctor.block + shift) % len(self.office_ids)]

    def works(self, doctor: DoctorPlan, day: dt.date) -> bool:
        """Whether ``doctor`` has clinic hours on ``day`` (holidays are handled by the caller)."""
        weekday = day.weekday()
        if weekday == 6:
            return False
        if weekday == 5:
            # One doctor of each block takes the Saturday morning clinic, rotating weekly.
            members = [d for d in self.doctors if d.block == doctor.block]
            week = day.isocalendar()[1]
            return members[week % len(members)].index == doctor.index
        return doctor.day_off != weekday


def practice_size(doctors: int, offices: int) -> tuple[int, int]:
    """Doctors and offices actually built: enough offices that rooms never collide."""
    doctors = max(1, doctors)
    return doctors, max(1, offices, math.ceil(doctors / DOCTOR_ROOMS))


def _npi(base: int) -> str:
    """A 10-digit NPI with a valid Luhn check digit (computed with the 80840 prefix)."""
    body = f"{base:09d}"
    digits = [int(c) for c in "80840" + body]
    total = 0
    for pos, digit in enumerate(reversed(digits)):
        if pos % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return body + str((10 - total % 10) % 10)


def build_practice(ctx: GenContext, n_doctors: int, n_offices: int) -> Practice:
    """Build doctors, offices, profiles, users, billing profiles and insurances."""
    created = ctx.ts(dt.datetime.combine(ctx.start, dt.time(9, 0)) - dt.timedelta(days=900))
    doctors: dict[int | str, Record] = {}
    plans: list[DoctorPlan] = []
    for i in range(n_doctors):
        first, last, suffix = _DOCTOR_NAMES[i % len(_DOCTOR_NAMES)]
        if i >= len(_DOCTOR_NAMES):
            last = f"{last}-{i // len(_DOCTOR_NAMES) + 1}"
        doctor_id = ctx.next_id("doctors")
        specialty = codes.SPECIALTIES[i % len(codes.SPECIALTIES)]
        plans.append(
            DoctorPlan(
                index=i,
                id=doctor_id,
                specialty=specialty,
                room=i % DOCTOR_ROOMS + 1,
                block=i // DOCTOR_ROOMS,
                day_off=None if n_doctors == 1 else (i + 2) % 5,
            )
        )
        doctors[doctor_id] = {
            "id": doctor_id,
            "first_name": first,
            "last_name": last,
            "suffix": suffix,
            "email": f"{first}.{last}@harborview.example.com".lower(),
            "specialty": specialty,
            "job_title": "Provider/Staff (Private Practice)",
            "npi_number": _npi(123450000 + i * 7),
            "group_npi_number": _npi(198760000),
            "practice_group": PRACTICE_GROUP_ID,
            "practice_group_name": PRACTICE_GROUP_NAME,
            "timezone": TIMEZONE,
            "office_phone": "(617) 555-0140",
            "home_phone": "",
            "cell_phone": "",
            "website": "",
            "country": "US",
            "profile_picture": "",
            "is_account_suspended": False,
        }
    owner = plans[0].id
    offices: dict[int | str, Record] = {}
    for j in range(n_offices):
        site, street, city, zip_code = _SITES[j % len(_SITES)]
        office_id = ctx.next_id("offices")
        n_rooms = ROOMS_PER_OFFICE[j % len(ROOMS_PER_OFFICE)]
        rooms = [
            {"index": k, "name": f"Exam Room {k}", "online_scheduling": True}
            for k in range(1, n_rooms + 1)
        ]
        if n_rooms > DOCTOR_ROOMS:
            rooms[-1] = {"index": n_rooms, "name": "Procedure Room", "online_scheduling": False}
        online = j == 0
        offices[office_id] = {
            "id": office_id,
            "name": f"Harborview {site}" + (f" {j // len(_SITES) + 1}" if j >= len(_SITES) else ""),
            "doctor": owner,
            "address": street,
            "city": city,
            "state": "MA",
            "zip_code": zip_code,
            "country": "US",
            "phone_number": f"(617) 555-01{40 + j % 50:02d}",
            "fax_number": f"(617) 555-01{90 + j % 10:02d}",
            "tax_id_number_professional": "",
            "start_time": OFFICE_OPEN.isoformat(),
            "end_time": OFFICE_CLOSE.isoformat(),
            "online_scheduling": online,
            "archived": False,
            "online_timeslots": (
                [
                    {"day": day, "hour": hour, "minute": minute}
                    for day in range(5)
                    for hour in (9, 10, 14, 15)
                    for minute in (0, 30)
                ]
                if online
                else []
            ),
            "exam_rooms": rooms,
        }
    profiles: dict[int | str, Record] = {}
    profile_ids: dict[tuple[int, str], int] = {}
    for plan in plans:
        for order, kind in enumerate(codes.APPOINTMENT_PROFILES):
            profile_id = ctx.next_id("appointment_profiles")
            profile_ids[(plan.index, kind.key)] = profile_id
            profiles[profile_id] = {
                "id": profile_id,
                "name": kind.name,
                "doctor": plan.id,
                "color": kind.color,
                "reason": kind.reason,
                "duration": kind.duration,
                "online_scheduling": kind.online_scheduling,
                "sort_order": order,
                "archived": False,
            }
    users = _users(ctx, plans)
    demo_user = next(iter(users.values()))
    return Practice(
        doctors=plans,
        office_ids=[int(k) for k in offices],
        profile_ids=profile_ids,
        demo_user=demo_user,
        tables={
            "users": users,
            "doctors": doctors,
            "offices": offices,
            "appointment_profiles": profiles,
            "billing_profiles": _billing_profiles(ctx, plans, created),
            "insurances": _insurances(),
        },
    )


def _users(ctx: GenContext, plans: list[DoctorPlan]) -> dict[int | str, Record]:
    everything = dict.fromkeys(PERMISSIONS, True)
    users: dict[int | str, Record] = {}

    def add(username: str, doctor: int, is_doctor: bool, permissions: dict[str, bool]) -> None:
        user_id = ctx.next_id("users")
        users[user_id] = {
            "id": user_id,
            "username": username,
            "doctor": doctor,
            "practice_group": PRACTICE_GROUP_ID,
            "is_doctor": is_doctor,
            "is_staff": not is_doctor,
            "permissions": permissions,
        }

    add("demo", plans[0].id, True, dict(everything))  # the demo login, doctor 1
    for plan in plans[1:]:
        add(f"doctor{plan.index + 1}", plan.id, True, dict(everything))
    front = {
        p: p in {"manage-patients", "scheduling", "calendar", "message-center"} for p in PERMISSIONS
    }
    add("frontdesk", plans[0].id, False, front)
    billing = {
        p: p in {"billing", "show-billing-tab", "access-patient-payments", "manage-patients"}
        for p in PERMISSIONS
    }
    add("billing", plans[0].id, False, billing)
    return users


def _billing_profiles(
    ctx: GenContext, plans: list[DoctorPlan], created: str
) -> dict[int | str, Record]:
    templates: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
        ("Established visit with labs", ("99214", "36415"), ("I10", "E78.5")),
        ("Adult annual physical", ("99396", "36415"), (codes.ADULT_EXAM_ICD10[0],)),
        ("Flu shot", ("90686", "90471"), (codes.IMMUNIZATION_ICD10[0],)),
        ("Medicare annual wellness", ("G0439",), (codes.ADULT_EXAM_ICD10[0],)),
    )
    profiles: dict[int | str, Record] = {}
    for plan in plans:
        for name, cpts, icds in templates:
            profile_id = ctx.next_id("billing_profiles")
            pointers = [chr(ord("A") + i) for i in range(len(icds))]

            def line(code: str, pointers: list[str] = pointers) -> Record:
                return {
                    "code": code,
                    "price": money(codes.PROCEDURES[code].fee_cents),
                    "quantity": "1",
                    "modifiers": [],
                    "diagnosis_pointers_icd9": [],
                    "diagnosis_pointers_icd10": list(pointers),
                    "ndc_code": [],
                }

            profiles[profile_id] = {
                "id": profile_id,
                "name": name,
                "doctor": plan.id,
                "archived": False,
                "icd9_codes": [],
                "icd10_codes": list(icds),
                "cpt_codes": [line(c) for c in cpts if codes.PROCEDURES[c].procedure_type == "C"],
                "hcpcs_codes": [line(c) for c in cpts if codes.PROCEDURES[c].procedure_type == "H"],
                "custom_procedure_codes": [],
                "created_at": created,
                "updated_at": created,
            }
    return profiles


def _insurances() -> dict[int | str, Record]:
    rows = [(p.name, p.payer_id, p.state) for p in codes.PAYERS.values() if p.key != codes.SELF_PAY]
    rows.extend(codes.OTHER_INSURANCES)
    return {pid: {"payer_name": name, "payer_id": pid, "state": state} for name, pid, state in rows}
