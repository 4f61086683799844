"""The Appointments page's forms: book a visit and reschedule one.

Everything the user typed is checked here before any upstream call (required fields, duration
bounds, times in the past, clock changes, control characters), and errors show under the
field they concern. A time that overlaps another visit is refused upstream; the conflict is
then shown, and only an explicit "Double-book anyway" retries with ``allow_overlap`` (which the
service audits). A reschedule sends the appointment as it was shown, so a change made
meanwhile by someone else is refused instead of overwritten.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Final, cast

import streamlit as st

from ehr.errors import ChangedUpstreamError, OverlappingAppointmentError, ValidationFailedError
from ehr.models import Appointment, AppointmentChanges, AppointmentDraft, AppointmentProfile
from ehr.services import appointments, practice
from ehr.services.gateway import Gateway
from ehr.timeutil import classify_wall_time
from ui.appointments_view import (
    Practice,
    escape_md,
    flash,
    patient_name,
    status_badge,
    time_range,
)

__all__ = [
    "BOOKING_PANEL_KEY",
    "MAX_DURATION_MIN",
    "MAX_REASON_CHARS",
    "MIN_DURATION_MIN",
    "BookingForm",
    "booking_panel",
    "combine_local",
    "reschedule_form",
    "validate_booking",
]

# Shorter than a vaccine visit is a typo; longer than a working day is a block, not a visit.
MIN_DURATION_MIN: Final = 5
MAX_DURATION_MIN: Final = 480
# DrChrono's reason field is a short line; long text belongs in a clinical note.
MAX_REASON_CHARS: Final = 200
# Time pickers step in five minutes, the grid the front desk books on.
TIME_STEP: Final = timedelta(minutes=5)

_BOOK: Final = "appointments.book"
_BOOK_FIELDS: Final = (
    "patient_id",
    "doctor_id",
    "office_id",
    "exam_room",
    "profile_id",
    "day",
    "time",
    "duration_minutes",
    "reason",
    "past",
    "override",
)
# Upstream field names (``ValidationFailedError`` details) -> the form field showing them.
_UPSTREAM_FIELD: Final = {"scheduled_time": "time"}


@dataclass(frozen=True)
class BookingForm:
    """The booking form's raw values."""

    patient_id: int | None
    doctor_id: int | None
    office_id: int | None
    exam_room: int | None
    profile: AppointmentProfile | None
    day: date | None
    at: time | None
    duration_minutes: int | None
    reason: str
    past_visit: bool


def combine_local(day: date, at: time, tz: tzinfo) -> tuple[datetime | None, str | None]:
    """The aware start time, or why that wall time cannot be used (a DST gap)."""
    naive = datetime.combine(day, at)
    if classify_wall_time(naive, tz) == "gap":
        return None, "That time does not exist on this day (the clocks go forward)."
    return naive.replace(tzinfo=tz, fold=0), None  # an ambiguous time means its first pass


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in text)


def validate_booking(
    form: BookingForm, now: datetime, tz: tzinfo
) -> tuple[AppointmentDraft | None, dict[str, str]]:
    """A draft to send, or the message for each field that is wrong (nothing is sent then)."""
    errors: dict[str, str] = {}
    for name, value, label in (
        ("patient_id", form.patient_id, "a patient"),
        ("doctor_id", form.doctor_id, "a doctor"),
        ("office_id", form.office_id, "an office"),
        ("exam_room", form.exam_room, "an exam room"),
        ("day", form.day, "a date"),
        ("time", form.at, "a time"),
    ):
        if value is None:
            errors[name] = f"Choose {label}."
    duration = form.duration_minutes
    if duration is None and (form.profile is None or not form.profile.duration_minutes):
        errors["duration_minutes"] = "Enter the length in minutes, or choose a visit type."
    elif duration is not None and not MIN_DURATION_MIN <= duration <= MAX_DURATION_MIN:
        errors["duration_minutes"] = (
            f"The length must be {MIN_DURATION_MIN} to {MAX_DURATION_MIN} minutes."
        )
    reason = form.reason.strip()
    if len(reason) > MAX_REASON_CHARS:
        errors["reason"] = f"Keep the reason under {MAX_REASON_CHARS} characters."
    elif _has_control(reason):
        errors["reason"] = "The reason contains characters that cannot be saved."
    start: datetime | None = None
    if form.day is not None and form.at is not None:
        start, problem = combine_local(form.day, form.at, tz)
        if problem:
            errors["time"] = problem
        elif start is not None and start < now and not form.past_visit:
            errors["time"] = "This time is in the past. Tick “Record a past visit” if it is."
    ids = (form.patient_id, form.doctor_id, form.office_id, form.exam_room)
    if errors or start is None or None in ids:
        return None, errors
    patient_id, doctor_id, office_id, exam_room = cast(tuple[int, int, int, int], ids)
    return AppointmentDraft(
        patient_id=patient_id,
        doctor_id=doctor_id,
        office_id=office_id,
        exam_room=exam_room,
        scheduled_time=start,
        duration_minutes=duration,
        profile_id=form.profile.id if form.profile else None,
        reason=reason or None,
    ), {}


def _overlapping(
    gw: Gateway,
    doctor_id: int,
    office_id: int,
    room: int,
    start: datetime,
    minutes: int,
    tz: tzinfo,
) -> list[Appointment]:
    """The day's visits that share the doctor or the room and overlap ``start``+``minutes``."""
    end = start + timedelta(minutes=minutes)
    day = start.astimezone(tz).date()
    found = []
    for other in appointments.list_appointments(gw, day, day).items:
        if other.is_deleted or other.scheduled_time is None or other.ends_at is None:
            continue
        shares = other.doctor_id == doctor_id or (other.office_id, other.exam_room) == (
            office_id,
            room,
        )
        if shares and other.scheduled_time < end and start < other.ends_at:
            found.append(other)
    return found


def _show_conflict(others: Sequence[Appointment], ref: Practice, tz: tzinfo) -> None:
    lines = [
        f"- {time_range(a, tz)} · {escape_md(ref.patient(a))} · "
        f"{escape_md(ref.doctor(a.doctor_id))} · {escape_md(ref.room(a.office_id, a.exam_room))} "
        f"{status_badge(a.status)}"
        for a in others
    ]
    st.warning(
        "This time overlaps another appointment for the same doctor or exam room:\n\n"
        + ("\n".join(lines) if lines else "- (the other appointment is not on this schedule)"),
        icon=":material/event_busy:",
    )


# --- booking ------------------------------------------------------------------------------


def _profiles(gw: Gateway, doctor_id: int | None) -> list[AppointmentProfile]:
    every = practice.list_appointment_profiles(gw).items
    return [
        p
        for p in every
        if not p.archived and (p.doctor_id is None or doctor_id is None or p.doctor_id == doctor_id)
    ]


def _apply_profile(profiles: Mapping[int, AppointmentProfile]) -> None:
    """When a visit type is picked, prefill its length and reason (the user may change them)."""
    chosen = profiles.get(st.session_state.get(f"{_BOOK}.profile_id") or 0)
    if chosen is None:
        return
    if chosen.duration_minutes:
        st.session_state[f"{_BOOK}.duration_minutes"] = chosen.duration_minutes
    if chosen.reason and not st.session_state.get(f"{_BOOK}.reason"):
        st.session_state[f"{_BOOK}.reason"] = chosen.reason


def _patient_option(ref: Practice, patient_id: int) -> str:
    patient = ref.patients[patient_id]
    born = f" · born {patient.date_of_birth:%d %b %Y}" if patient.date_of_birth else ""
    chart = f" · chart {patient.chart_id}" if patient.chart_id else ""
    return f"{patient_name(patient)}{born}{chart}"


# The session-state key of the "Book an appointment" expander (True while it is open).
BOOKING_PANEL_KEY: Final = "appointments.booking_open"


def booking_panel(gw: Gateway, ref: Practice, tz: tzinfo, day: date, now: datetime) -> None:
    """The "Book an appointment" form; books, or shows what to fix."""
    state = st.session_state
    slots: dict[str, st.delta_generator.DeltaGenerator] = {}
    people = sorted(
        ref.patients,
        key=lambda i: (
            (ref.patients[i].last_name or "").casefold(),
            (ref.patients[i].first_name or "").casefold(),
        ),
    )
    left, middle, right = st.columns(3)
    with left:
        patient_id = st.selectbox(
            "Patient",
            people,
            index=None,
            format_func=lambda i: _patient_option(ref, i),
            placeholder="Type a name to search",
            key=f"{_BOOK}.patient_id",
        )
        slots["patient_id"] = st.empty()
        doctor_id = st.selectbox(
            "Doctor",
            sorted(ref.doctors, key=ref.doctor),
            index=None,
            format_func=ref.doctor,
            placeholder="Choose a doctor",
            key=f"{_BOOK}.doctor_id",
        )
        slots["doctor_id"] = st.empty()
    with middle:
        office_id = st.selectbox(
            "Office",
            sorted(ref.offices, key=ref.office),
            index=None,
            format_func=ref.office,
            placeholder="Choose an office",
            key=f"{_BOOK}.office_id",
        )
        slots["office_id"] = st.empty()
        rooms = [r.index for r in ref.offices[office_id].exam_rooms] if office_id else []
        if state.get(f"{_BOOK}.exam_room") not in rooms:
            state.pop(f"{_BOOK}.exam_room", None)  # a room of the previously chosen office
        exam_room = st.selectbox(
            "Exam room",
            rooms,
            index=None,
            format_func=lambda r: ref.room(office_id, r),
            placeholder="Choose an office first" if office_id is None else "Choose a room",
            disabled=office_id is None,
            key=f"{_BOOK}.exam_room",
        )
        slots["exam_room"] = st.empty()
        profiles = {p.id: p for p in _profiles(gw, doctor_id)}
        profile_id = st.selectbox(
            "Visit type",
            list(profiles),
            index=None,
            format_func=lambda i: f"{profiles[i].name or 'Visit'} ({profiles[i].duration_minutes or '?'} min)",
            placeholder="Optional",
            on_change=_apply_profile,
            args=(profiles,),
            key=f"{_BOOK}.profile_id",
        )
    with right:
        when = st.columns(2)
        picked_day = when[0].date_input(
            f"Date ({tz})", value=day, key=f"{_BOOK}.day", format="YYYY-MM-DD"
        )
        picked_time = when[1].time_input("Time", value=None, step=TIME_STEP, key=f"{_BOOK}.time")
        slots["day"] = st.empty()
        slots["time"] = st.empty()
        duration = st.number_input(
            "Length (minutes)",
            value=None,
            step=5,
            placeholder="From the visit type",
            key=f"{_BOOK}.duration_minutes",
        )
        slots["duration_minutes"] = st.empty()
    reason = st.text_input(
        "Reason for the visit", max_chars=MAX_REASON_CHARS, key=f"{_BOOK}.reason"
    )
    slots["reason"] = st.empty()
    past = st.checkbox("Record a past visit", key=f"{_BOOK}.past")
    form = BookingForm(
        patient_id=patient_id,
        doctor_id=doctor_id,
        office_id=office_id,
        exam_room=exam_room,
        profile=profiles.get(profile_id) if profile_id is not None else None,
        day=picked_day if isinstance(picked_day, date) else None,
        at=picked_time,
        duration_minutes=int(duration) if duration is not None else None,
        reason=reason,
        past_visit=past,
    )
    draft, errors = validate_booking(form, now, tz)
    override = _booking_conflict(draft, ref, tz)
    slots["other"] = st.empty()
    if not st.button("Book appointment", type="primary", key=f"{_BOOK}.submit"):
        return
    if errors or draft is None:
        _show_errors(slots, errors)
        return
    _book(gw, draft, override, ref, tz, slots)


def _signature(draft: AppointmentDraft) -> tuple[object, ...]:
    return (
        draft.patient_id,
        draft.doctor_id,
        draft.office_id,
        draft.exam_room,
        draft.scheduled_time,
        draft.duration_minutes,
        draft.profile_id,
    )


def _booking_conflict(draft: AppointmentDraft | None, ref: Practice, tz: tzinfo) -> bool:
    """Shows the last refused overlap while the form still asks for that slot; the override."""
    conflict = st.session_state.get(f"{_BOOK}.conflict")
    if draft is None or not isinstance(conflict, tuple) or conflict[0] != _signature(draft):
        return False
    _show_conflict(conflict[1], ref, tz)
    return bool(st.checkbox("Double-book anyway", key=f"{_BOOK}.override"))


def _show_errors(
    slots: Mapping[str, st.delta_generator.DeltaGenerator], errors: Mapping[str, str]
) -> None:
    for name, message in errors.items():
        slots.get(name, slots["other"]).error(message)


def _book(
    gw: Gateway,
    draft: AppointmentDraft,
    override: bool,
    ref: Practice,
    tz: tzinfo,
    slots: Mapping[str, st.delta_generator.DeltaGenerator],
) -> None:
    try:
        booked = appointments.create_appointment(gw, draft, allow_overlap=override)
    except OverlappingAppointmentError:
        minutes = draft.duration_minutes or 0
        others = _overlapping(
            gw, draft.doctor_id, draft.office_id, draft.exam_room, draft.scheduled_time, minutes, tz
        )
        st.session_state[f"{_BOOK}.conflict"] = (_signature(draft), tuple(others))
        st.rerun()
    except ValidationFailedError as exc:
        messages = {
            _UPSTREAM_FIELD.get(name, name): " ".join(texts)
            for name, texts in exc.field_errors.items()
        }
        _show_errors(slots, messages or {"other": exc.message})
        return
    for name in (*_BOOK_FIELDS, "conflict"):
        st.session_state.pop(f"{_BOOK}.{name}", None)
    start = (booked.scheduled_time or draft.scheduled_time).astimezone(tz)
    flash(
        f"Booked {start:%a %d %b %H:%M} with {ref.doctor(draft.doctor_id)}"
        f"{' (double-booked)' if override else ''}."
    )
    st.rerun()


# --- rescheduling -------------------------------------------------------------------------


def reschedule_form(gw: Gateway, appointment: Appointment, ref: Practice, tz: tzinfo) -> None:
    """A card's "Reschedule" form: new date, time and room, sent with ``expected``."""
    key = f"appointments.move.{appointment.id}"
    start = appointment.scheduled_time.astimezone(tz) if appointment.scheduled_time else None
    office = ref.offices.get(appointment.office_id) if appointment.office_id else None
    rooms = [r.index for r in office.exam_rooms] if office else []
    with st.form(key=f"{key}.form"):
        st.markdown("**Reschedule**")
        new_day = st.date_input(
            "New date", value=start.date() if start else None, key=f"{key}.day", format="YYYY-MM-DD"
        )
        new_time = st.time_input(
            "New time", value=start.time() if start else None, step=TIME_STEP, key=f"{key}.time"
        )
        room = st.selectbox(
            "Exam room",
            rooms,
            index=rooms.index(appointment.exam_room) if appointment.exam_room in rooms else None,
            format_func=lambda r: ref.room(appointment.office_id, r),
            key=f"{key}.room",
        )
        conflict = st.session_state.get(f"{key}.conflict")
        override = False
        if isinstance(conflict, tuple):
            _show_conflict(conflict[1], ref, tz)
            override = st.checkbox("Double-book anyway", key=f"{key}.override")
        moved = st.form_submit_button("Move appointment", type="primary", key=f"{key}.submit")
    if moved:
        _move(gw, appointment, (new_day, new_time, room), override, ref, tz, key)


def _move(
    gw: Gateway,
    appointment: Appointment,
    picked: tuple[object, object, object],
    override: bool,
    ref: Practice,
    tz: tzinfo,
    key: str,
) -> None:
    new_day, new_time, room = picked
    if not isinstance(new_day, date) or not isinstance(new_time, time):
        st.error("Choose the new date and time.")
        return
    start, problem = combine_local(new_day, new_time, tz)
    if problem or start is None:
        st.error(problem or "Choose the new date and time.")
        return
    if start < datetime.now(tz):
        st.error("Choose a time that is still to come.")
        return
    changes: AppointmentChanges = {"scheduled_time": start}
    if isinstance(room, int):
        changes["exam_room"] = room
    conflict = st.session_state.get(f"{key}.conflict")
    # The override only covers the slot whose conflict the user saw.
    override = override and isinstance(conflict, tuple) and conflict[0] == (start, room)
    try:
        appointments.update_appointment(
            gw, appointment.id, changes, allow_overlap=override, expected=appointment
        )
    except ChangedUpstreamError:
        gw.cache.invalidate(("appointment",))  # the reload: the next rerun reads it afresh
        flash(
            "This appointment was changed in the EHR after the schedule was loaded, so it was "
            "not moved. The schedule below has been reloaded: check the appointment and "
            "reschedule it again if still needed.",
            warning=True,
        )
        st.rerun()
    except OverlappingAppointmentError:
        minutes = appointment.duration_minutes or 0
        others = _overlapping(
            gw,
            appointment.doctor_id,
            appointment.office_id or 0,
            room if isinstance(room, int) else appointment.exam_room or 0,
            start,
            minutes,
            tz,
        )
        others = [a for a in others if a.id != appointment.id]
        st.session_state[f"{key}.conflict"] = ((start, room), tuple(others))
        st.rerun()
    for name in ("conflict", "override"):
        st.session_state.pop(f"{key}.{name}", None)
    flash(f"Moved to {start:%a %d %b %H:%M}.")
    st.rerun()
