"""What the patient search, register and edit forms accept, checked before any EHR request.

Pure functions (no Streamlit), so the rules are tested directly and a refused value never costs
an upstream call (SECURITY.md 3.1). Registering builds a ``PatientDraft``; editing compares the
form with the patient *as opened* and keeps only the fields the user changed, so an edit sends
those and nothing else (``PatientChanges``). Limits are ours where DrChrono publishes none:
generous for real names and addresses, tight enough to refuse pasted junk.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, cast

from ehr.models import Gender, Patient, PatientChanges, PatientDraft

__all__ = [
    "EARLIEST_BIRTH_DATE",
    "FIELD_LABELS",
    "Checked",
    "PatientForm",
    "SearchQuery",
    "changes_from",
    "check_form",
    "check_search",
    "draft_from",
    "form_from_patient",
]

FIELD_LABELS: Final[dict[str, str]] = {
    "first_name": "First name",
    "middle_name": "Middle name",
    "last_name": "Last name",
    "date_of_birth": "Date of birth",
    "gender": "Gender",
    "doctor_id": "Doctor",
    "chart_id": "Chart id",
    "email": "Email",
    "home_phone": "Home phone",
    "cell_phone": "Cell phone",
    "address": "Address",
    "city": "City",
    "state": "State",
    "zip_code": "ZIP code",
}
# Longest value per text field: real names fit in 50, e-mail addresses in RFC 5321's 254.
MAX_CHARS: Final[dict[str, int]] = {
    "first_name": 50,
    "middle_name": 50,
    "last_name": 50,
    "chart_id": 40,
    "email": 254,
    "home_phone": 25,
    "cell_phone": 25,
    "address": 200,
    "city": 100,
    "state": 2,
    "zip_code": 10,
}
TEXT_FIELDS: Final = tuple(MAX_CHARS)
REQUIRED_TEXT: Final = ("first_name", "last_name")
REQUIRED_CHOICES: Final = ("date_of_birth", "gender", "doctor_id")
# Nobody alive was born earlier; an earlier date is a typo (DESIGN: DOB not before 1900).
EARLIEST_BIRTH_DATE: Final = date(1900, 1, 1)
# A search name is one first or last name; longer input is not a name.
MAX_SEARCH_CHARS: Final = 50
# A phone number has 7 (local) to 15 (E.164) digits.
MIN_PHONE_DIGITS: Final = 7
MAX_PHONE_DIGITS: Final = 15

# Control, format (RTL override, zero-width), surrogate, private-use and unassigned characters:
# invisible or unprintable, so refused rather than stored where the next reader cannot see them.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE: Final = re.compile(r"^\+?[0-9 ().\-]+$")
_CHART_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_STATE: Final = re.compile(r"^[A-Z]{2}$")
_ZIP: Final = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")


@dataclass(frozen=True)
class PatientForm:
    """The register/edit form's values as the widgets return them (text stripped later)."""

    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    date_of_birth: date | None = None
    gender: Gender | None = None
    doctor_id: int | None = None
    chart_id: str = ""
    email: str = ""
    home_phone: str = ""
    cell_phone: str = ""
    address: str = ""
    city: str = ""
    state: str = ""
    zip_code: str = ""


@dataclass(frozen=True)
class Checked:
    """A checked form: the cleaned values and, per field name, what is wrong with it."""

    form: PatientForm
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.errors


@dataclass(frozen=True)
class SearchQuery:
    """What the user searched for; at least one criterion is set."""

    name: str | None = None
    date_of_birth: date | None = None
    chart_id: str | None = None


def _clean(value: str | None) -> str:
    return unicodedata.normalize("NFC", value or "").strip()


def _unprintable(text: str) -> bool:
    return any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in text)


def _phone_ok(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    return bool(_PHONE.match(text)) and MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS


def _text_error(name: str, text: str) -> str | None:
    label = FIELD_LABELS[name]
    if len(text) > MAX_CHARS[name]:
        return f"{label} can be at most {MAX_CHARS[name]} characters."
    if _unprintable(text):
        return f"{label} contains control or invisible characters; retype it."
    if not text:
        return f"{label} is required." if name in REQUIRED_TEXT else None
    rules: dict[str, tuple[bool, str]] = {
        "first_name": (any(ch.isalpha() for ch in text), f"{label} must contain letters."),
        "middle_name": (any(ch.isalpha() for ch in text), f"{label} must contain letters."),
        "last_name": (any(ch.isalpha() for ch in text), f"{label} must contain letters."),
        "chart_id": (
            bool(_CHART_ID.match(text)),
            "Chart id: letters, digits, dots, dashes and underscores only.",
        ),
        "email": (bool(_EMAIL.match(text)), "Enter a valid e-mail address."),
        "home_phone": (_phone_ok(text), "Enter a phone number of 7 to 15 digits."),
        "cell_phone": (_phone_ok(text), "Enter a phone number of 7 to 15 digits."),
        "state": (bool(_STATE.match(text)), "Use the two-letter state code, e.g. CA."),
        "zip_code": (bool(_ZIP.match(text)), "Enter a 5-digit ZIP code (or ZIP+4)."),
    }
    ok, message = rules.get(name, (True, ""))
    return None if ok else message


def _cleaned(form: PatientForm) -> PatientForm:
    texts: dict[str, Any] = {name: _clean(getattr(form, name)) for name in TEXT_FIELDS}
    texts["state"] = texts["state"].upper()
    return dataclasses.replace(form, **texts)


def check_form(
    form: PatientForm,
    *,
    today: date,
    doctor_ids: frozenset[int],
    baseline: PatientForm | None = None,
) -> Checked:
    """Clean and check a register form, or an edit form against ``baseline`` (as opened).

    When editing, only fields that differ from the baseline are checked (an old value the
    rules would now refuse must not block an unrelated change), and a choice that was blank
    upstream may stay blank.
    """
    clean = _cleaned(form)
    base = _cleaned(baseline) if baseline is not None else None
    errors: dict[str, str] = {}
    for name in TEXT_FIELDS:
        value = getattr(clean, name)
        if base is not None and value == getattr(base, name):
            continue
        message = _text_error(name, value)
        if message:
            errors[name] = message
    for name in REQUIRED_CHOICES:
        if getattr(clean, name) is None and (base is None or getattr(base, name) is not None):
            errors[name] = f"{FIELD_LABELS[name]} is required."
    born = clean.date_of_birth
    if born is not None and (base is None or born != base.date_of_birth):
        if born > today:
            errors["date_of_birth"] = "Date of birth cannot be in the future."
        elif born < EARLIEST_BIRTH_DATE:
            errors["date_of_birth"] = "Date of birth cannot be before 1900."
    doctor = clean.doctor_id
    new_doctor = base is None or doctor != base.doctor_id
    if doctor is not None and doctor not in doctor_ids and new_doctor:
        errors["doctor_id"] = "Choose a doctor from the list."
    return Checked(clean, errors)


def draft_from(form: PatientForm) -> PatientDraft:
    """The draft to register from a checked form (``ValueError`` if a required value is missing)."""
    if form.date_of_birth is None or form.gender is None or form.doctor_id is None:
        raise ValueError("check the form before building a draft")
    optional = {
        name: getattr(form, name) or None
        for name in TEXT_FIELDS
        if name not in ("first_name", "last_name")
    }
    return PatientDraft(
        first_name=form.first_name,
        last_name=form.last_name,
        date_of_birth=form.date_of_birth,
        gender=form.gender,
        doctor_id=form.doctor_id,
        **optional,
    )


def form_from_patient(patient: Patient) -> PatientForm:
    """The edit form's starting values: the patient as opened (unknown genders start blank)."""
    texts = {name: getattr(patient, name) or "" for name in TEXT_FIELDS}
    gender = patient.gender if isinstance(patient.gender, Gender) else None
    return PatientForm(
        date_of_birth=patient.date_of_birth, gender=gender, doctor_id=patient.doctor_id, **texts
    )


def changes_from(form: PatientForm, baseline: PatientForm) -> PatientChanges:
    """Only the fields of a checked ``form`` that differ from ``baseline`` (the patient as opened).

    A blank choice is never sent (it means "left as it was"); a cleared text field is sent
    as an empty string, which clears it upstream.
    """
    clean, base = _cleaned(form), _cleaned(baseline)
    changes: dict[str, object] = {}
    for field in dataclasses.fields(PatientForm):
        value = getattr(clean, field.name)
        if value is not None and value != getattr(base, field.name):
            changes[field.name] = value
    return cast(PatientChanges, changes)


def check_search(
    name: str, date_of_birth: date | None, chart_id: str, *, today: date
) -> tuple[SearchQuery | None, str | None]:
    """The search to run, or why not: ``(query, None)`` or ``(None, message)``."""
    term, chart = _clean(name), _clean(chart_id)
    if not (term or chart or date_of_birth):
        return None, "Enter a name, a date of birth or a chart id to search."
    if len(term) > MAX_SEARCH_CHARS or len(chart) > MAX_CHARS["chart_id"]:
        return None, f"Search terms can be at most {MAX_SEARCH_CHARS} characters."
    if _unprintable(term) or _unprintable(chart):
        return None, "The search contains control or invisible characters; retype it."
    if date_of_birth is not None and not EARLIEST_BIRTH_DATE <= date_of_birth <= today:
        return None, "Date of birth must be between 1900 and today."
    return SearchQuery(term or None, date_of_birth, chart or None), None
