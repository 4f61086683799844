"""The Patients page's write flows: register (with the duplicate check), edit and delete.

Every form is checked by ``ui.patient_rules`` before anything is sent, and upstream field errors
(``ValidationFailedError.details``) appear under the field they name. A possible duplicate is
registered only after the user ticks "This is a different person" (the service audits the
override as ``duplicate_override``). An edit sends only the fields the user changed and carries
the patient as opened, so a record changed upstream meanwhile is refused with a reload offer.
Delete is for administrators: only they see it, the service refuses everyone else anyway, and
the chart id must be typed to confirm. Nothing is half-saved: each flow is one service call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Final

import streamlit as st

from ehr.errors import (
    ChangedUpstreamError,
    DuplicatePatientError,
    EHRError,
    ValidationFailedError,
    WriteOutcomeUnknownError,
)
from ehr.models import Patient, PatientDraft
from ehr.services import patients
from ehr.services.gateway import Gateway
from ui import patients_view as view
from ui.errors import show_error
from ui.patient_rules import (
    EARLIEST_BIRTH_DATE,
    FIELD_LABELS,
    MAX_CHARS,
    PatientForm,
    changes_from,
    check_form,
    draft_from,
    form_from_patient,
)

__all__ = ["CREATE_FORM", "FieldSlots", "delete_section", "edit_section", "register_section"]

CREATE_FORM: Final = "patients.create"
_DUPLICATE: Final = "patients.duplicate"
_CONFIRM: Final = "patients.duplicate.confirm"


class FieldSlots:
    """Placeholders under each form field, where that field's error is shown."""

    def __init__(self) -> None:
        self._slots: dict[str, Any] = {}

    def add(self, name: str, column: Any) -> None:
        """Reserve the slot under field ``name`` (call right after drawing the widget)."""
        self._slots[name] = column.empty()

    def show(self, errors: Mapping[str, str]) -> list[str]:
        """Show each error under its field; returns the ones naming no field of this form."""
        rest: list[str] = []
        for name, message in errors.items():
            slot = self._slots.get(name)
            if slot is None:
                rest.append(f"{FIELD_LABELS.get(name, name.replace('_', ' '))}: {message}")
            else:
                slot.error(message, icon=":material/error:")
        return rest


def _fields(
    prefix: str, initial: PatientForm, doctors: view.Doctors, today: date
) -> tuple[PatientForm, FieldSlots]:
    """Draw the patient fields inside the current form; returns their values and error slots.

    ``initial`` is blank when registering and the patient as opened when editing. The browser's
    "(required)" checks are a convenience; ``patient_rules.check_form`` is the check.
    """
    slots = FieldSlots()
    registering = initial == PatientForm()

    def required(value: object) -> bool:
        # Registering needs every choice; an edit may leave a choice that was blank upstream.
        return registering or value is not None

    def text(column: Any, name: str, *, required: bool = False, placeholder: str = "") -> str:
        value = column.text_input(
            FIELD_LABELS[name],
            value=getattr(initial, name),
            key=f"{prefix}.{name}",
            max_chars=MAX_CHARS[name],
            required=required,
            placeholder=placeholder or None,
        )
        slots.add(name, column)
        return str(value or "")

    first, middle, last = st.columns(3)
    values: dict[str, Any] = {
        "first_name": text(first, "first_name", required=True),
        "middle_name": text(middle, "middle_name"),
        "last_name": text(last, "last_name", required=True),
    }
    born, sex, doctor = st.columns(3)
    values["date_of_birth"] = born.date_input(
        FIELD_LABELS["date_of_birth"],
        value=initial.date_of_birth,
        min_value=EARLIEST_BIRTH_DATE,
        max_value=today,
        format="MM/DD/YYYY",
        required=required(initial.date_of_birth),
        key=f"{prefix}.date_of_birth",
    )
    slots.add("date_of_birth", born)
    genders = list(view.GENDER_LABELS)
    values["gender"] = sex.selectbox(
        FIELD_LABELS["gender"],
        genders,
        index=genders.index(initial.gender) if initial.gender else None,
        format_func=view.GENDER_LABELS.__getitem__,
        placeholder="Choose…",
        required=required(initial.gender),
        key=f"{prefix}.gender",
    )
    slots.add("gender", sex)
    choices = list(doctors.active)
    if initial.doctor_id is not None and initial.doctor_id not in doctors.active:
        choices.append(initial.doctor_id)  # a suspended doctor stays selectable on edit
    values["doctor_id"] = doctor.selectbox(
        FIELD_LABELS["doctor_id"],
        choices,
        index=choices.index(initial.doctor_id) if initial.doctor_id in choices else None,
        format_func=lambda i: doctors.names.get(i, f"Doctor {i}"),
        placeholder="Choose…",
        required=required(initial.doctor_id),
        key=f"{prefix}.doctor_id",
    )
    slots.add("doctor_id", doctor)
    chart, email = st.columns([1, 2])
    values["chart_id"] = text(chart, "chart_id", placeholder="Assigned by the EHR if blank")
    values["email"] = text(email, "email")
    home, cell = st.columns(2)
    values["home_phone"] = text(home, "home_phone")
    values["cell_phone"] = text(cell, "cell_phone")
    address, city, state, zip_code = st.columns([3, 2, 1, 1])
    values["address"] = text(address, "address")
    values["city"] = text(city, "city")
    values["state"] = text(state, "state", placeholder="CA")
    values["zip_code"] = text(zip_code, "zip_code")
    born_on = values["date_of_birth"]
    values["date_of_birth"] = born_on if isinstance(born_on, date) else None
    return PatientForm(**values), slots


def _show_upstream(exc: ValidationFailedError, slots: FieldSlots, *, tz: Any) -> None:
    """A 400 from the EHR: messages under the fields it names, the rest (and the ref) above."""
    rest = slots.show({name: " ".join(m) for name, m in exc.field_errors.items()})
    general = exc.details.get("non_field_errors")
    if isinstance(general, list):
        rest.extend(m for m in general if isinstance(m, str))
    show_error(exc, tz=tz)
    for message in rest:
        st.error(message)


# --- register ------------------------------------------------------------------------------------


def _register(
    gw: Gateway, draft: PatientDraft, slots: FieldSlots | None, *, allow_duplicate: bool, tz: Any
) -> None:
    try:
        with st.spinner("Registering the patient…"):
            created = patients.create_patient(gw, draft, allow_duplicate=allow_duplicate)
    except DuplicatePatientError:
        st.session_state[_DUPLICATE] = draft
        st.session_state.pop(_CONFIRM, None)
        st.rerun()
    except ValidationFailedError as exc:
        if slots is None:  # the override path has no fields on screen: back to the form
            st.session_state.pop(_DUPLICATE, None)
            slots = FieldSlots()
        _show_upstream(exc, slots, tz=tz)
        return
    except WriteOutcomeUnknownError as exc:
        _check_upstream_after_unclear_create(gw, draft, exc, tz=tz)
        return
    st.session_state.pop(_DUPLICATE, None)
    view.forget_keys(f"{CREATE_FORM}.")
    view.forget_keys(_CONFIRM)
    chart = f" with chart id {created.chart_id}" if created.chart_id else ""
    view.flash(f"Patient registered{chart}.")
    view.open_patient(created.id)
    st.rerun()


def _check_upstream_after_unclear_create(
    gw: Gateway, draft: PatientDraft, exc: WriteOutcomeUnknownError, *, tz: Any
) -> None:
    """The EHR may or may not have saved the patient: look before the user sends it again.

    Never resends (SECURITY.md RL-02): it searches upstream for the same last name and date
    of birth and shows what it finds, so the user opens the patient if it was created.
    """
    show_error(exc, tz=tz)
    gw.cache.invalidate(("patient",))  # the answer must come from the EHR, not the cache
    try:
        with st.spinner("Checking the EHR for the patient…"):
            found = patients.search_patients(
                gw, name=draft.last_name, date_of_birth=draft.date_of_birth
            )
    except EHRError as lookup:
        show_error(lookup, tz=tz)
        st.info("Search for the patient before registering again.")
        return
    if found.items:
        st.markdown(
            "**Already in the EHR?** These patients have the same last name and date of birth; "
            "if one is the patient you registered, the registration went through."
        )
        view.patient_table(found.items, {}, key="patients.unclear_matches")
    else:
        st.info(
            "No patient with this last name and date of birth is in the EHR: it is safe to "
            "register again."
        )


def _cancel_duplicate() -> None:
    st.session_state.pop(_DUPLICATE, None)
    st.session_state.pop(_CONFIRM, None)


def _duplicate_panel(gw: Gateway, draft: PatientDraft, doctors: view.Doctors, tz: Any) -> None:
    """Possible matches for a refused registration, and the explicit override."""
    with st.container(border=True):
        st.warning(DuplicatePatientError.default_message, icon=":material/group:")
        with st.spinner("Looking for possible matches…"):
            matches = patients.search_patients(
                gw, name=draft.last_name, date_of_birth=draft.date_of_birth
            )
        if matches.items:
            st.markdown(
                "**Possible matches** (same last name and date of birth) — select one to open it"
            )
            view.patient_table(matches.items, doctors.names, key="patients.matches")
        else:
            st.caption("The EHR found no one with the same last name and date of birth.")
        confirmed = st.checkbox("This is a different person", key=_CONFIRM)
        go, cancel = st.columns([2, 1])
        again = go.button(
            "Register as a new patient anyway",
            type="primary",
            disabled=not confirmed,
            key="patients.duplicate.register",
        )
        cancel.button("Cancel", key="patients.duplicate.cancel", on_click=_cancel_duplicate)
    if again and confirmed:
        _register(gw, draft, None, allow_duplicate=True, tz=tz)


def register_section(gw: Gateway, doctors: view.Doctors, *, today: date, tz: Any) -> None:
    """The register form (for roles that may write patients), with the duplicate check."""
    pending = st.session_state.get(_DUPLICATE)
    if isinstance(pending, PatientDraft):
        _duplicate_panel(gw, pending, doctors, tz)
    with st.form(CREATE_FORM):
        form, slots = _fields(CREATE_FORM, PatientForm(), doctors, today)
        submitted = st.form_submit_button(
            "Register patient", type="primary", icon=":material/person_add:"
        )
    if not submitted:
        return
    checked = check_form(form, today=today, doctor_ids=frozenset(doctors.active))
    if not checked.ok:
        slots.show(checked.errors)
        st.error("Nothing was saved: correct the fields marked above.")
        return
    _cancel_duplicate()
    _register(gw, draft_from(checked.form), slots, allow_duplicate=False, tz=tz)


# --- edit ----------------------------------------------------------------------------------------


def edit_section(
    gw: Gateway, patient: Patient, doctors: view.Doctors, *, today: date, tz: Any
) -> None:
    """Edit demographics; only changed fields are sent, checked against the patient as opened."""
    baseline = form_from_patient(patient)
    prefix = f"patients.edit.{patient.id}"
    with st.form(prefix):
        form, slots = _fields(prefix, baseline, doctors, today)
        submitted = st.form_submit_button("Save changes", type="primary", icon=":material/save:")
    if not submitted:
        return
    checked = check_form(form, today=today, doctor_ids=frozenset(doctors.active), baseline=baseline)
    if not checked.ok:
        slots.show(checked.errors)
        st.error("Nothing was saved: correct the fields marked above.")
        return
    changes = changes_from(checked.form, baseline)
    if not changes:
        st.info("Nothing changed, so nothing was sent.")
        return
    try:
        with st.spinner("Saving…"):
            patients.update_patient(gw, patient.id, changes, expected=patient)
    except ChangedUpstreamError as exc:
        show_error(exc, tz=tz)
        st.button(
            "Reload the patient",
            icon=":material/refresh:",
            key="patients.reload_after_conflict",
            on_click=view.reload_patient,
            args=(gw,),
        )
        return
    except ValidationFailedError as exc:
        _show_upstream(exc, slots, tz=tz)
        return
    saved = ", ".join(FIELD_LABELS[name].lower() for name in sorted(changes))
    view.flash(f"Saved: {saved}.")
    view.reload_patient(gw)
    st.rerun()


# --- delete --------------------------------------------------------------------------------------


def delete_section(gw: Gateway, patient: Patient) -> None:
    """Delete the patient upstream after the chart id is typed exactly (administrators only)."""
    expected = patient.chart_id or str(patient.id)
    what = "chart id" if patient.chart_id else "patient number"
    st.warning(
        "Deleting removes this patient from the EHR for everyone. It cannot be undone here.",
        icon=":material/warning:",
    )
    with st.form(f"patients.delete.{patient.id}"):
        typed = st.text_input(
            f"To confirm, type the {what} {view.plain(expected)}",
            key=f"patients.delete.{patient.id}.confirm",
            autocomplete="off",
        )
        go = st.form_submit_button("Delete patient", icon=":material/delete:")
    if not go:
        return
    if (typed or "").strip() != expected:
        st.error(f"The {what} does not match, so nothing was deleted.")
        return
    with st.spinner("Deleting…"):
        patients.delete_patient(gw, patient.id)
    view.close_patient()
    view.flash("The patient was deleted.")
    st.rerun()
