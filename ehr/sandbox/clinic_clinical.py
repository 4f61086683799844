"""The chart: problems, medications, allergies, vitals, encounter diagnoses and clinical notes.

Chronic problems come from each patient's hidden traits (diagnosed before the window, or at a
new patient's first visit); acute ones from sick visits, resolved two weeks later. Medications
follow the problems they treat. Vitals are drawn around each patient's baseline with a slow trend
(weight drift, blood pressure improving once hypertension is treated), in the units of
``codes.VITAL_SIGNS``. Every completed visit gets a SOAP note whose assessment names the visit's
ICD-10 codes.
"""

from __future__ import annotations

import datetime as dt
import random

from ehr.sandbox import codes
from ehr.sandbox.clinic_context import GenContext, Record, pick
from ehr.sandbox.clinic_patients import PatientTraits
from ehr.sandbox.clinic_schedule import Visit

# Template and field ids of the practice's SOAP note (``/api/clinical_note_templates``).
SOAP_TEMPLATE_ID = 9001
SOAP_FIELDS = (("Subjective", 9101), ("Objective", 9102), ("Assessment", 9103), ("Plan", 9104))
ALLERGY_SHARE = 0.3
ACUTE_RESOLVES_DAYS = 14
_INFECTIOUS = frozenset({"J06.9", "J02.9", "J01.90", "H66.90", "J20.9", "B34.9", "A09"})
_PAINFUL = frozenset({"S93.409A", "L03.90", "N39.0", "H66.90"})
_FOLLOW_UP_ICD10 = "Z09"
_BP_CHECK_ICD10 = "Z01.30"


def build_chart(
    ctx: GenContext, patients: list[PatientTraits], completed: list[Visit]
) -> dict[str, dict[int | str, Record]]:
    """Problems, medications and allergies per patient; vitals, ICD-10 and notes per visit."""
    rng = ctx.rng("chart")
    first_visit: dict[int, Visit] = {}
    for visit in completed:
        first_visit.setdefault(visit.patient.id, visit)
    problems: dict[int | str, Record] = {}
    medications: dict[int | str, Record] = {}
    allergies: dict[int | str, Record] = {}
    for patient in patients:
        first = first_visit.get(patient.id)
        for problem in patient.chronic:
            at_visit = (
                first if first is not None and first.new_patient and rng.random() < 0.5 else None
            )
            if at_visit is not None:
                diagnosed = at_visit.start.date()
            else:
                horizon = min(3650, max(30, (patient.created.date() - patient.dob).days - 200))
                diagnosed = min(patient.created.date(), ctx.start) - dt.timedelta(
                    days=pick(rng, 1, horizon - 1)
                )
            record = _problem(
                ctx, rng, patient, problem.icd10, problem.name, problem.snomed, diagnosed, at_visit
            )
            if rng.random() < 0.08:
                changed = diagnosed + dt.timedelta(days=pick(rng, 30, 899))
                if changed <= ctx.today:
                    record["status"] = "inactive"
                    record["date_changed"] = ctx.date(changed)
            problems[record["id"]] = record
            _prescribe(
                ctx,
                rng,
                medications,
                patient,
                problem.icd10,
                problem.name,
                diagnosed,
                at_visit,
                course_days=None,
            )
        _allergies(ctx, rng, allergies, patient)
    notes: dict[int | str, Record] = {}
    for visit in completed:
        acute = visit.acute
        if acute is not None:
            day = visit.start.date()
            record = _problem(
                ctx, rng, visit.patient, acute.icd10, acute.name, acute.snomed, day, visit
            )
            resolved = day + dt.timedelta(days=ACUTE_RESOLVES_DAYS)
            if resolved <= ctx.today:
                record["status"] = "resolved"
                record["date_changed"] = ctx.date(resolved)
                record["abatement_date"] = ctx.date(resolved)
            problems[record["id"]] = record
            if rng.random() < 0.7:
                _prescribe(
                    ctx,
                    rng,
                    medications,
                    visit.patient,
                    acute.icd10,
                    acute.name,
                    day,
                    visit,
                    course_days=10,
                )
        visit.icd10 = _encounter_codes(rng, visit)
        visit.appt["icd10_codes"] = list(visit.icd10)
        _vitals(ctx, rng, visit)
        note = _note(ctx, rng, visit)
        notes[note["id"]] = note
    return {
        "problems": problems,
        "medications": medications,
        "allergies": allergies,
        "clinical_notes": notes,
    }


def _problem(
    ctx: GenContext,
    rng: random.Random,
    patient: PatientTraits,
    icd10: str,
    name: str,
    snomed: str,
    diagnosed: dt.date,
    visit: Visit | None,
) -> Record:
    onset = max(patient.dob, diagnosed - dt.timedelta(days=pick(rng, 0, 399)))
    return {
        "id": ctx.next_id("problems"),
        "patient": patient.id,
        "doctor": visit.doctor.id if visit else patient.doctor.id,
        "name": name,
        "description": "",
        "icd_code": icd10,
        "icd_version": "10",
        "snomed_ct_code": snomed,
        "status": "active",
        "verification_status": "confirmed",
        "category": "problem-list-item",
        "problem_type": "",
        "date_onset": ctx.date(onset),
        "date_diagnosis": ctx.date(diagnosed),
        "date_changed": None,
        "abatement_date": None,
        "appointment": int(visit.appt["id"]) if visit else None,
        "notes": "",
        "info_url": "",
    }


def _prescribe(
    ctx: GenContext,
    rng: random.Random,
    table: dict[int | str, Record],
    patient: PatientTraits,
    icd10: str,
    indication: str,
    diagnosed: dt.date,
    visit: Visit | None,
    course_days: int | None,
) -> None:
    drugs = codes.PROBLEM_DRUGS.get(icd10, ())
    for rank, key in enumerate(drugs):
        if rng.random() > (0.85 if rank == 0 else 0.3):
            continue
        drug = codes.DRUGS[key]
        prescribed = diagnosed + dt.timedelta(days=0 if visit else pick(rng, 0, 29))
        stopped = None
        if course_days is not None:
            stopped = prescribed + dt.timedelta(days=course_days)
        elif rng.random() < 0.1:
            stopped = prescribed + dt.timedelta(days=pick(rng, 60, 699))
        active = stopped is None or stopped > ctx.today
        table_id = ctx.next_id("medications")
        table[table_id] = {
            "id": table_id,
            "patient": patient.id,
            "doctor": visit.doctor.id if visit else patient.doctor.id,
            "name": drug.name,
            "rxnorm": drug.rxnorm,
            "ndc": "",
            "status": "active" if active else "inactive",
            "order_status": "Electronic eRx Sent" if active else "Discontinued",
            "dosage_quantity": drug.dose,
            "dosage_units": drug.dose_units,
            "route": drug.route,
            "frequency": drug.frequency,
            "prn": drug.prn,
            "daw": False,
            "dispense_quantity": drug.dispense,
            "number_refills": drug.refills,
            "date_prescribed": ctx.date(prescribed),
            "date_started_taking": ctx.date(prescribed),
            "date_stopped_taking": ctx.date(stopped) if stopped and not active else None,
            "indication": indication,
            "signature_note": drug.sig,
            "pharmacy_note": "",
            "notes": "",
            "appointment": int(visit.appt["id"]) if visit else None,
        }


def _allergies(
    ctx: GenContext, rng: random.Random, table: dict[int | str, Record], patient: PatientTraits
) -> None:
    if rng.random() >= ALLERGY_SHARE:
        return
    weights = [a.weight for a in codes.ALLERGENS]
    chosen = {
        a.description: a
        for a in rng.choices(codes.ALLERGENS, weights=weights, k=1 + (rng.random() < 0.2))
    }
    for allergen in chosen.values():
        reaction, snomed_reaction, _ = rng.choices(
            codes.REACTIONS, weights=[r[2] for r in codes.REACTIONS]
        )[0]
        severity = "severe" if snomed_reaction == "39579001" else rng.choice(("mild", "moderate"))
        allergy_id = ctx.next_id("allergies")
        table[allergy_id] = {
            "id": allergy_id,
            "patient": patient.id,
            "doctor": patient.doctor.id,
            "description": allergen.description,
            "reaction": reaction,
            "status": "active" if rng.random() < 0.95 else "inactive",
            "verification_status": "confirmed" if rng.random() < 0.85 else "unconfirmed",
            "snomed_code": allergen.snomed,
            "snomed_reaction": snomed_reaction,
            "rxnorm": allergen.rxnorm,
            "notes": f"Severity: {severity}",
        }


def _encounter_codes(rng: random.Random, visit: Visit) -> list[str]:
    chronic = [p.icd10 for p in visit.patient.chronic]
    some = rng.sample(chronic, min(len(chronic), 3)) if chronic else []
    if visit.acute is not None:
        return [visit.acute.icd10]
    if visit.kind == "physical":
        exam = codes.CHILD_EXAM_ICD10 if visit.patient.age < 18 else codes.ADULT_EXAM_ICD10
        return [exam[0], *some[:2]]
    if visit.kind == "nurse":
        return [_BP_CHECK_ICD10]
    if visit.kind == "new":
        return some or [codes.ADULT_EXAM_ICD10[0]]
    return some or [_FOLLOW_UP_ICD10]


def _vitals(ctx: GenContext, rng: random.Random, visit: Visit) -> None:
    patient = visit.patient
    years = (visit.start.date() - ctx.start).days / 365.25
    age = patient.age - (ctx.today - visit.start.date()).days / 365.25
    height = patient.height_in
    if age < 18:
        height = max(18.0, height - (ctx.today - visit.start.date()).days / 365.25 * 2.4)
    weight = patient.bmi * height * height / 703 + patient.weight_trend * years
    sbp, dbp = patient.sbp, patient.dbp
    if any(p.icd10 == "I10" for p in patient.chronic):
        sbp -= 8 * min(1.0, years)
        dbp -= 4 * min(1.0, years)
    acute = visit.acute
    fever = acute is not None and acute.icd10 in _INFECTIOUS and rng.random() < 0.45
    temp = rng.uniform(100.4, 102.6) if fever else rng.gauss(98.2, 0.35)
    pain = (
        pick(rng, 3, 7)
        if acute is not None and acute.icd10 in _PAINFUL
        else (rng.choice((0, 0, 0, 0, 1, 2)) if rng.random() < 0.9 else pick(rng, 3, 6))
    )
    copd = any(p.icd10 == "J44.9" for p in patient.chronic)
    vitals = visit.appt["vitals"]
    vitals.update(
        height=round(height, 1),
        height_units=codes.HEIGHT_UNITS,
        weight=round(max(6.0, weight + rng.gauss(0, 1.2)), 1),
        weight_units=codes.WEIGHT_UNITS,
        temperature=round(temp, 1),
        temperature_units=codes.TEMPERATURE_UNITS,
        pulse=round(patient.pulse + rng.gauss(0, 6) + (12 if fever else 0)),
        respiratory_rate=round(rng.gauss(24 if age < 6 else 16, 2)),
        oxygen_saturation=round(min(100.0, rng.gauss(93.5 if copd else 98.0, 1.0)), 0),
        blood_pressure_1=round(sbp + rng.gauss(0, 7)),
        blood_pressure_2=round(dbp + rng.gauss(0, 5)),
        pain=str(pain),
        smoking_status=patient.smoking,
    )
    vitals["bmi"] = f"{vitals['weight'] * 703 / (vitals['height'] ** 2):.1f}"
    if age < 2:
        vitals["head_circumference"] = round(35 + 12 * max(age, 0) + rng.gauss(0, 0.8), 1)
        vitals["head_circumference_units"] = codes.HEAD_CIRCUMFERENCE_UNITS


def _note(ctx: GenContext, rng: random.Random, visit: Visit) -> Record:
    note_id = ctx.next_id("clinical_notes")
    names = {p.icd10: p.name for p in visit.patient.chronic}
    if visit.acute is not None:
        names[visit.acute.icd10] = visit.acute.name
    assessment = "; ".join(f"{code} {names.get(code, '')}".strip() for code in visit.icd10)
    complaint = (
        visit.acute.complaint
        if visit.acute is not None
        else rng.choice(codes.CHIEF_COMPLAINTS[visit.kind])
    )
    texts = (complaint, rng.choice(codes.EXAM_FINDINGS), assessment, rng.choice(codes.PLANS))
    signed = visit.end + dt.timedelta(minutes=pick(rng, 5, 8 * 60))
    locked = signed <= ctx.now and rng.random() < 0.97
    updated = signed if locked else min(ctx.now, visit.end + dt.timedelta(minutes=5))
    appt_id = int(visit.appt["id"])
    visit.appt["clinical_note"] = {"locked": locked, "pdf": None, "updated_at": ctx.ts(updated)}
    return {
        "id": note_id,
        "appointment": appt_id,
        "patient": visit.patient.id,
        "archived": False,
        "locked": locked,
        "pdf": None,
        "clinical_note_sections": [
            {
                "clinical_note_template": SOAP_TEMPLATE_ID,
                "name": name,
                "values": [
                    {
                        "id": ctx.next_id("clinical_note_field_values"),
                        "clinical_note_field": field_id,
                        "value": text,
                    }
                ],
            }
            for (name, field_id), text in zip(SOAP_FIELDS, texts, strict=True)
        ],
        "signee": {"locked_by": visit.doctor.id if locked else None, "supervisor_locked_by": None},
        "created_at": ctx.ts(visit.start),
        "updated_at": ctx.ts(updated),
    }
