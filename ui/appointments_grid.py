"""The Appointments page's day grid: one column per doctor (or exam room), one row per hour,
each visit a card with its time, patient, status badge and reason, and buttons for the next
step of the visit (for roles that may write)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import tzinfo
from typing import Final

import streamlit as st

from ehr.models import Appointment, AppointmentStatus, Doctor, Other
from ehr.services import appointments
from ehr.services.gateway import Gateway
from ui.appointments_filters import Filters
from ui.appointments_view import DASH, Practice, escape_md, flash, status_badge, time_range, visible
from ui.components import STATUS_LABELS

__all__ = ["CardActions", "day_grid", "status_actions"]

# The visit flow the front desk drives from the day grid, one step at a time.
NEXT_STEP: Final[Mapping[AppointmentStatus, AppointmentStatus]] = {
    AppointmentStatus.BOOKED: AppointmentStatus.ARRIVED,
    AppointmentStatus.NOT_CONFIRMED: AppointmentStatus.ARRIVED,
    AppointmentStatus.CONFIRMED: AppointmentStatus.ARRIVED,
    AppointmentStatus.ARRIVED: AppointmentStatus.CHECKED_IN,
    AppointmentStatus.CHECKED_IN: AppointmentStatus.IN_ROOM,
    AppointmentStatus.CHECKED_IN_ONLINE: AppointmentStatus.IN_ROOM,
    AppointmentStatus.IN_ROOM: AppointmentStatus.COMPLETE,
    AppointmentStatus.IN_SESSION: AppointmentStatus.COMPLETE,
}
# A visit that has not started can be a no-show; any unfinished visit can be cancelled.
_NOT_STARTED: Final = frozenset(
    {AppointmentStatus.BOOKED, AppointmentStatus.NOT_CONFIRMED, AppointmentStatus.CONFIRMED}
)
_FINISHED: Final = frozenset(
    {
        AppointmentStatus.COMPLETE,
        AppointmentStatus.CANCELLED,
        AppointmentStatus.NO_SHOW,
        AppointmentStatus.RESCHEDULED,
    }
)
# The hour labels' column, relative to a lane's 3: wide enough for "09:00" beside 4 rooms.
_HOUR_COLUMN: Final = 1.0
# Button wording: what the front desk does, rather than the status it leads to.
ACTION_LABELS: Final[Mapping[AppointmentStatus, str]] = {
    AppointmentStatus.ARRIVED: "Arrived",
    AppointmentStatus.CHECKED_IN: "Check in",
    AppointmentStatus.IN_ROOM: "To exam room",
    AppointmentStatus.COMPLETE: "Complete",
    AppointmentStatus.CANCELLED: "Cancel visit",
    AppointmentStatus.NO_SHOW: "No show",
}


def status_actions(status: AppointmentStatus | Other) -> tuple[AppointmentStatus, ...]:
    """The status buttons a card offers: the next step, then Cancelled and No show."""
    if isinstance(status, Other):  # a practice's own status: its place in the flow is unknown
        return (AppointmentStatus.CANCELLED,)
    if status in _FINISHED:
        return ()
    actions = [NEXT_STEP[status]] if status in NEXT_STEP else []
    actions.append(AppointmentStatus.CANCELLED)
    if status in _NOT_STARTED:
        actions.append(AppointmentStatus.NO_SHOW)
    return tuple(actions)


Lane = tuple[int, int | None]  # (doctor id, -) or (office id, room index)
CardActions = Callable[[Appointment], None]


def _lanes(items: Sequence[Appointment], ref: Practice, chosen: Filters) -> list[Lane]:
    if chosen.lanes == "Doctor":
        doctors = [chosen.doctor_id] if chosen.doctor_id else list(ref.doctors)
        busy = {a.doctor_id for a in items}
        keep = [d for d in doctors if d in busy or not ref.doctors.get(d, Doctor(d)).is_suspended]
        return [(d, None) for d in sorted(keep, key=ref.doctor)]
    offices = [chosen.office_id] if chosen.office_id else list(ref.offices)
    rooms: set[Lane] = {(o, r.index) for o in offices for r in ref.offices[o].exam_rooms}
    if chosen.office_id is None:  # every room of every office is too wide: only busy rooms
        rooms = {(a.office_id, a.exam_room) for a in items if a.office_id is not None}
    return sorted(rooms, key=lambda lane: (ref.office(lane[0]), lane[1] or 0))


def _in_lane(appointment: Appointment, lane: Lane, chosen: Filters) -> bool:
    if chosen.lanes == "Doctor":
        return appointment.doctor_id == lane[0]
    return (appointment.office_id, appointment.exam_room) == lane


def _lane_title(lane: Lane, ref: Practice, chosen: Filters) -> str:
    if chosen.lanes == "Doctor":
        return ref.doctor(lane[0])
    room = ref.room(lane[0], lane[1])
    return room if chosen.office_id else f"{room} · {ref.office(lane[0])}"


def day_grid(
    gw: Gateway,
    items: Sequence[Appointment],
    ref: Practice,
    tz: tzinfo,
    chosen: Filters,
    *,
    more: CardActions | None = None,
) -> None:
    """The day as a grid: a column per doctor or exam room, a row per hour, a card per visit.

    ``more`` (for roles that may write) adds the status buttons and then draws its own
    controls under them, such as the reschedule form.
    """
    shown = visible(items)
    lanes = _lanes(shown, ref, chosen)
    visits = sum(1 for a in shown if not a.is_break)
    st.subheader(f"{chosen.start:%A %d %B %Y}", anchor=False)
    st.caption(f"{visits} appointment{'s' if visits != 1 else ''}")
    if not shown:
        st.info(f"No appointments on {chosen.start:%A %d %B}.")
        return
    if not lanes:
        st.info("No doctors or exam rooms match these filters.")
        return
    width = [_HOUR_COLUMN] + [3.0] * len(lanes)
    header = st.columns(width)
    for cell, lane in zip(header[1:], lanes, strict=True):
        cell.markdown(f"##### {escape_md(_lane_title(lane, ref, chosen))}")
    hours = [a.scheduled_time.astimezone(tz).hour for a in shown if a.scheduled_time]
    for hour in range(min(hours), max(hours) + 1):
        this_hour = [
            a for a in shown if a.scheduled_time and a.scheduled_time.astimezone(tz).hour == hour
        ]
        row = st.columns(width)
        row[0].markdown(f"**{hour:02d}:00**")
        if not this_hour:
            continue
        for cell, lane in zip(row[1:], lanes, strict=True):
            with cell:
                for appointment in this_hour:
                    if _in_lane(appointment, lane, chosen):
                        _card(gw, appointment, ref, tz, chosen, more)


def _card(
    gw: Gateway,
    appointment: Appointment,
    ref: Practice,
    tz: tzinfo,
    chosen: Filters,
    more: CardActions | None,
) -> None:
    with st.container(border=True):
        if appointment.is_break:
            st.markdown(f"**{time_range(appointment, tz)}** · :gray-badge[Break]")
            return
        walk_in = " :gray-badge[Walk-in]" if appointment.is_walk_in else ""
        st.markdown(
            f"**{time_range(appointment, tz)}** {status_badge(appointment.status)}{walk_in}"
        )
        st.markdown(f"**{escape_md(ref.patient(appointment))}**")
        where = (
            ref.room(appointment.office_id, appointment.exam_room)
            if chosen.lanes == "Doctor"
            else ref.doctor(appointment.doctor_id)
        )
        st.caption(f"{escape_md(where)} · {escape_md(appointment.reason or DASH)}")
        if more is not None:
            _card_actions(gw, appointment, ref, tz, more)


def _card_actions(
    gw: Gateway, appointment: Appointment, ref: Practice, tz: tzinfo, more: CardActions
) -> None:
    """The next step as one button; cancel, no-show and ``more`` (reschedule) in a popover."""
    actions = status_actions(appointment.status)
    if not actions:  # a finished visit: nothing left to do from the schedule
        return
    step = actions[0] if actions and actions[0] in NEXT_STEP.values() else None
    with st.container(horizontal=True, gap="small"):
        if step is not None:
            _status_button(gw, appointment, ref, tz, step, primary=True)
        # Filled only while open: a day of cards each building its reschedule form cost
        # seconds per rerun at a large practice (benchmarks/page_script_time.py).
        menu = st.popover(
            "More",
            icon=":material/more_horiz:",
            key=more_key(appointment),
            on_change="rerun",
        )
        with menu:
            if menu.open:
                for status in actions:
                    if status is not step:
                        _status_button(gw, appointment, ref, tz, status, primary=False)
                more(appointment)


def more_key(appointment: Appointment) -> str:
    """The session-state key of a card's "More" popover (True while it is open)."""
    return f"appointments.more.{appointment.id}"


def _status_button(
    gw: Gateway,
    appointment: Appointment,
    ref: Practice,
    tz: tzinfo,
    status: AppointmentStatus,
    *,
    primary: bool,
) -> None:
    if st.button(
        ACTION_LABELS[status],
        key=f"appointments.status.{appointment.id}.{status.value}",
        type="primary" if primary else "secondary",
    ):
        appointments.set_appointment_status(gw, appointment.id, status)
        flash(
            f"{time_range(appointment, tz)} {ref.patient(appointment)}: "
            f"now {STATUS_LABELS[status]}."
        )
        st.rerun()
