"""The Clinical page's write controls: status changes and the "add" forms.

A status change is queued by its button's callback with the record **as the user saw it** (the
callback's arguments are bound when the button is drawn) and sent on the next run as
``expected=``, so a record changed upstream in between is refused with a "reload" message
instead of overwriting someone else's change. Forms are checked by ``ui.clinical_rules`` before
anything is sent; local and upstream field errors are kept for one run and drawn under the
field they concern. Outcomes are shown at the top of the section they belong to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal, TypeVar

import streamlit as st

from ehr.errors import ChangedUpstreamError, UnsupportedOperationError, ValidationFailedError
from ehr.models import Patient
from ehr.models_clinical import Allergy, ClinicalStatus, Medication, Problem
from ehr.services import clinical
from ehr.services.gateway import Gateway
from ui import clinical_rules as rules
from ui.clinical_rules import FIELD_LABELS, MAX_CHARS, SEVERITIES, STATUS_LABELS, Checked

__all__ = [
    "SUPPORTED_STATUSES",
    "Kind",
    "StatusChange",
    "add_allergy_form",
    "add_medication_form",
    "add_problem_form",
    "apply_pending",
    "reload_chart",
    "show_flash",
    "status_control",
]

Kind = Literal["problem", "medication", "allergy"]
Record = Problem | Medication | Allergy
# DrChrono has no "resolved" for medications and allergies (ehr.drchrono.backend); offering it
# would only earn a refusal. The refusal is still handled, for other backends.
SUPPORTED_STATUSES: Final[dict[Kind, tuple[ClinicalStatus, ...]]] = {
    "problem": (ClinicalStatus.ACTIVE, ClinicalStatus.INACTIVE, ClinicalStatus.RESOLVED),
    "medication": (ClinicalStatus.ACTIVE, ClinicalStatus.INACTIVE),
    "allergy": (ClinicalStatus.ACTIVE, ClinicalStatus.INACTIVE),
}
CHART_RESOURCES: Final = ("problem", "medication", "allergy")
EARLIEST_DATE: Final = date(1900, 1, 1)
FORM_ERROR: Final = "_form"  # errors not tied to one field

_PENDING: Final = "clinical.pending"
_FLASH: Final = "clinical.flash"
_ERRORS: Final = "clinical.errors"

D = TypeVar("D")
R = TypeVar("R", Problem, Medication, Allergy)


@dataclass(frozen=True)
class StatusChange:
    """A status change the user asked for, with the record as it was shown to them."""

    kind: Kind
    record: Record
    status: ClinicalStatus


# ----------------------------------------------------------------------------- outcomes


def _flash(kind: Kind, message: str) -> None:
    st.session_state[f"{_FLASH}.{kind}"] = message


def show_flash(kind: Kind) -> None:
    """Show (once) the confirmation left by this section's last action."""
    message = st.session_state.pop(f"{_FLASH}.{kind}", None)
    if isinstance(message, str):
        st.success(message, icon=":material/check_circle:")


def reload_chart(gw: Gateway) -> None:
    """Forget this session's cached chart lists, so the next read is fresh (a callback)."""
    gw.cache.invalidate(CHART_RESOURCES)


# ----------------------------------------------------------------------------- status changes


def _queue(change: StatusChange) -> None:
    st.session_state[_PENDING] = change


def _send(gw: Gateway, change: StatusChange) -> None:
    record, status = change.record, change.status
    if isinstance(record, Problem):
        clinical.update_problem_status(gw, record.id, status, expected=record)
    elif isinstance(record, Medication):
        clinical.update_medication_status(gw, record.id, status, expected=record)
    else:
        clinical.update_allergy_status(gw, record.id, status, expected=record)


def apply_pending(gw: Gateway, kind: Kind) -> None:
    """Send this section's queued status change, if any, and say how it went.

    A change upstream since the chart was read, or a status the EHR cannot record, is shown
    here; any other error goes on to the page's ``guarded`` block.
    """
    change = st.session_state.get(_PENDING)
    if not isinstance(change, StatusChange) or change.kind != kind:
        return
    del st.session_state[_PENDING]
    label = STATUS_LABELS[change.status]
    try:
        with st.spinner("Saving the status…"):
            _send(gw, change)
    except ChangedUpstreamError as exc:
        st.warning(
            f"This {kind} changed in the EHR after the chart was loaded, so it was not marked "
            f"{label.lower()}. Reload the chart, check the entry, and change it again if still "
            f"needed. (ref {exc.correlation_id})",
            icon=":material/sync_problem:",
        )
        st.button(
            "Reload the chart",
            icon=":material/refresh:",
            key=f"clinical.reload.{kind}",
            on_click=reload_chart,
            args=(gw,),
        )
        return
    except UnsupportedOperationError as exc:
        st.error(
            f"The EHR cannot mark a {kind} as {label.lower()}. Nothing was changed; choose "
            f"another status. (ref {exc.correlation_id})",
            icon=":material/block:",
        )
        return
    st.success(f"The {kind} is now {label.lower()}.", icon=":material/check_circle:")


def status_control(kind: Kind, records: Sequence[R], label_of: Callable[[R], str]) -> None:
    """Pick one of ``records`` and a new status; the button queues the change."""
    if not records:
        return
    by_id = {r.id: r for r in records}
    prefix = f"clinical.status.{kind}"
    article = "an" if kind[0] in "aeiou" else "a"
    with st.expander(f"Change {article} {kind}'s status", icon=":material/edit_note:"):
        pick, new, save = st.columns([3, 2, 1], vertical_alignment="bottom")
        chosen = pick.selectbox(
            kind.capitalize(), list(by_id), format_func=lambda i: label_of(by_id[i]), key=prefix
        )
        status = new.selectbox(
            "New status",
            SUPPORTED_STATUSES[kind],
            format_func=lambda s: STATUS_LABELS[s],
            key=f"{prefix}.value",
        )
        record = by_id.get(chosen) if chosen is not None else None
        unchanged = record is None or status is None or record.status == status
        save.button(
            "Update status",
            key=f"{prefix}.save",
            disabled=unchanged,
            on_click=_queue,
            args=(StatusChange(kind, record, status),) if record and status else None,
            width="stretch",
        )
        if record is not None and unchanged:
            st.caption("Choose a status different from the current one.")


# ----------------------------------------------------------------------------- add forms


def _errors(kind: Kind) -> dict[str, str]:
    """The errors of this form's last submission, shown once (the next run starts clean)."""
    errors = st.session_state.pop(f"{_ERRORS}.{kind}", None)
    return dict(errors) if isinstance(errors, dict) else {}


def _field_error(errors: Mapping[str, str], name: str) -> None:
    if name in errors:
        st.error(errors[name], icon=":material/error:")


def _forget(prefix: str) -> None:
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]


def _upstream_errors(exc: ValidationFailedError) -> dict[str, str]:
    errors = {name: " ".join(messages) for name, messages in exc.field_errors.items()}
    general = exc.details.get("non_field_errors")
    text = " ".join(general) if isinstance(general, list) else ""
    if text or not errors:
        errors[FORM_ERROR] = f"{text or exc.message} (ref {exc.correlation_id})"
    return errors


def _submit(
    gw: Gateway,
    kind: Kind,
    checked: Checked[D],
    create: Callable[[Gateway, D], object],
    done: str,
) -> None:
    """Send a checked draft; on any problem keep the errors for the next run and rerun."""
    key, prefix = f"{_ERRORS}.{kind}", f"clinical.add_{kind}."
    draft = checked.draft
    if draft is None:
        st.session_state[key] = checked.errors
        st.rerun()
        return
    try:
        with st.spinner(f"Adding the {kind}…"):
            create(gw, draft)
    except ValidationFailedError as exc:
        st.session_state[key] = _upstream_errors(exc)
        st.rerun()
        return
    _forget(prefix)  # the form starts empty again
    _flash(kind, done)
    st.rerun()


def _doctor_select(prefix: str, doctors: Mapping[int, str], patient: Patient) -> int | None:
    ids = list(doctors)
    doctor = patient.doctor_id
    default = ids.index(doctor) if doctor is not None and doctor in doctors else None
    chosen = st.selectbox(
        FIELD_LABELS["doctor_id"],
        ids,
        index=default,
        format_func=lambda d: doctors[d],
        placeholder="Choose a doctor",
        key=f"{prefix}.doctor_id",
    )
    return chosen if isinstance(chosen, int) else None


def _text(prefix: str, name: str, errors: Mapping[str, str], placeholder: str = "") -> str:
    value = st.text_input(
        FIELD_LABELS[name],
        max_chars=MAX_CHARS[name],
        key=f"{prefix}.{name}",
        placeholder=placeholder or None,
    )
    _field_error(errors, name)
    return value


def _notes(prefix: str, errors: Mapping[str, str]) -> str:
    value = st.text_area(
        FIELD_LABELS["notes"], max_chars=MAX_CHARS["notes"], height=80, key=f"{prefix}.notes"
    )
    _field_error(errors, "notes")
    return value


def _date(
    prefix: str, name: str, errors: Mapping[str, str], *, today: date, born: date | None
) -> date | None:
    value = st.date_input(
        FIELD_LABELS[name],
        value=None,
        min_value=born or EARLIEST_DATE,
        max_value=today,
        format="MM/DD/YYYY",
        key=f"{prefix}.{name}",
    )
    _field_error(errors, name)
    return value if isinstance(value, date) else None


def add_problem_form(
    gw: Gateway, patient: Patient, doctors: Mapping[int, str], *, today: date
) -> None:
    """Add a problem (name required; ICD-10 code checked for shape)."""
    prefix, errors = "clinical.add_problem", _errors("problem")
    with (
        st.expander("Add a problem", icon=":material/add:", expanded=bool(errors)),
        st.form(prefix, border=False),
    ):
        _field_error(errors, FORM_ERROR)
        name_col, code_col = st.columns([3, 1])
        with name_col:
            name = _text(
                prefix, "name", errors, placeholder="e.g. Essential (primary) hypertension"
            )
        with code_col:
            code = _text(prefix, "icd_code", errors, placeholder="e.g. I10")
        onset_col, doctor_col = st.columns(2)
        with onset_col:
            onset = _date(prefix, "date_onset", errors, today=today, born=patient.date_of_birth)
        with doctor_col:
            doctor = _doctor_select(prefix, doctors, patient)
            _field_error(errors, "doctor_id")
        notes = _notes(prefix, errors)
        submitted = st.form_submit_button("Add problem", type="primary")
    if submitted:
        checked = rules.check_problem(
            patient.id,
            doctor_id=doctor,
            name=name,
            icd_code=code,
            date_onset=onset,
            notes=notes,
            today=today,
            born=patient.date_of_birth,
        )
        _submit(gw, "problem", checked, clinical.create_problem, "Problem added.")


def add_medication_form(
    gw: Gateway, patient: Patient, doctors: Mapping[int, str], *, today: date
) -> None:
    """Add a medication (name and frequency required; a dose needs its units)."""
    prefix, errors = "clinical.add_medication", _errors("medication")
    with (
        st.expander("Add a medication", icon=":material/add:", expanded=bool(errors)),
        st.form(prefix, border=False),
    ):
        _field_error(errors, FORM_ERROR)
        name = _text(prefix, "name", errors, placeholder="e.g. lisinopril 10 MG Oral Tablet")
        dose_col, units_col, route_col, freq_col = st.columns([1, 1, 1, 2])
        with dose_col:
            dose = _text(prefix, "dosage_quantity", errors, placeholder="10")
        with units_col:
            units = _text(prefix, "dosage_units", errors, placeholder="mg")
        with route_col:
            route = _text(prefix, "route", errors, placeholder="oral")
        with freq_col:
            frequency = _text(prefix, "frequency", errors, placeholder="once daily")
        start_col, why_col, doctor_col = st.columns(3)
        with start_col:
            started = _date(
                prefix, "date_started_taking", errors, today=today, born=patient.date_of_birth
            )
        with why_col:
            indication = _text(prefix, "indication", errors)
        with doctor_col:
            doctor = _doctor_select(prefix, doctors, patient)
            _field_error(errors, "doctor_id")
        submitted = st.form_submit_button("Add medication", type="primary")
    if submitted:
        checked = rules.check_medication(
            patient.id,
            doctor_id=doctor,
            name=name,
            dosage_quantity=dose,
            dosage_units=units,
            route=route,
            frequency=frequency,
            date_started_taking=started,
            indication=indication,
            today=today,
            born=patient.date_of_birth,
        )
        _submit(gw, "medication", checked, clinical.create_medication, "Medication added.")


def add_allergy_form(
    gw: Gateway, patient: Patient, doctors: Mapping[int, str], recorded: Sequence[str] = ()
) -> None:
    """Add an allergy (allergen and reaction required, not one of ``recorded``)."""
    prefix, errors = "clinical.add_allergy", _errors("allergy")
    with (
        st.expander("Add an allergy", icon=":material/add:", expanded=bool(errors)),
        st.form(prefix, border=False),
    ):
        _field_error(errors, FORM_ERROR)
        what_col, reaction_col = st.columns(2)
        with what_col:
            allergen = _text(prefix, "description", errors, placeholder="e.g. Penicillin")
        with reaction_col:
            reaction = _text(prefix, "reaction", errors, placeholder="e.g. Hives")
        severity_col, doctor_col = st.columns(2)
        with severity_col:
            severity = st.selectbox(
                FIELD_LABELS["severity"],
                SEVERITIES,
                index=None,
                format_func=str.capitalize,
                placeholder="Not recorded",
                key=f"{prefix}.severity",
            )
            _field_error(errors, "severity")
        with doctor_col:
            doctor = _doctor_select(prefix, doctors, patient)
            _field_error(errors, "doctor_id")
        notes = _notes(prefix, errors)
        submitted = st.form_submit_button("Add allergy", type="primary")
    if submitted:
        checked = rules.check_allergy(
            patient.id,
            doctor_id=doctor,
            description=allergen,
            reaction=reaction,
            severity=severity,
            notes=notes,
            recorded=recorded,
        )
        _submit(gw, "allergy", checked, clinical.create_allergy, "Allergy added.")
