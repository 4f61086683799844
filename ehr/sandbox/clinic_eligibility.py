"""Pre-visit insurance eligibility checks (``/api/eligibility_checks``).

Front desk runs a check one to three days before most insured patients' appointments (early
morning batch); most come back active coverage, a few inactive or unprocessable.
"""

from __future__ import annotations

import datetime as dt

from ehr.sandbox import codes
from ehr.sandbox.clinic_context import GenContext, Record, money, pick
from ehr.sandbox.clinic_patients import PatientTraits

ELIGIBILITY_RATE = 0.6  # appointments with a pre-visit eligibility check


def build_eligibility(
    ctx: GenContext, appointments: dict[int | str, Record], patients: dict[int, PatientTraits]
) -> dict[int | str, Record]:
    """Pre-visit eligibility checks for insured patients' appointments."""
    rng = ctx.rng("eligibility")
    now_text = ctx.ts(ctx.now)
    checks: dict[int | str, Record] = {}
    for appt in appointments.values():
        patient = patients[appt["patient"]]
        payer = patient.payer
        if payer.key in (codes.SELF_PAY, codes.WORKERS_COMP) or rng.random() >= ELIGIBILITY_RATE:
            continue
        day = dt.date.fromisoformat(appt["scheduled_time"][:10]) - dt.timedelta(
            days=pick(rng, 1, 3)
        )
        query = ctx.ts(dt.datetime.combine(day, dt.time(7, pick(rng, 0, 59))))
        if query > now_text or query < appt["created_at"]:
            continue
        r = rng.random()
        eligibility = "1" if r < 0.93 else "6" if r < 0.97 else "V"
        check_id = ctx.next_id("eligibility_checks")
        checks[check_id] = {
            "id": check_id,
            "patient": patient.id,
            "appointment": int(appt["id"]),
            "query_date": query,
            "payer_name": payer.name,
            "eligibility": eligibility,
            "request_service_type": "30",
            "service_type_description": "Health Benefit Plan Coverage",
            "cob_level": "Primary Insurance",
            "coverage_details": {
                "plan_name": payer.plan_name,
                "copay": money(payer.copay_cents),
                "coinsurance_percent": str(payer.coinsurance_permille // 10),
                "active": eligibility == "1",
            },
            "coverage_subscriber": {
                "member_id": patient.member_id,
                "relationship": "self",
            },
            "updated_at": query,
        }
    return checks
