"""Synthetic patients: demographics, insurance, and the hidden traits later stages build on.

Faker is slow per call, so it is used once per run to draw pools (names, streets, employers) and
every patient is then assembled from those pools with a seeded ``random.Random``. Each patient
also gets hidden ``PatientTraits`` (age, payer, chronic problems, vitals baseline, no-show
propensity, how often they visit, when they joined the practice) that never appear in the API
records but make the schedule, chart and billing consistent with each other.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass, field

from faker import Faker

from ehr.sandbox import codes
from ehr.sandbox.clinic_context import GenContext, Record, money, pick, weighted_table
from ehr.sandbox.clinic_practice import DoctorPlan

# Pool sizes: big enough that names rarely repeat in a 1,500-patient clinic, small enough that
# drawing them with Faker stays well under 0.1 s.
FIRST_NAME_POOL = 300
LAST_NAME_POOL = 600
STREET_POOL = 300
EMPLOYER_POOL = 40
# Share of patients already registered before the history window (the rest join during it).
ESTABLISHED_SHARE = 0.65
# How far back established patients may have registered.
MAX_TENURE_DAYS = 8 * 365

# (min age, max age, weight) of a family practice's panel.
# fmt: off
_AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (0, 4, 6), (5, 11, 7), (12, 17, 6), (18, 29, 13), (30, 39, 13), (40, 49, 13), (50, 64, 22),
    (65, 79, 15), (80, 95, 5),
)
# fmt: on
# fmt: off
_TOWNS: tuple[tuple[str, str, float], ...] = (
    ("Cambridge", "02139", 14), ("Somerville", "02143", 12), ("Medford", "02155", 12),
    ("Arlington", "02474", 8), ("Malden", "02148", 8), ("Everett", "02149", 6),
    ("Watertown", "02472", 6), ("Belmont", "02478", 4), ("Boston", "02118", 8),
    ("Newton", "02458", 5), ("Waltham", "02453", 5), ("Revere", "02151", 4),
    ("Chelsea", "02150", 4), ("Quincy", "02169", 4),
)
# fmt: on
_AREA_CODES = ("617", "781", "857", "339")
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
# fmt: off
_RACES = {
    "white": 55, "black": 10, "asian": 12, "other": 6, "declined": 5, "blank": 10, "indian": 1,
    "hawaiian": 1,
}
# fmt: on
_ETHNICITIES = {"not_hispanic": 75, "hispanic": 13, "declined": 4, "blank": 8}
_LANGUAGES = {"eng": 82, "spa": 9, "por": 4, "zho": 2, "other": 2, "rus": 1}
# fmt: off
_LANGUAGE_NAMES = {
    "eng": "English", "spa": "Spanish", "por": "Portuguese", "zho": "Chinese", "other": "Other",
    "rus": "Russian",
}
# fmt: on
# fmt: off
_REFERRALS = (
    "", "", "", "Friend or family", "Insurance directory", "Web search", "Physician referral",
    "Practice website",
)
# fmt: on
_PHARMACIES = ("2231041", "2231678", "2210453", "2245512", "2219034", "2250876")
_RELATIONS = ("Spouse", "Parent", "Sibling", "Child", "Friend")

# fmt: off
INSURANCE_KEYS = (
    "insurance_company", "insurance_payer_id", "insurance_plan_name", "insurance_plan_type",
    "insurance_id_number", "insurance_group_number", "insurance_group_name",
    "insurance_claim_office_number", "is_subscriber_the_patient",
    "patient_relationship_to_subscriber", "subscriber_first_name", "subscriber_middle_name",
    "subscriber_last_name", "subscriber_suffix", "subscriber_date_of_birth", "subscriber_gender",
    "subscriber_address", "subscriber_city", "subscriber_state", "subscriber_zip_code",
    "subscriber_country", "subscriber_social_security", "photo_front", "photo_back",
)
# fmt: on
# fmt: off
AUTO_ACCIDENT_KEYS = tuple(
    f"auto_accident_{k}"
    for k in (
        "company", "payer_id", "payer_address", "payer_city", "payer_state", "payer_zip",
        "policy_number", "case_number", "date_of_accident", "state_of_occurrence", "notes",
        "claim_rep_name", "claim_rep_address", "claim_rep_city", "claim_rep_state",
        "claim_rep_zip", "claim_rep_is_insurer", "is_subscriber_the_patient",
        "patient_relationship_to_subscriber", "subscriber_first_name", "subscriber_middle_name",
        "subscriber_last_name", "subscriber_suffix", "subscriber_date_of_birth",
        "subscriber_social_security", "subscriber_address", "subscriber_city", "subscriber_state",
        "subscriber_zip_code", "subscriber_phone_number", "still_under_care", "significant_injury",
        "significant_injury_notes", "had_similar_condition", "similar_condition_date",
        "similar_condition_notes", "disabled_from_date", "disabled_to_date", "return_to_work_date",
        "will_require_therapy", "will_require_therapy_rec", "treatment_duration",
    )
)
# fmt: on
# fmt: off
WORKERS_COMP_KEYS = (
    "workers_comp_company", "workers_comp_payer_id", "workers_comp_payer_address",
    "workers_comp_payer_city", "workers_comp_payer_state", "workers_comp_payer_zip",
    "workers_comp_group_name", "workers_comp_group_number", "workers_comp_case_number",
    "workers_comp_date_of_accident", "workers_comp_state_of_occurrence", "workers_comp_notes",
    "workers_comp_wcb", "workers_comp_wcb_rating_code", "workers_comp_carrier_code",
    "property_and_casualty_agency_claim_number",
)
# fmt: on


@dataclass(slots=True)
class PatientTraits:
    """Facts about a patient that drive the other stages (never serialised)."""

    id: int
    index: int
    doctor: DoctorPlan
    sex: str
    dob: dt.date
    age: int
    age_band: int  # 0 child, 1 adult <65, 2 senior
    payer: codes.Payer
    secondary: codes.Payer | None
    member_id: str
    join: dt.date  # first visit target for new patients; registration day for established
    created: dt.datetime
    established: bool
    chronic: list[codes.ChronicProblem]
    noshow_factor: float
    visit_weight: int
    height_in: float
    bmi: float
    weight_trend: float  # lb per year
    sbp: float
    dbp: float
    pulse: float
    smoking: str
    last_physical: int = -10_000  # ordinal of the last annual physical
    last_flu_season: int = -1
    visits: int = 0
    record: Record = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Pools:
    male: list[str]
    female: list[str]
    last: list[str]
    streets: list[str]
    employers: list[str]


def _pools(seed: int) -> _Pools:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return _Pools(
        male=sorted({fake.first_name_male() for _ in range(FIRST_NAME_POOL)}),
        female=sorted({fake.first_name_female() for _ in range(FIRST_NAME_POOL)}),
        last=sorted({fake.last_name() for _ in range(LAST_NAME_POOL)}),
        streets=[fake.street_address() for _ in range(STREET_POOL)],
        employers=sorted({fake.company() for _ in range(EMPLOYER_POOL)}),
    )


def _phone(rng: random.Random) -> str:
    # 555-0100..0199 is reserved for fiction, so no real number is ever generated.
    return f"({rng.choice(_AREA_CODES)}) 555-01{pick(rng, 0, 99):02d}"


def _age_band(age: int) -> int:
    return 0 if age < 18 else (1 if age < 65 else 2)


def _prevalence_band(age: int) -> int:
    return 0 if age < 18 else 1 if age < 50 else 2 if age < 65 else 3


def _height(rng: random.Random, sex: str, age: int) -> float:
    adult = rng.gauss(69.5, 2.9) if sex == "Male" else rng.gauss(64.2, 2.6)
    if age >= 18:
        return adult
    if age < 2:
        return 20 + 7 * age + rng.gauss(0, 1)
    return min(adult, 34 + 2.4 * (age - 2) + rng.gauss(0, 1.5))


def build_patients(
    ctx: GenContext, doctors: list[DoctorPlan], count: int
) -> tuple[list[PatientTraits], dict[int | str, Record]]:
    """Build ``count`` patients; return their traits (index order) and the patients table."""
    rng = ctx.rng("patients")
    pools = _pools(ctx.seed)
    band_keys = list(range(len(_AGE_BANDS)))
    band_cum = weighted_table({str(k): _AGE_BANDS[k][2] for k in band_keys})[1]
    town_keys, town_cum = weighted_table({f"{t[0]}|{t[1]}": t[2] for t in _TOWNS})
    race_keys, race_cum = weighted_table(_RACES)
    eth_keys, eth_cum = weighted_table(_ETHNICITIES)
    lang_keys, lang_cum = weighted_table(_LANGUAGES)
    smoke_keys, smoke_cum = weighted_table(dict(codes.SMOKING_STATUSES))
    payer_tables = [weighted_table(mix) for mix in codes.PAYER_MIX]
    peds = [d for d in doctors if d.specialty == codes.PEDIATRICS]
    adult_docs = [d for d in doctors if d.specialty != codes.PEDIATRICS] or doctors
    family = [d for d in doctors if d.specialty == "Family Medicine"] or adult_docs
    window_days = (ctx.end - ctx.start).days
    now = ctx.now
    traits: list[PatientTraits] = []
    table: dict[int | str, Record] = {}
    for index in range(count):
        pid = ctx.next_id("patients")
        band = _AGE_BANDS[rng.choices(band_keys, cum_weights=band_cum)[0]]
        r = rng.random()
        sex = "Female" if r < 0.505 else "Male" if r < 0.99 else "Other"
        first = rng.choice(pools.female if sex == "Female" or r >= 0.995 else pools.male)
        last = rng.choice(pools.last)
        established = rng.random() < ESTABLISHED_SHARE
        if established:
            join = ctx.start - dt.timedelta(days=pick(rng, 1, MAX_TENURE_DAYS - 1))
            created = dt.datetime.combine(join, dt.time(8 + pick(rng, 0, 8), pick(rng, 0, 59)))
        else:
            join = ctx.start + dt.timedelta(days=pick(rng, 0, window_days - 1))
            lead = 1 + int(rng.expovariate(1 / 12))
            created = dt.datetime.combine(
                join - dt.timedelta(days=lead), dt.time(8 + pick(rng, 0, 8), pick(rng, 0, 59))
            )
            if created > now:
                created = now - dt.timedelta(minutes=pick(rng, 30, 60 * 24 * 20 - 1))
        age_at_today = pick(rng, band[0], band[1])
        dob = ctx.today - dt.timedelta(days=age_at_today * 365 + pick(rng, 0, 364))
        age = age_at_today
        age_group = _age_band(age)
        # Children mostly see the pediatrician, otherwise a family doctor.
        child_pool = peds if peds and rng.random() < 0.75 else family
        pool = child_pool if age < 18 else adult_docs
        doctor = pool[pick(rng, 0, len(pool) - 1)]
        pkeys, pcum = payer_tables[age_group]
        payer = codes.PAYERS[rng.choices(pkeys, cum_weights=pcum)[0]]
        secondary = (
            codes.PAYERS[codes.MEDIGAP]
            if payer.key == "medicare" and rng.random() < codes.MEDIGAP_SHARE
            else None
        )
        prev_band = _prevalence_band(age)
        chronic = [p for p in codes.CHRONIC_PROBLEMS if rng.random() < p.prevalence[prev_band]]
        has = {p.icd10 for p in chronic}
        height = _height(rng, sex, age)
        bmi = rng.gauss(16.5 + min(age, 18) * 0.35, 2.0) if age < 18 else rng.gauss(27.0, 4.5)
        if "E66.9" in has:
            bmi = max(bmi, 30.5 + abs(rng.gauss(0, 3)))
        sbp = (100 + age * 0.5 if age < 18 else 108 + age * 0.35) + rng.gauss(0, 8)
        if "I10" in has:
            sbp += 18
        dbp = sbp * 0.62 + rng.gauss(0, 5)
        r_ns = rng.random()
        noshow = 0.3 if r_ns < 0.6 else 1.0 if r_ns < 0.85 else 3.5
        weight_visits = 1 + len(chronic) // 2 + (age >= 65)
        town, zip_code = rng.choices(town_keys, cum_weights=town_cum)[0].split("|")
        alpha_last = re.sub(r"[^A-Za-z]", "", last) or "XX"
        has_email = rng.random() < 0.85
        lang = rng.choices(lang_keys, cum_weights=lang_cum)[0]
        profile = (
            "Cash"
            if payer.key == codes.SELF_PAY
            else "Worker's Comp"
            if payer.key == codes.WORKERS_COMP
            else "Insurance"
        )
        member_id = f"{payer.key[:2].upper()}{pick(rng, 10**8, 10**9 - 1)}"
        dob_text = ctx.date(dob)
        guardian = (
            f"{rng.choice(pools.female if rng.random() < 0.6 else pools.male)} {last}"
            if age < 18
            else ""
        )
        employer = rng.choice(pools.employers) if 18 <= age < 67 and rng.random() < 0.7 else ""
        record: Record = {
            "id": pid,
            "chart_id": f"{alpha_last[:2].upper()}{first[:2].upper()}{index + 1:06d}",
            "doctor": doctor.id,
            "first_name": first,
            "middle_name": rng.choice(pools.male if rng.random() < 0.5 else pools.female)
            if rng.random() < 0.4
            else "",
            "last_name": last,
            "nick_name": "",
            "date_of_birth": dob_text,
            "gender": sex,
            "email": (
                f"{first}.{alpha_last}{pick(rng, 0, 99)}@{rng.choice(_EMAIL_DOMAINS)}".lower()
                if has_email
                else ""
            ),
            "home_phone": _phone(rng) if rng.random() < 0.3 else "",
            "cell_phone": _phone(rng),
            "office_phone": "",
            "address": rng.choice(pools.streets),
            "city": town,
            "state": "MA",
            "zip_code": zip_code,
            "emergency_contact_name": f"{rng.choice(pools.female)} {rng.choice(pools.last)}",
            "emergency_contact_phone": _phone(rng),
            "emergency_contact_relation": rng.choice(_RELATIONS),
            "responsible_party_name": guardian,
            "responsible_party_relation": "Parent" if guardian else "",
            "responsible_party_phone": _phone(rng) if guardian else "",
            "responsible_party_email": "",
            "employer": employer,
            "employer_address": "",
            "employer_city": "",
            "employer_state": "",
            "employer_zip_code": "",
            "social_security_number": "",
            "race": rng.choices(race_keys, cum_weights=race_cum)[0],
            "race_subcategories": [],
            "ethnicity": rng.choices(eth_keys, cum_weights=eth_cum)[0],
            "preferred_language": lang,
            "preferred_language_code": lang,
            "preferred_language_description": _LANGUAGE_NAMES[lang],
            "pronouns": "",
            "gender_identity_code": "",
            "gender_identity_description": "",
            "patient_status": "A",
            "date_of_death": None,
            "patient_payment_profile": profile,
            "copay": money(payer.copay_cents),
            "primary_care_physician": "",
            "referring_source": rng.choice(_REFERRALS),
            "date_of_first_appointment": None,
            "date_of_last_appointment": None,
            "default_pharmacy": rng.choice(_PHARMACIES),
            "preferred_pharmacies": [],
            "disable_sms_messages": rng.random() < 0.05,
            "offices": [],
            "patient_photo": "",
            "patient_photo_date": None,
            "medication_history_consent": "",
            "referring_doctor": None,
            "custom_demographics": [],
            "patient_flags": [],
            "patient_flags_attached": [],
            "primary_insurance": _insurance(payer, member_id, first, last, dob_text, sex),
            "secondary_insurance": _insurance(
                secondary, f"AA{pick(rng, 10**8, 10**9 - 1)}", first, last, dob_text, sex
            ),
            "tertiary_insurance": _insurance(None, "", first, last, dob_text, sex),
            "auto_accident_insurance": _blank_auto_accident(),
            "workers_comp_insurance": _workers_comp(payer, member_id, join, ctx),
            "created_at": ctx.ts(created),
            "updated_at": ctx.ts(created),
        }
        table[pid] = record
        traits.append(
            PatientTraits(
                id=pid,
                index=index,
                doctor=doctor,
                sex=sex,
                dob=dob,
                age=age,
                age_band=age_group,
                payer=payer,
                secondary=secondary,
                member_id=member_id,
                join=join,
                created=created,
                established=established,
                chronic=chronic,
                noshow_factor=noshow,
                visit_weight=weight_visits,
                height_in=height,
                bmi=bmi,
                weight_trend=rng.gauss(0, 4),
                sbp=sbp,
                dbp=dbp,
                pulse=(rng.gauss(100, 10) if age < 6 else rng.gauss(72, 9)),
                smoking="blank" if age < 13 else rng.choices(smoke_keys, cum_weights=smoke_cum)[0],
                record=record,
            )
        )
    return traits, table


def _insurance(
    payer: codes.Payer | None, member_id: str, first: str, last: str, dob: str, sex: str
) -> Record:
    record: Record = dict.fromkeys(INSURANCE_KEYS, "")
    record["is_subscriber_the_patient"] = True
    if payer is None or payer.key in (codes.SELF_PAY, codes.WORKERS_COMP):
        return record
    record.update(
        insurance_company=payer.name,
        insurance_payer_id=payer.payer_id,
        insurance_plan_name=payer.plan_name,
        insurance_plan_type=payer.plan_type,
        insurance_id_number=member_id,
        subscriber_first_name=first,
        subscriber_last_name=last,
        subscriber_date_of_birth=dob,
        subscriber_gender=sex,
        subscriber_country="US",
    )
    return record


_AUTO_ACCIDENT_FLAGS = frozenset(
    f"auto_accident_{k}"
    for k in (
        "claim_rep_is_insurer",
        "is_subscriber_the_patient",
        "still_under_care",
        "had_similar_condition",
        "will_require_therapy",
    )
)


def _blank_auto_accident() -> Record:
    record: Record = dict.fromkeys(AUTO_ACCIDENT_KEYS, "")
    for key in _AUTO_ACCIDENT_FLAGS:
        record[key] = False
    return record


def _workers_comp(payer: codes.Payer, member_id: str, join: dt.date, ctx: GenContext) -> Record:
    record: Record = dict.fromkeys(WORKERS_COMP_KEYS, "")
    if payer.key == codes.WORKERS_COMP:
        record.update(
            workers_comp_company=payer.name,
            workers_comp_payer_id=payer.payer_id,
            workers_comp_case_number=member_id,
            workers_comp_date_of_accident=ctx.date(join - dt.timedelta(days=7)),
            workers_comp_state_of_occurrence="MA",
        )
    return record
