"""Claims: which codes a completed visit bills, and what happens to its claim over time.

``claim_lines`` picks the E/M code for the visit's profile (preventive codes by age, Medicare's
annual wellness visit), adds the procedures the chart stage recorded (labs drawn, vaccines, point
of care tests) and the usual add-ons (G2211, 96127, ECG), with modifiers (25, 95) and diagnosis
pointers. ``adjudicate`` walks the claim through charge entry -> submission -> rejection and
resubmission -> adjudication (paid, or denied, then appealed or written off) -> secondary
crossover, dating each step by the payer's behaviour in ``codes.PAYERS``; a step dated after
``today`` has not happened yet.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from dataclasses import dataclass, field

from ehr.sandbox import codes
from ehr.sandbox.clinic_context import GenContext, pick
from ehr.sandbox.clinic_patients import PatientTraits
from ehr.sandbox.clinic_schedule import Visit

POST_LAG_DAYS = (0, 0, 1, 1, 2, 3)  # charge entry after the visit
INCOMPLETE_RATE = 0.015  # claims held for missing information...
INCOMPLETE_FIX_DAYS = (10, 60)  # ...until fixed and sent this many days later
RESUBMIT_RATE = 0.9  # rejected claims corrected and resent
APPEAL_RATE = 0.5  # denials appealed and then paid
DENIAL_WRITE_OFF_RATE = 0.7  # unappealed denials eventually written off...
DENIAL_WRITE_OFF_DAYS = (60, 150)  # ...this many days after the denial
_EM: dict[str, tuple[tuple[str, float], ...]] = {
    "new": (("99203", 0.45), ("99204", 0.45), ("99202", 0.05), ("99205", 0.05)),
    "follow_up": (("99213", 0.6), ("99214", 0.3), ("99212", 0.1)),
    "chronic": (("99214", 0.6), ("99215", 0.15), ("99213", 0.25)),
    "sick": (("99213", 0.55), ("99212", 0.35), ("99214", 0.1)),
    "telehealth": (("99212", 0.4), ("99213", 0.6)),
    "nurse": (("99211", 1.0),),
}
_EM_TABLES = {
    k: ([c for c, _ in v], list(itertools.accumulate(w for _, w in v))) for k, v in _EM.items()
}
_MEDICARE_LIKE = frozenset({"medicare", "humana"})
_DENIAL_CUM = list(itertools.accumulate(r[2] for r in codes.DENIAL_REASONS))
_REJECT_CUM = list(itertools.accumulate(r[2] for r in codes.REJECTION_REASONS))


@dataclass(slots=True)
class Claim:
    """Claim-level dates and outcome shared by a visit's line items."""

    stage: str  # self_pay, unbilled, incomplete, rejected, pending, denied, paid
    status: str
    billed_on: dt.date | None = None
    last_billed_on: dt.date | None = None
    denied_on: dt.date | None = None
    denial: tuple[str, str, float] | None = None
    paid_on: dt.date | None = None
    secondary_on: dt.date | None = None  # None: no secondary or not yet paid
    secondary_pending: bool = False
    written_off_on: dt.date | None = None
    trace: str = ""
    events: list[dt.datetime] = field(default_factory=list)


def _preventive_code(age: int, medicare: bool) -> str:
    if medicare:
        return "G0439"
    for limit, code in ((5, "99392"), (12, "99393"), (18, "99394"), (40, "99395"), (65, "99396")):
        if age < limit:
            return code
    return "99397"


def claim_lines(
    rng: random.Random, visit: Visit
) -> list[tuple[codes.Procedure, int, list[str], list[str]]]:
    patient = visit.patient
    medicare = patient.payer.key in _MEDICARE_LIKE
    if visit.kind == "physical":
        em = _preventive_code(patient.age, patient.payer.key == "medicare")
    else:
        keys, cum = _EM_TABLES[visit.kind]
        em = keys[bisect.bisect(cum, rng.random() * cum[-1])]
    extras = list(visit.extra_codes)
    has = {p.icd10 for p in patient.chronic}
    if visit.kind in ("chronic", "follow_up"):
        if has & {"F32.9", "F41.1"} and rng.random() < 0.5:
            extras.append("96127")
        if "I48.91" in has and rng.random() < 0.3:
            extras.append("93000")
    if visit.kind == "chronic" and medicare and rng.random() < 0.5:
        extras.append("G2211")
    letters = [chr(ord("A") + i) for i in range(min(4, len(visit.icd10)))] or ["A"]
    modifiers = ["95"] if visit.kind == "telehealth" else []
    if any(c not in ("36415", "G2211") for c in extras):
        modifiers.append("25")
    lines = [(codes.PROCEDURES[em], 1, modifiers, letters)]
    z23 = codes.IMMUNIZATION_ICD10[0]
    vaccine_pointer = (
        [chr(ord("A") + visit.icd10.index(z23))] if z23 in visit.icd10[:4] else letters[:1]
    )
    vaccine_codes = {v.cpt for v in codes.VACCINES.values()} | {"90471"}
    for code in extras:
        pointer = vaccine_pointer if code in vaccine_codes else letters[:1]
        lines.append((codes.PROCEDURES[code], 2 if code == "96127" else 1, [], list(pointer)))
    return lines


def adjudicate(
    ctx: GenContext, rng: random.Random, patient: PatientTraits, posted: dt.date
) -> Claim:
    today = ctx.today
    payer = patient.payer
    if payer.key == codes.SELF_PAY:
        return Claim("self_pay", "")
    billed = posted + dt.timedelta(days=pick(rng, 0, 2))
    if billed > today:
        return Claim("unbilled", "")
    if rng.random() < INCOMPLETE_RATE:
        # Missing information holds the claim until someone fixes it (weeks later).
        fixed = billed + dt.timedelta(days=pick(rng, *INCOMPLETE_FIX_DAYS))
        if fixed > today:
            return Claim("incomplete", codes.STATUS_INCOMPLETE)
        billed = fixed
    claim = Claim("pending", codes.STATUS_SUBMITTED, billed_on=billed, last_billed_on=billed)
    claim.trace = f"{pick(rng, 10**11, 10**12 - 1)}"
    if rng.random() < payer.reject_rate:
        rejected = billed + dt.timedelta(days=pick(rng, 1, 3))
        if rejected <= today:
            resent = rejected + dt.timedelta(days=pick(rng, 3, 30))
            if resent <= today and rng.random() < RESUBMIT_RATE:
                claim.last_billed_on = resent
            else:
                claim.stage, claim.status = "rejected", codes.STATUS_REJECTED
                claim.denial = codes.REJECTION_REASONS[
                    bisect.bisect(_REJECT_CUM, rng.random() * _REJECT_CUM[-1])
                ]
                return claim
    assert claim.last_billed_on is not None
    adjudicated = claim.last_billed_on + dt.timedelta(
        days=max(3, round(payer.pay_lag_days * rng.uniform(0.6, 1.6)))
    )
    if adjudicated > today:
        if (today - claim.last_billed_on).days > 2:
            claim.status = rng.choice(codes.STATUSES_PENDING)
        return claim
    if rng.random() < payer.denial_rate:
        claim.denied_on = adjudicated
        claim.denial = codes.DENIAL_REASONS[
            bisect.bisect(_DENIAL_CUM, rng.random() * _DENIAL_CUM[-1])
        ]
        appeal_paid = adjudicated + dt.timedelta(days=pick(rng, 30, 60))
        if appeal_paid > today or rng.random() >= APPEAL_RATE:
            claim.stage, claim.status = "denied", codes.STATUS_DENIED
            written_off = adjudicated + dt.timedelta(days=pick(rng, *DENIAL_WRITE_OFF_DAYS))
            if written_off <= today and rng.random() < DENIAL_WRITE_OFF_RATE:
                claim.written_off_on = written_off
            return claim
        adjudicated = appeal_paid
    claim.stage, claim.status, claim.paid_on = "paid", codes.STATUS_PAID, adjudicated
    if patient.secondary is not None and payer.coinsurance_permille:
        crossover = adjudicated + dt.timedelta(days=pick(rng, 7, 20))
        if crossover <= today:
            claim.secondary_on = crossover
        else:
            claim.secondary_pending = True
            claim.status = codes.STATUS_COB
    return claim
