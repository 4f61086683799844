"""Curated code tables for the sandbox's synthetic clinic.

Small, hand-picked subsets of the real vocabularies a US primary-care practice uses: ICD-10-CM
problems (with SNOMED CT concepts), RxNorm medications, allergens and SNOMED reactions, LOINC vital
signs and lab analytes with units and adult reference ranges, CPT/HCPCS codes with a plausible
practice fee schedule, CVX vaccines, payers with a realistic mix and behaviour, appointment
profiles, claim statuses and CARC denial/adjustment reasons.

The codes are real codes chosen from memory of the public vocabularies (no network here to check
each against a release); prevalences, fees, allowed ratios and lags are plausible round figures,
not statistics. Everything here is data: the generator in ``clinic*.py`` decides how it is used.
"""

from __future__ import annotations

from typing import NamedTuple

# --- problems -------------------------------------------------------------------------------


class ChronicProblem(NamedTuple):
    """A chronic condition and its prevalence per age band (<18, 18-49, 50-64, 65+)."""

    icd10: str
    name: str
    snomed: str
    prevalence: tuple[float, float, float, float]


# fmt: off
CHRONIC_PROBLEMS: tuple[ChronicProblem, ...] = (
    ChronicProblem("I10", "Essential (primary) hypertension", "59621000", (0, 0.12, 0.35, 0.6)),
    ChronicProblem("E78.5", "Hyperlipidemia, unspecified", "55822004", (0, 0.1, 0.3, 0.45)),
    ChronicProblem("E11.9", "Type 2 diabetes mellitus without complications", "44054006",
        (0.005, 0.05, 0.15, 0.22)),
    ChronicProblem("R73.03", "Prediabetes", "714628002", (0, 0.08, 0.15, 0.15)),
    ChronicProblem("E66.9", "Obesity, unspecified", "414916001", (0.12, 0.25, 0.3, 0.25)),
    ChronicProblem("J45.909", "Unspecified asthma, uncomplicated", "195967001",
        (0.09, 0.08, 0.07, 0.06)),
    ChronicProblem("F41.1", "Generalized anxiety disorder", "21897009", (0.03, 0.1, 0.08, 0.05)),
    ChronicProblem("F32.9", "Major depressive disorder, single episode, unspecified", "35489007",
        (0.02, 0.08, 0.08, 0.06)),
    ChronicProblem("K21.9", "Gastro-esophageal reflux disease without esophagitis", "235595009",
        (0.01, 0.08, 0.14, 0.16)),
    ChronicProblem("E03.9", "Hypothyroidism, unspecified", "40930008", (0.005, 0.04, 0.08, 0.12)),
    ChronicProblem("J30.9", "Allergic rhinitis, unspecified", "61582004", (0.1, 0.15, 0.12, 0.08)),
    ChronicProblem("G43.909", "Migraine, unspecified, not intractable, without status migrainosus",
        "37796009", (0.02, 0.08, 0.05, 0.02)),
    ChronicProblem("M17.9", "Osteoarthritis of knee, unspecified", "239873007",
        (0, 0.02, 0.1, 0.25)),
    ChronicProblem("N18.30", "Chronic kidney disease, stage 3 unspecified", "433144002",
        (0, 0.005, 0.04, 0.12)),
    ChronicProblem("I48.91", "Unspecified atrial fibrillation", "49436004", (0, 0.002, 0.02, 0.08)),
    ChronicProblem("J44.9", "Chronic obstructive pulmonary disease, unspecified", "13645005",
        (0, 0.01, 0.05, 0.1)),
    ChronicProblem("E55.9", "Vitamin D deficiency, unspecified", "34713006",
        (0.02, 0.06, 0.08, 0.08)),
    ChronicProblem("F90.9", "Attention-deficit hyperactivity disorder, unspecified type",
        "406506008", (0.08, 0.03, 0.005, 0)),
    ChronicProblem("L20.9", "Atopic dermatitis, unspecified", "24079001", (0.1, 0.03, 0.02, 0.01)),
    ChronicProblem("M54.50", "Low back pain, unspecified", "279039007", (0.01, 0.08, 0.1, 0.1)),
)
# fmt: on


class AcuteProblem(NamedTuple):
    """A self-limited condition diagnosed at a sick visit, with the chief complaint it causes."""

    icd10: str
    name: str
    snomed: str
    complaint: str
    child_weight: float
    adult_weight: float


# fmt: off
ACUTE_PROBLEMS: tuple[AcuteProblem, ...] = (
    AcuteProblem("J06.9", "Acute upper respiratory infection, unspecified", "54150009",
        "Congestion, sore throat and cough for 3 days", 5, 5),
    AcuteProblem("J02.9", "Acute pharyngitis, unspecified", "363746003", "Sore throat and fever",
        3, 2),
    AcuteProblem("J01.90", "Acute sinusitis, unspecified", "15805002",
        "Facial pressure and nasal congestion for 10 days", 1, 3),
    AcuteProblem("N39.0", "Urinary tract infection, site not specified", "68566005",
        "Burning with urination", 1, 3),
    AcuteProblem("H66.90", "Otitis media, unspecified, unspecified ear", "65363002", "Ear pain", 4,
        0.5),
    AcuteProblem("S93.409A",
        "Sprain of unspecified ligament of unspecified ankle, initial encounter", "44465007",
        "Ankle pain after a fall", 1, 1.5),
    AcuteProblem("J20.9", "Acute bronchitis, unspecified", "10509002", "Productive cough", 1, 2),
    AcuteProblem("A09", "Infectious gastroenteritis and colitis, unspecified", "25374005",
        "Vomiting and diarrhea since yesterday", 2, 1),
    AcuteProblem("L03.90", "Cellulitis, unspecified", "128045006", "Red, painful skin", 0.5, 1),
    AcuteProblem("B34.9", "Viral infection, unspecified", "34014006", "Fever and body aches", 3, 2),
)
# fmt: on

# Encounter diagnoses for visits that are not about a problem (ICD-10 Z codes).
ADULT_EXAM_ICD10 = (
    "Z00.00",
    "Encounter for general adult medical examination without abnormal findings",
)
CHILD_EXAM_ICD10 = (
    "Z00.129",
    "Encounter for routine child health examination without abnormal findings",
)
IMMUNIZATION_ICD10 = ("Z23", "Encounter for immunization")

# --- medications ----------------------------------------------------------------------------


class Drug(NamedTuple):
    """One RxNorm clinical drug with a typical prescription."""

    rxnorm: str
    name: str
    dose: str
    dose_units: str
    route: str
    frequency: str
    sig: str
    dispense: int
    refills: int
    prn: bool


_DAILY = "Take 1 tablet by mouth once daily"
# fmt: off
DRUGS: dict[str, Drug] = {
    "lisinopril": Drug("314076", "lisinopril 10 MG Oral Tablet", "10", "mg", "oral", "once daily",
        _DAILY, 90, 3, False),
    "amlodipine": Drug("197361", "amlodipine 5 MG Oral Tablet", "5", "mg", "oral", "once daily",
        _DAILY, 90, 3, False),
    "hctz": Drug("310798", "hydrochlorothiazide 25 MG Oral Tablet", "25", "mg", "oral",
        "once daily", _DAILY, 90, 3, False),
    "atorvastatin": Drug("617310", "atorvastatin 20 MG Oral Tablet", "20", "mg", "oral",
        "once daily at bedtime", "Take 1 tablet by mouth at bedtime", 90, 3, False),
    "metformin": Drug("861007", "metformin hydrochloride 500 MG Oral Tablet", "500", "mg", "oral",
        "twice daily", "Take 1 tablet by mouth twice daily with meals", 180, 3, False),
    "albuterol": Drug("745679", "albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", "2", "puffs",
        "inhalation", "every 4-6 hours as needed",
        "Inhale 2 puffs every 4-6 hours as needed for wheezing", 1, 2, True),
    "sertraline": Drug("312940", "sertraline 50 MG Oral Tablet", "50", "mg", "oral", "once daily",
        _DAILY, 30, 5, False),
    "omeprazole": Drug("198053", "omeprazole 20 MG Delayed Release Oral Capsule", "20", "mg",
        "oral", "once daily before breakfast", "Take 1 capsule by mouth before breakfast", 90, 3,
        False),
    "levothyroxine": Drug("966222", "levothyroxine sodium 0.05 MG Oral Tablet", "50", "mcg",
        "oral", "once daily", "Take 1 tablet by mouth every morning on an empty stomach", 90, 3,
        False),
    "cetirizine": Drug("1014678", "cetirizine hydrochloride 10 MG Oral Tablet", "10", "mg", "oral",
        "once daily", _DAILY, 30, 11, False),
    "sumatriptan": Drug("313163", "sumatriptan 50 MG Oral Tablet", "50", "mg", "oral",
        "at migraine onset", "Take 1 tablet at onset of migraine; may repeat once after 2 hours",
        9, 2, True),
    "ibuprofen": Drug("197806", "ibuprofen 600 MG Oral Tablet", "600", "mg", "oral",
        "every 8 hours as needed",
        "Take 1 tablet by mouth every 8 hours as needed for pain with food", 30, 0, True),
    "apixaban": Drug("1364445", "apixaban 5 MG Oral Tablet", "5", "mg", "oral", "twice daily",
        "Take 1 tablet by mouth twice daily", 180, 3, False),
    "metoprolol": Drug("866427", "metoprolol succinate 25 MG 24HR Extended Release Oral Tablet",
        "25", "mg", "oral", "once daily", _DAILY, 90, 3, False),
    "tiotropium": Drug("1552002", "tiotropium 0.0025 MG/ACTUAT Inhalation Spray", "2", "puffs",
        "inhalation", "once daily", "Inhale 2 puffs once daily", 1, 5, False),
    "vitamin_d": Drug("636676", "cholecalciferol 1000 UNT Oral Tablet", "1000", "units", "oral",
        "once daily", _DAILY, 90, 3, False),
    "methylphenidate": Drug("1091170",
        "methylphenidate hydrochloride 18 MG Extended Release Oral Tablet", "18", "mg", "oral",
        "once daily in the morning", "Take 1 tablet by mouth every morning", 30, 0, False),
    "hydrocortisone_cream": Drug("106258", "hydrocortisone 10 MG/ML Topical Cream", "1",
        "application", "topical", "twice daily", "Apply a thin layer to affected skin twice daily",
        1, 1, True),
    "amoxicillin": Drug("308191", "amoxicillin 500 MG Oral Capsule", "500", "mg", "oral",
        "three times daily", "Take 1 capsule by mouth three times daily for 10 days", 30, 0, False),
    "azithromycin": Drug("308460", "azithromycin 250 MG Oral Tablet", "250", "mg", "oral",
        "once daily", "Take 2 tablets on day 1, then 1 tablet daily for 4 days", 6, 0, False),
    "nitrofurantoin": Drug("1648755", "nitrofurantoin 100 MG Oral Capsule", "100", "mg", "oral",
        "twice daily", "Take 1 capsule by mouth twice daily for 5 days", 10, 0, False),
    "cephalexin": Drug("309114", "cephalexin 500 MG Oral Capsule", "500", "mg", "oral",
        "four times daily", "Take 1 capsule by mouth four times daily for 7 days", 28, 0, False),
    "benzonatate": Drug("197431", "benzonatate 100 MG Oral Capsule", "100", "mg", "oral",
        "three times daily as needed",
        "Take 1 capsule by mouth three times daily as needed for cough", 21, 0, True),
    "ondansetron": Drug("312086", "ondansetron 4 MG Disintegrating Oral Tablet", "4", "mg", "oral",
        "every 8 hours as needed",
        "Dissolve 1 tablet on tongue every 8 hours as needed for nausea", 10, 0, True),
}
# fmt: on

# Which drugs treat which problem (first one is the usual first line).
PROBLEM_DRUGS: dict[str, tuple[str, ...]] = {
    "I10": ("lisinopril", "amlodipine", "hctz"),
    "E78.5": ("atorvastatin",),
    "E11.9": ("metformin",),
    "J45.909": ("albuterol",),
    "F41.1": ("sertraline",),
    "F32.9": ("sertraline",),
    "K21.9": ("omeprazole",),
    "E03.9": ("levothyroxine",),
    "J30.9": ("cetirizine",),
    "G43.909": ("sumatriptan",),
    "M17.9": ("ibuprofen",),
    "I48.91": ("apixaban", "metoprolol"),
    "J44.9": ("tiotropium", "albuterol"),
    "E55.9": ("vitamin_d",),
    "F90.9": ("methylphenidate",),
    "L20.9": ("hydrocortisone_cream",),
    "M54.50": ("ibuprofen",),
    "J02.9": ("amoxicillin",),
    "J01.90": ("amoxicillin",),
    "H66.90": ("amoxicillin",),
    "J20.9": ("benzonatate", "azithromycin"),
    "N39.0": ("nitrofurantoin",),
    "L03.90": ("cephalexin",),
    "A09": ("ondansetron",),
    "S93.409A": ("ibuprofen",),
}

# --- allergies ------------------------------------------------------------------------------


class Allergen(NamedTuple):
    """An allergen: SNOMED allergy concept (may be empty) and RxNorm ingredient for drugs."""

    description: str
    snomed: str
    rxnorm: str
    weight: float


ALLERGENS: tuple[Allergen, ...] = (
    Allergen("Penicillin", "91936005", "7980", 10),
    Allergen("Sulfamethoxazole", "", "10180", 5),
    Allergen("Amoxicillin", "", "723", 3),
    Allergen("Codeine", "", "2670", 3),
    Allergen("Aspirin", "293586001", "1191", 2),
    Allergen("Ibuprofen", "", "5640", 2),
    Allergen("Peanut", "91935009", "", 3),
    Allergen("Shellfish", "300913006", "", 3),
    Allergen("Latex", "300916003", "", 2),
    Allergen("Bee venom", "424213003", "", 1.5),
    Allergen("Egg", "91930004", "", 1),
)

# (reaction text, SNOMED reaction code from the Allergy schema's enum, severity weight)
REACTIONS: tuple[tuple[str, str, float], ...] = (
    ("Hives", "247472004", 10),
    ("Rash", "271807003", 10),
    ("Swelling", "65124004", 4),
    ("Nausea", "422587007", 4),
    ("Shortness of breath", "267036007", 2),
    ("Anaphylaxis", "39579001", 1),
    ("Cough", "49727002", 1),
    ("Nasal congestion", "68235000", 1),
)

# --- vitals and labs ------------------------------------------------------------------------


class VitalSign(NamedTuple):
    """A vital sign as LOINC names it, with the UCUM unit the sandbox reports it in."""

    field: str
    loinc: str
    name: str
    unit: str


# Units are UCUM print symbols, matching the LOINC observations; DrChrono's ``*_units`` fields
# carry the unit only for height, weight, temperature and head circumference.
VITAL_SIGNS: tuple[VitalSign, ...] = (
    VitalSign("height", "8302-2", "Body height", "in"),
    VitalSign("weight", "29463-7", "Body weight", "lb"),
    VitalSign("bmi", "39156-5", "Body mass index (BMI) [Ratio]", "kg/m2"),
    VitalSign("temperature", "8310-5", "Body temperature", "°F"),
    VitalSign("blood_pressure_1", "8480-6", "Systolic blood pressure", "mm[Hg]"),
    VitalSign("blood_pressure_2", "8462-4", "Diastolic blood pressure", "mm[Hg]"),
    VitalSign("pulse", "8867-4", "Heart rate", "/min"),
    VitalSign("respiratory_rate", "9279-1", "Respiratory rate", "/min"),
    VitalSign(
        "oxygen_saturation", "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"
    ),
    VitalSign("pain", "72514-3", "Pain severity - 0-10 verbal numeric rating", "{score}"),
    VitalSign("head_circumference", "9843-4", "Head Occipital-frontal circumference", "cm"),
)
HEIGHT_UNITS = "in"
WEIGHT_UNITS = "lb"
TEMPERATURE_UNITS = "°F"
HEAD_CIRCUMFERENCE_UNITS = "cm"

# SNOMED smoking-status codes from the vitals schema's enum with adult prevalence weights.
SMOKING_STATUSES: tuple[tuple[str, float], ...] = (
    ("266919005", 62),  # never smoker
    ("8517006", 20),  # ex-smoker
    ("449868002", 9),  # current every day smoker
    ("428041000124106", 4),  # current some day smoker
    ("266927001", 5),  # unknown if ever smoked
)


class LabAnalyte(NamedTuple):
    """One LOINC result with unit, adult reference range and display decimals."""

    loinc: str
    name: str
    unit: str
    low: float
    high: float
    decimals: int


class LabPanel(NamedTuple):
    """An orderable test (LOINC panel code) and the analytes it reports."""

    code: str
    name: str
    specimen: str
    analytes: tuple[LabAnalyte, ...]


_GLUCOSE = LabAnalyte("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, 0)
_BUN = LabAnalyte("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20, 0)
_CREAT = LabAnalyte("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 2)
_NA = LabAnalyte("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145, 0)
_K = LabAnalyte("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1)
_CL = LabAnalyte("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107, 0)
_CO2 = LabAnalyte(
    "2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22, 29, 0
)
_CA = LabAnalyte("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3, 1)
_EGFR = LabAnalyte(
    "62238-1",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by Creatinine-based formula (CKD-EPI)",
    "mL/min/{1.73_m2}",
    60,
    120,
    0,
)
_ALT = LabAnalyte(
    "1742-6",
    "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
    "U/L",
    7,
    56,
    0,
)
_AST = LabAnalyte(
    "1920-8",
    "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
    "U/L",
    10,
    40,
    0,
)

LAB_PANELS: dict[str, LabPanel] = {
    "bmp": LabPanel(
        "51990-0",
        "Basic metabolic panel - Blood",
        "Serum",
        (_GLUCOSE, _BUN, _CREAT, _NA, _K, _CL, _CO2, _CA, _EGFR),
    ),
    "cmp": LabPanel(
        "24323-8",
        "Comprehensive metabolic panel - Serum or Plasma",
        "Serum",
        (_GLUCOSE, _BUN, _CREAT, _NA, _K, _CL, _CO2, _CA, _EGFR, _ALT, _AST),
    ),
    "lipid": LabPanel(
        "57698-3",
        "Lipid panel with direct LDL - Serum or Plasma",
        "Serum",
        (
            LabAnalyte(
                "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 100, 199, 0
            ),
            LabAnalyte(
                "2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 0, 149, 0
            ),
            LabAnalyte(
                "2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, 90, 0
            ),
            LabAnalyte(
                "13457-7",
                "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
                "mg/dL",
                0,
                99,
                0,
            ),
        ),
    ),
    "a1c": LabPanel(
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "Whole blood",
        (LabAnalyte("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 1),),
    ),
    "cbc": LabPanel(
        "58410-2",
        "CBC panel - Blood by Automated count",
        "Whole blood",
        (
            LabAnalyte(
                "6690-2",
                "Leukocytes [#/volume] in Blood by Automated count",
                "10*3/uL",
                4.5,
                11.0,
                1,
            ),
            LabAnalyte("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 17.5, 1),
            LabAnalyte(
                "4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36, 50, 1
            ),
            LabAnalyte(
                "777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400, 0
            ),
        ),
    ),
    "tsh": LabPanel(
        "3016-3",
        "Thyrotropin [Units/volume] in Serum or Plasma",
        "Serum",
        (
            LabAnalyte(
                "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.5, 2
            ),
        ),
    ),
    "vitd": LabPanel(
        "62292-8",
        "25-Hydroxyvitamin D2+D3 [Mass/volume] in Serum or Plasma",
        "Serum",
        (
            LabAnalyte(
                "62292-8",
                "25-Hydroxyvitamin D2+D3 [Mass/volume] in Serum or Plasma",
                "ng/mL",
                30,
                100,
                0,
            ),
        ),
    ),
}

# Panels a problem calls for at a monitoring visit.
PROBLEM_LABS: dict[str, tuple[str, ...]] = {
    "E11.9": ("a1c", "cmp", "lipid"),
    "R73.03": ("a1c",),
    "E78.5": ("lipid", "cmp"),
    "I10": ("bmp",),
    "E03.9": ("tsh",),
    "N18.30": ("bmp", "cbc"),
    "I48.91": ("cbc", "bmp"),
    "E55.9": ("vitd",),
}
SCREENING_LABS: tuple[str, ...] = ("cbc", "cmp", "lipid")

# Reference labs a practice sends orders to (DrChrono "sublabs").
SUBLABS: tuple[tuple[int, str], ...] = ((501, "Quest Diagnostics"), (502, "Labcorp"))

# --- vaccines -------------------------------------------------------------------------------


class Vaccine(NamedTuple):
    """A vaccine by CVX with its product CPT code and the ages (years) it is given at."""

    key: str
    cvx: str
    name: str
    cpt: str
    manufacturer: str
    min_age: int
    max_age: int


# fmt: off
VACCINES: dict[str, Vaccine] = {
    "flu": Vaccine("flu", "150", "Influenza, injectable, quadrivalent, preservative free", "90686",
        "Sanofi Pasteur", 3, 120),
    "tdap": Vaccine("tdap", "115", "Tdap", "90715", "GlaxoSmithKline", 11, 120),
    "pcv20": Vaccine("pcv20", "216",
        "Pneumococcal conjugate PCV20, polysaccharide CRM197 conjugate, adjuvant, preservative free",
        "90677", "Pfizer", 65, 120),
    "zoster": Vaccine("zoster", "187", "Zoster vaccine recombinant", "90750", "GlaxoSmithKline",
        50, 120),
    "hpv": Vaccine("hpv", "165", "Human Papillomavirus 9-valent vaccine", "90651", "Merck", 9, 26),
    "mmr": Vaccine("mmr", "03", "MMR", "90707", "Merck", 1, 6),
    "dtap": Vaccine("dtap", "20", "DTaP", "90700", "Sanofi Pasteur", 0, 6),
}
# fmt: on
FLU_SEASON_MONTHS = frozenset({9, 10, 11, 12, 1})
VACCINE_SITES: tuple[str, ...] = ("Left Deltoid", "Right Deltoid", "Left Thigh", "Right Thigh")

# --- procedures and fees --------------------------------------------------------------------


class Procedure(NamedTuple):
    """A billable code: procedure_type (C CPT, H HCPCS, U custom), description, fee in cents."""

    code: str
    procedure_type: str
    description: str
    fee_cents: int


# fmt: off
_PROCEDURE_ROWS: tuple[tuple[str, str, str, int], ...] = (
    ("99202", "C", "Office or other outpatient visit, new patient, straightforward MDM", 12000),
    ("99203", "C", "Office or other outpatient visit, new patient, low MDM", 18500),
    ("99204", "C", "Office or other outpatient visit, new patient, moderate MDM", 28000),
    ("99205", "C", "Office or other outpatient visit, new patient, high MDM", 37000),
    ("99211", "C", "Office or other outpatient visit, established patient, minimal", 4500),
    ("99212", "C", "Office or other outpatient visit, established patient, straightforward MDM",
        9500),
    ("99213", "C", "Office or other outpatient visit, established patient, low MDM", 15000),
    ("99214", "C", "Office or other outpatient visit, established patient, moderate MDM", 22000),
    ("99215", "C", "Office or other outpatient visit, established patient, high MDM", 30000),
    ("99392", "C", "Periodic preventive medicine, established patient, age 1-4", 19000),
    ("99393", "C", "Periodic preventive medicine, established patient, age 5-11", 19000),
    ("99394", "C", "Periodic preventive medicine, established patient, age 12-17", 20500),
    ("99395", "C", "Periodic preventive medicine, established patient, age 18-39", 21500),
    ("99396", "C", "Periodic preventive medicine, established patient, age 40-64", 23500),
    ("99397", "C", "Periodic preventive medicine, established patient, age 65+", 25000),
    ("G0439", "H", "Annual wellness visit, subsequent", 18500),
    ("G2211", "H", "Visit complexity inherent to evaluation and management (add-on)", 2500),
    ("36415", "C", "Collection of venous blood by venipuncture", 2000),
    ("81002", "C", "Urinalysis, non-automated, without microscopy", 1500),
    ("87880", "C", "Infectious agent antigen detection, Streptococcus group A", 3500),
    ("83036", "C", "Hemoglobin; glycosylated (A1c)", 3000),
    ("93000", "C", "Electrocardiogram, routine, with interpretation and report", 7500),
    ("94010", "C", "Spirometry", 8500),
    ("96127", "C", "Brief emotional/behavioral assessment, per standardized instrument", 2500),
    ("90471", "C", "Immunization administration, first vaccine", 3000),
    ("90686", "C", "Influenza virus vaccine, quadrivalent, preservative free, IM", 4500),
    ("90715", "C", "Tdap vaccine, IM", 7500),
    ("90677", "C", "Pneumococcal conjugate vaccine, 20 valent, IM", 29000),
    ("90750", "C", "Zoster vaccine recombinant, adjuvanted, IM", 23000),
    ("90651", "C", "Human Papillomavirus vaccine, 9-valent, IM", 32000),
    ("90707", "C", "MMR vaccine, live, subcutaneous", 11000),
    ("90700", "C", "DTaP vaccine, IM", 6000),
    ("FORMS", "U", "Completion of school/sports/work forms", 2500),
)
# fmt: on
PROCEDURES: dict[str, Procedure] = {row[0]: Procedure(*row) for row in _PROCEDURE_ROWS}

# --- payers ---------------------------------------------------------------------------------


class Payer(NamedTuple):
    """A payer and how it behaves: allowed share of billed, denial and rejection rates,
    days to pay, and what the patient owes (copay in cents or coinsurance per mille)."""

    key: str
    name: str
    payer_id: str
    plan_name: str
    plan_type: str
    state: str
    allowed_permille: int
    denial_rate: float
    reject_rate: float
    pay_lag_days: int
    copay_cents: int
    coinsurance_permille: int


SELF_PAY = "self_pay"
WORKERS_COMP = "workers_comp"
MEDIGAP = "medigap"
# fmt: off
PAYERS: dict[str, Payer] = {
    p.key: p
    for p in (
        Payer("medicare", "Medicare Part B", "14212", "Medicare Part B", "MB", "MA", 480, 0.045,
            0.01, 14, 0, 200),
        Payer("medicaid", "MassHealth (Medicaid)", "DMA7384", "MassHealth Standard", "MC", "MA",
            400, 0.14, 0.03, 38, 0, 0),
        Payer("bcbs", "Blue Cross Blue Shield", "SB700", "Blue Care Elect PPO", "BL", "MA", 660,
            0.04, 0.01, 21, 3000, 0),
        Payer("aetna", "Aetna", "60054", "Aetna Choice POS II", "CI", "CT", 620, 0.07, 0.015, 24,
            3500, 0),
        Payer("uhc", "UnitedHealthcare", "87726", "UnitedHealthcare Choice Plus", "CI", "MN", 600,
            0.1, 0.02, 28, 3000, 0),
        Payer("cigna", "Cigna", "62308", "Cigna Open Access Plus", "CI", "TN", 630, 0.08, 0.015,
            26, 4000, 0),
        Payer("humana", "Humana Medicare Advantage", "61101", "Humana Gold Plus HMO", "16", "KY",
            500, 0.12, 0.02, 30, 2000, 0),
        Payer(MEDIGAP, "AARP Medicare Supplement (UnitedHealthcare)", "36273",
            "Medicare Supplement Plan G", "MB", "MN", 1000, 0.02, 0.0, 12, 0, 0),
        Payer(WORKERS_COMP, "Liberty Mutual Workers Compensation", "33600",
            "Workers Compensation", "WC", "MA", 800, 0.15, 0.03, 55, 0, 0),
        Payer(SELF_PAY, "Self Pay", "", "", "", "", 1000, 0.0, 0.0, 0, 0, 0),
    )
}
# fmt: on

# Primary payer mix per age band (<18, 18-64, 65+), as relative weights.
PAYER_MIX: tuple[dict[str, float], ...] = (
    {"medicaid": 35, "bcbs": 22, "aetna": 12, "uhc": 14, "cigna": 10, SELF_PAY: 7},
    {"medicaid": 14, "bcbs": 22, "aetna": 15, "uhc": 18, "cigna": 12, SELF_PAY: 9, WORKERS_COMP: 4},
    {"medicare": 62, "humana": 22, "bcbs": 6, "aetna": 4, "uhc": 3, SELF_PAY: 3},
)
MEDIGAP_SHARE = 0.4  # Medicare patients with a supplement plan as secondary

# Extra payer-directory rows (``/api/insurances``) beyond the payers patients use.
OTHER_INSURANCES: tuple[tuple[str, str, str], ...] = (
    ("Harvard Pilgrim Health Care", "04273", "MA"),
    ("Tufts Health Plan", "04271", "MA"),
    ("Tricare East", "TREST", "VA"),
    ("Oscar Health", "OSCAR", "NY"),
    ("Ambetter from Health Net", "68069", "CA"),
    ("Anthem Blue Cross", "00040", "IN"),
    ("Kaiser Permanente", "94134", "CA"),
    ("Medicare Part B Connecticut", "13282", "CT"),
)

# --- claims ---------------------------------------------------------------------------------

# CARC codes (DrChrono ``adjustment_reason`` enum) with their standard meaning.
CONTRACTUAL_ADJUSTMENT_REASON = "45"  # charge exceeds fee schedule/maximum allowable
DENIAL_REASONS: tuple[tuple[str, str, float], ...] = (
    ("197", "Precertification/authorization/notification absent", 3),
    ("50", "Non-covered service: not deemed a medical necessity by the payer", 3),
    ("16", "Claim/service lacks information or has submission/billing error(s)", 4),
    ("27", "Expenses incurred after coverage terminated", 2),
    ("29", "The time limit for filing has expired", 1),
    ("18", "Exact duplicate claim/service", 2),
    ("96", "Non-covered charge(s)", 2),
    ("11", "The diagnosis is inconsistent with the procedure", 2),
    ("22", "This care may be covered by another payer per coordination of benefits", 1),
)
REJECTION_REASONS: tuple[tuple[str, str, float], ...] = (
    ("31", "Patient cannot be identified as our insured", 3),
    ("16", "Claim/service lacks information or has submission/billing error(s)", 4),
    ("109", "Claim/service not covered by this payer/contractor", 1),
)

# X12 835 CLP02 claim status codes used on transactions.
CLAIM_PROCESSED_PRIMARY = "1"
CLAIM_PROCESSED_SECONDARY = "2"
CLAIM_DENIED = "4"
CLAIM_FORWARDED = "19"  # processed as primary, forwarded to additional payer

# Line-item ``billing_status`` values (the BillingLineItem enum) by claim stage.
STATUS_SUBMITTED = "In Process Emdeon"
STATUSES_PENDING: tuple[str, ...] = ("In Process Payer", "Payer Acknowledged")
STATUS_PAID = "Paid in Full"
STATUS_PARTIAL = "Partially Paid"
STATUS_ERA = "ERA Received"
STATUS_COB = "Coordination of Benefits"
STATUS_DENIED = "ERA Denied"
STATUS_REJECTED = "Rejected Payer"
STATUS_INCOMPLETE = "Incomplete Information"

# Patient payment methods (CashPayment enum) with weights.
PAYMENT_METHODS: tuple[tuple[str, float], ...] = (
    ("VISA", 30),
    ("MSTR", 18),
    ("DBIT", 14),
    ("CASH", 10),
    ("AMEX", 8),
    ("CHCK", 8),
    ("DISC", 4),
    ("ONPT", 6),
    ("OTHR", 2),
)

# --- scheduling -----------------------------------------------------------------------------


class ProfileKind(NamedTuple):
    """An appointment profile: name, minutes, color, reason, and the share of visits it gets."""

    key: str
    name: str
    duration: int
    color: str
    reason: str
    online_scheduling: bool


APPOINTMENT_PROFILES: tuple[ProfileKind, ...] = (
    ProfileKind("new", "New Patient", 40, "#2E86DE", "New patient visit", True),
    ProfileKind("follow_up", "Follow-Up", 20, "#27AE60", "Follow-up visit", True),
    ProfileKind("physical", "Annual Physical", 30, "#8E44AD", "Annual preventive exam", True),
    ProfileKind("sick", "Sick Visit", 15, "#E67E22", "Acute illness", False),
    ProfileKind("chronic", "Chronic Care", 30, "#C0392B", "Chronic disease management", False),
    ProfileKind("telehealth", "Telehealth", 15, "#16A085", "Video visit", True),
    ProfileKind("nurse", "Nurse Visit", 15, "#7F8C8D", "Immunization / lab draw", False),
)

SPECIALTIES: tuple[str, ...] = ("Family Medicine", "Internal Medicine", "Pediatrics")
PEDIATRICS = "Pediatrics"

CHIEF_COMPLAINTS: dict[str, tuple[str, ...]] = {
    "new": (
        "Establish care",
        "Establish care; transferring from previous PCP",
        "New patient, annual check-up",
    ),
    "follow_up": ("Follow-up on recent visit", "Medication follow-up", "Lab results review"),
    "physical": ("Annual physical", "Well visit", "Preventive exam"),
    "chronic": (
        "Chronic disease management",
        "Blood pressure and diabetes follow-up",
        "Medication refill and review",
    ),
    "telehealth": (
        "Video visit: medication question",
        "Video visit: symptom check",
        "Video visit: results review",
    ),
    "nurse": ("Vaccine administration", "Blood draw", "Blood pressure check"),
}
EXAM_FINDINGS: tuple[str, ...] = (
    "Well-appearing, no acute distress. Lungs clear. Heart regular rate and rhythm.",
    "Alert and oriented. Normal heart and lung exam. Abdomen soft, non-tender.",
    "No acute distress. HEENT unremarkable. No edema.",
    "Vitals reviewed. Exam unremarkable except as noted in HPI.",
)
PLANS: tuple[str, ...] = (
    "Continue current medications. Return in 3 months.",
    "Labs ordered. Follow up after results.",
    "Supportive care, fluids and rest. Return if worse.",
    "Lifestyle counselling given. Recheck at next visit.",
    "Medication adjusted as discussed. Follow up in 4-6 weeks.",
)
