"""Lab orders, tests and results, and vaccine administrations, per completed visit.

Labs are ordered at monitoring visits for the problems that call for them (A1c for diabetes, a
lipid panel for hyperlipidemia, ...) and as screening at adult physicals; results arrive one to
three days later with values drawn around problem-specific means, so diabetics have high A1c that
improves over time, CKD patients a low eGFR, and flags follow the reference range. Vaccines follow
the season (influenza) and age (Tdap, zoster, PCV20, HPV, childhood series). Each lab draw and
vaccine adds the billable codes (36415, vaccine product + 90471) to the visit for billing.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from ehr.sandbox import codes
from ehr.sandbox.clinic_context import GenContext, Record, pick
from ehr.sandbox.clinic_patients import PatientTraits
from ehr.sandbox.clinic_schedule import Visit

RESULT_DELAY_DAYS = (1, 3)
VENIPUNCTURE = "36415"
VACCINE_ADMIN = "90471"
# Point-of-care tests done for an acute problem.
POINT_OF_CARE: dict[str, str] = {"J02.9": "87880", "N39.0": "81002"}
_LAB_PROBABILITY = {"chronic": 0.6, "new": 0.5, "follow_up": 0.15, "nurse": 0.8, "physical": 0.7}
_FLU_PROBABILITY = {"nurse": 0.9, "physical": 0.6}
_FLU_OTHER = 0.25

# Per-analyte (mean, sd) for a patient at ``years`` into the window; default is mid-range.
_Model = Callable[[set[str], float], tuple[float, float]]
_MODELS: dict[str, _Model] = {
    "2345-7": lambda has, y: (150, 30)
    if "E11.9" in has
    else (108, 8)
    if "R73.03" in has
    else (88, 9),
    "4548-4": lambda has, y: (8.4 - 0.6 * min(y, 1.5), 0.5)
    if "E11.9" in has
    else (6.0, 0.2)
    if "R73.03" in has
    else (5.3, 0.25),
    "13457-7": lambda has, y: (155 - 30 * min(y, 1.0), 20) if "E78.5" in has else (100, 22),
    "2085-9": lambda has, y: (52, 12),
    "2571-8": lambda has, y: (185, 55) if "E11.9" in has else (125, 45),
    "2093-3": lambda has, y: (225 - 30 * min(y, 1.0), 25) if "E78.5" in has else (180, 25),
    "2160-0": lambda has, y: (1.65, 0.2) if "N18.30" in has else (0.95, 0.15),
    "62238-1": lambda has, y: (47, 6) if "N18.30" in has else (92, 12),
    "3016-3": lambda has, y: (3.9, 1.8) if "E03.9" in has else (1.9, 0.7),
    "62292-8": lambda has, y: (22, 5) if "E55.9" in has else (34, 8),
}


def build_labs_and_vaccines(
    ctx: GenContext, completed: list[Visit], staff_user: int
) -> dict[str, dict[int | str, Record]]:
    """Lab orders/tests/results and vaccine records; adds billable codes to the visits."""
    rng = ctx.rng("labs")
    tables: dict[str, dict[int | str, Record]] = {
        "lab_orders": {},
        "lab_tests": {},
        "lab_results": {},
        "patient_vaccine_records": {},
    }
    for visit in completed:
        if visit.kind == "telehealth":
            continue  # nothing is drawn or injected over video
        vaccine = _vaccine_for(rng, visit, ctx.today)
        if vaccine is not None:
            _vaccinate(ctx, rng, tables["patient_vaccine_records"], visit, vaccine, staff_user)
            visit.extra_codes += [vaccine.cpt, VACCINE_ADMIN]
            if codes.IMMUNIZATION_ICD10[0] not in visit.icd10:
                visit.icd10.append(codes.IMMUNIZATION_ICD10[0])
                visit.appt["icd10_codes"].append(codes.IMMUNIZATION_ICD10[0])
        panels = _panels_for(rng, visit, vaccinated=vaccine is not None)
        if panels:
            _order(ctx, rng, tables, visit, panels)
            visit.extra_codes.append(VENIPUNCTURE)
        if visit.acute is not None and visit.acute.icd10 in POINT_OF_CARE:
            visit.extra_codes.append(POINT_OF_CARE[visit.acute.icd10])
    return tables


def _vaccine_for(rng: random.Random, visit: Visit, today: dt.date) -> codes.Vaccine | None:
    patient = visit.patient
    day = visit.start.date()
    age = patient.age - (today - day).days // 365
    season = day.year if day.month >= 9 else day.year - 1
    flu_due = day.month in codes.FLU_SEASON_MONTHS and age >= 3
    if (
        flu_due
        and patient.last_flu_season != season
        and rng.random() < _FLU_PROBABILITY.get(visit.kind, _FLU_OTHER)
    ):
        patient.last_flu_season = season
        return codes.VACCINES["flu"]
    if visit.kind in ("physical", "nurse") and rng.random() < 0.2:
        due = [
            v for v in codes.VACCINES.values() if v.key != "flu" and v.min_age <= age <= v.max_age
        ]
        if due:
            return rng.choice(due)
    return None


def _panels_for(rng: random.Random, visit: Visit, vaccinated: bool) -> list[str]:
    if visit.kind == "nurse" and vaccinated:
        return []
    chance = _LAB_PROBABILITY.get(visit.kind, 0.0)
    if not chance or rng.random() >= chance:
        return []
    panels: list[str] = []
    for problem in visit.patient.chronic:
        for panel in codes.PROBLEM_LABS.get(problem.icd10, ()):
            if panel not in panels:
                panels.append(panel)
    if visit.kind in ("physical", "new") and visit.patient.age >= 18:
        panels += [p for p in codes.SCREENING_LABS if p not in panels]
    if "cmp" in panels and "bmp" in panels:
        panels.remove("bmp")
    return panels


def _order(
    ctx: GenContext,
    rng: random.Random,
    tables: dict[str, dict[int | str, Record]],
    visit: Visit,
    panels: list[str],
) -> None:
    patient = visit.patient
    ordered = visit.end
    resulted = ordered + dt.timedelta(days=pick(rng, *RESULT_DELAY_DAYS), hours=pick(rng, 0, 8))
    received = resulted <= ctx.now
    order_id = ctx.next_id("lab_orders")
    document = ctx.next_id("lab_documents") if received else None
    sublab = rng.choice(codes.SUBLABS)[0]
    names = {p.icd10: p.name for p in patient.chronic}
    tables["lab_orders"][order_id] = {
        "id": order_id,
        "patient": patient.id,
        "doctor": visit.doctor.id,
        "sublab": sublab,
        "status": "R" if received else "S",
        "priority": "S" if rng.random() < 0.04 else "N",
        "icd10_codes": [{"code": c, "description": names.get(c, "")} for c in visit.icd10[:4]],
        "notes": "",
        "accession_number": f"A{order_id % 10**8:08d}",
        "requisition_id": f"R{order_id}",
        "external_requisition_id": "",
        "timestamp": ctx.ts(ordered),
        "documents": [document] if document else [],
    }
    has = {p.icd10 for p in patient.chronic}
    years = (visit.start.date() - ctx.start).days / 365.25
    for key in panels:
        panel = codes.LAB_PANELS[key]
        test_id = ctx.next_id("lab_tests")
        tables["lab_tests"][test_id] = {
            "id": test_id,
            "lab_order": order_id,
            "code": panel.code,
            "name": panel.name,
            "description": "",
            "status": "F" if received else "I",
            "collection_date": ctx.ts(ordered),
            "specimen_source": panel.specimen,
            "specimen_condition": "",
            "specimen_total_volume": None,
            "internal_notes": "",
            "report_notes": "",
        }
        if not received:
            continue
        for analyte in panel.analytes:
            model = _MODELS.get(analyte.loinc)
            mean, sd = (
                model(has, years)
                if model
                else ((analyte.low + analyte.high) / 2, (analyte.high - analyte.low) / 5)
            )
            value = round(max(0.01, rng.gauss(mean, sd)), analyte.decimals)
            flag = "H" if value > analyte.high else "L" if value < analyte.low else "N"
            result_id = ctx.next_id("lab_results")
            tables["lab_results"][result_id] = {
                "id": result_id,
                "lab_order": order_id,
                "lab_test": test_id,
                "document": document,
                "status": "F",
                "observation_code": analyte.loinc,
                "observation_description": analyte.name,
                "test_performed": analyte.name,
                "value": f"{value:.{analyte.decimals}f}",
                "value_is_numeric": True,
                "unit": analyte.unit,
                "normal_range": f"{analyte.low:g} {analyte.high:g}",
                "is_abnormal": flag != "N",
                "abnormal_status": flag,
                "group_code": panel.code,
                "specimen_received": ctx.ts(ordered + dt.timedelta(hours=6)),
                "comments": "",
            }


def _vaccinate(
    ctx: GenContext,
    rng: random.Random,
    table: dict[int | str, Record],
    visit: Visit,
    vaccine: codes.Vaccine,
    staff_user: int,
) -> None:
    patient: PatientTraits = visit.patient
    given = visit.end - dt.timedelta(minutes=5)
    record_id = ctx.next_id("patient_vaccine_records")
    child_medicaid = patient.age < 19 and patient.payer.key == "medicaid"
    table[record_id] = {
        "id": record_id,
        "patient": patient.id,
        "cvx_code": vaccine.cvx,
        "name": vaccine.name,
        "cpt_code": vaccine.cpt,
        "manufacturer": vaccine.manufacturer,
        "lot_number": f"{vaccine.key[:2].upper()}{pick(rng, 10000, 99998)}",
        "amount": 0.5,
        "units": "mL",
        "route": "Subcutaneous" if vaccine.key == "mmr" else "Intramuscular",
        "site": rng.choice(codes.VACCINE_SITES[2:] if patient.age < 3 else codes.VACCINE_SITES[:2]),
        "administration_start": ctx.ts(given),
        "administered_at": visit.office,
        "administered_by": staff_user,
        "ordering_doctor": visit.doctor.id,
        "completion_status": "CP",
        "funding_eligibility": "V02" if child_medicaid else "V01",
        "record_source": "00",
        "observed_immunity": None,
        "next_dose_date": None,
        "vaccine_inventory": None,
        "consent_form": None,
        "doses": [],
        "vis": "",
        "comments": "",
        "entered_by": staff_user,
        "created_at": ctx.ts(given),
        "updated_at": ctx.ts(given),
    }
