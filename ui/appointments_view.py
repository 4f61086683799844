"""The Appointments page's views: filters, the day grid, week and list tables, status buttons.

The front desk works from the day grid: one column per doctor (or exam room), one row per
hour, each visit a card with its time, patient, status badge and reason, and buttons for the
next step of the visit. Patient names come from one cached walk of the patient list
(``patients.patient_directory``), never from a request per row. Every time is shown in the
practice timezone. Upstream text (names, reasons, custom statuses) is escaped before it goes
into Markdown, so it always renders as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from typing import Final, Literal

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from ehr.models import Appointment, AppointmentStatus, Doctor, Office, Other, Patient
from ehr.services import appointments, patients, practice
from ehr.services.gateway import Gateway
from ui.components import STATUS_COLOURS, STATUS_LABELS, status_label

__all__ = [
    "DASH",
    "LIST_MAX_DAYS",
    "CardActions",
    "Filters",
    "Practice",
    "Query",
    "day_grid",
    "escape_md",
    "filters",
    "flash",
    "list_table",
    "load_practice",
    "parse_query",
    "patient_name",
    "schedule_frame",
    "selected_day",
    "show_flash",
    "status_actions",
    "status_badge",
    "time_range",
    "week_tables",
]

View = Literal["Day", "Week", "List"]
Lanes = Literal["Doctor", "Exam room"]

VIEWS: Final[tuple[View, ...]] = ("Day", "Week", "List")
# What the page shows for a value the role never receives (billing gets no visit reason).
DASH: Final = "—"
# The list view walks upstream pages (20 appointments each): a month keeps it within budget.
LIST_MAX_DAYS: Final = 31
# Query parameters carry only opaque ids and dates (no PHI in URLs); ids are bounded positives.
MAX_ID_DIGITS: Final = 12
_ID = re.compile(rf"^[1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}}$")
# CommonMark lets any ASCII punctuation be backslash-escaped; escaping all of it also disarms
# Streamlit's own directives (``:red[...]``, ``:material/...:``) and ``$`` maths.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&\"'=^%@/;,?])")
_WHITESPACE = re.compile(r"\s+")

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
# Table cells get the badge colours of the day grid (Streamlit's light badge palette).
_CELL_STYLE: Final = {
    "blue": "background-color:#e4eefc;color:#1c4f9c",
    "gray": "background-color:#eef0f2;color:#4b5563",
    "orange": "background-color:#fdf0e1;color:#9a4d00",
    "violet": "background-color:#f0e9fb;color:#5b2f9c",
    "green": "background-color:#e3f4e8;color:#1d6b34",
    "red": "background-color:#fde7e7;color:#a11c1c",
}
_COLOUR_OF_LABEL: Final = {STATUS_LABELS[s]: c for s, c in STATUS_COLOURS.items()}
_FLASH_KEY: Final = "appointments.flash"
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


def escape_md(text: str) -> str:
    """``text`` as literal Markdown: one line, every punctuation mark escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _WHITESPACE.sub(" ", text).strip())


def status_badge(status: AppointmentStatus | Other) -> str:
    """A Markdown colour badge for a status (a custom status is grey, its text escaped)."""
    colour = "gray" if isinstance(status, Other) else STATUS_COLOURS.get(status, "gray")
    return f":{colour}-badge[{escape_md(status_label(status))}]"


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


# --- reference data -----------------------------------------------------------------------


@dataclass(frozen=True)
class Practice:
    """Doctors, offices and the patient directory: what labels a schedule."""

    doctors: Mapping[int, Doctor]
    offices: Mapping[int, Office]
    patients: Mapping[int, Patient]
    directory_truncated: bool = False

    def doctor(self, doctor_id: int | None) -> str:
        """The doctor's display name."""
        found = self.doctors.get(doctor_id) if doctor_id is not None else None
        return found.display_name if found else f"Doctor {doctor_id}"

    def office(self, office_id: int | None) -> str:
        """The office's name."""
        found = self.offices.get(office_id) if office_id is not None else None
        return (found.name or f"Office {office_id}") if found else DASH

    def room(self, office_id: int | None, index: int | None) -> str:
        """The exam room's name within its office."""
        if index is None:
            return DASH
        office = self.offices.get(office_id) if office_id is not None else None
        for room in office.exam_rooms if office else ():
            if room.index == index:
                return room.name or f"Room {index}"
        return f"Room {index}"

    def patient(self, appointment: Appointment) -> str:
        """The patient's name, "Break" for a break, or the id when the directory lacks it."""
        if appointment.is_break or appointment.patient_id is None:
            return "Break"
        found = self.patients.get(appointment.patient_id)
        if found is None:
            return f"Patient #{appointment.patient_id}"
        return patient_name(found)


def patient_name(patient: Patient) -> str:
    """First (preferred) last; the id when the chart has no name."""
    first = patient.first_name or ""
    if patient.preferred_name and patient.preferred_name != patient.first_name:
        first = f"{first} ({patient.preferred_name})".strip()
    name = " ".join(p for p in (first, patient.last_name) if p)
    return name or f"Patient #{patient.id}"


def load_practice(gw: Gateway) -> Practice:
    """Doctors, offices and the patient directory (each one cached call for the session)."""
    doctors = practice.list_doctors(gw).items
    offices = practice.list_offices(gw).items
    directory = patients.patient_directory(gw)
    return Practice(
        doctors={d.id: d for d in doctors},
        offices={o.id: o for o in offices if not o.archived},
        patients=directory.by_id,
        directory_truncated=directory.truncated,
    )


# --- query parameters and filters ---------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """What a link asked for; every value already checked."""

    view: View | None = None
    day: date | None = None
    doctor_id: int | None = None
    office_id: int | None = None


def _one(params: Mapping[str, str | list[str]], name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, list):  # a repeated key is never a valid link
        return "" if value else None
    return value


def parse_query(params: Mapping[str, str | list[str]]) -> tuple[Query, list[str]]:
    """The link's view, day, doctor and office, and a message per value that was refused."""
    problems: list[str] = []
    view: View | None = None
    raw_view = _one(params, "view")
    if raw_view is not None:
        matches = [v for v in VIEWS if v.lower() == raw_view.lower()]
        view = matches[0] if matches else None
        if view is None:
            problems.append("the view must be day, week or list")
    day: date | None = None
    raw_day = _one(params, "day")
    if raw_day is not None:
        try:
            day = date.fromisoformat(raw_day) if len(raw_day) == len("2026-01-01") else None
        except ValueError:
            day = None
        if day is None:
            problems.append("the day must be a date written YYYY-MM-DD")
    ids: dict[str, int | None] = {}
    for name in ("doctor", "office"):
        raw = _one(params, name)
        ids[name] = int(raw) if raw is not None and _ID.fullmatch(raw) else None
        if raw is not None and ids[name] is None:
            problems.append(f"the {name} must be a positive number")
    return Query(view, day, ids["doctor"], ids["office"]), problems


@dataclass(frozen=True)
class Filters:
    """The user's choices for this rerun."""

    view: View
    start: date
    end: date
    doctor_id: int | None
    office_id: int | None
    statuses: frozenset[str] = frozenset()
    lanes: Lanes = "Doctor"


def _shift_day(key: str, days: int) -> None:
    current = st.session_state.get(key)
    if isinstance(current, date):
        st.session_state[key] = current + timedelta(days=days)


def _set_today(key: str, today: date) -> None:
    st.session_state[key] = today


def selected_day(query: Query, today: date) -> date:
    """The day the filter bar shows (before it is drawn): the user's pick, the link's, today."""
    picked = st.session_state.get("appointments.day")
    return picked if isinstance(picked, date) else query.day or today


def _keep_choice(key: str, fallback: str) -> None:
    """A segmented control clicked twice clears itself; keep a choice instead."""
    if st.session_state.get(key) is None:
        st.session_state[key] = fallback


def _initial(key: str, value: object) -> None:
    """Seed a widget's state once (a link's values), instead of passing ``value=`` each run."""
    if key not in st.session_state and value is not None:
        st.session_state[key] = value


def filters(ref: Practice, query: Query, today: date) -> Filters | None:
    """The filter bar; None while the chosen range is invalid (the reason is shown)."""
    if query.doctor_id is not None and query.doctor_id not in ref.doctors:
        st.error("The doctor in this link is not one of the practice's doctors; showing all.")
    if query.office_id is not None and query.office_id not in ref.offices:
        st.error("The office in this link is not one of the practice's offices; showing all.")
    _initial("appointments.view", query.view or "Day")
    _initial("appointments.day", query.day or today)
    _initial("appointments.lanes", "Doctor")
    _initial("appointments.doctor", query.doctor_id if query.doctor_id in ref.doctors else None)
    _initial("appointments.office", query.office_id if query.office_id in ref.offices else None)
    top = st.columns([2, 3, 3, 3], vertical_alignment="bottom")
    view = top[0].segmented_control(
        "View",
        VIEWS,
        key="appointments.view",
        on_change=_keep_choice,
        args=("appointments.view", "Day"),
    )
    doctor = top[2].selectbox(
        "Doctor",
        [None, *sorted(ref.doctors, key=ref.doctor)],
        format_func=lambda i: "All doctors" if i is None else ref.doctor(i),
        key="appointments.doctor",
    )
    office = top[3].selectbox(
        "Office",
        [None, *sorted(ref.offices, key=ref.office)],
        format_func=lambda i: "All offices" if i is None else ref.office(i),
        key="appointments.office",
    )
    if view == "List":
        return _list_filters(top[1], today, doctor, office)
    day = top[1].date_input("Date", key="appointments.day", format="YYYY-MM-DD")
    nav = st.columns([3, 1], vertical_alignment="bottom")
    unit = "day" if view == "Day" else "week"
    step = 1 if view == "Day" else 7
    with nav[0].container(horizontal=True, gap="small"):
        st.button(
            f"Previous {unit}",
            icon=":material/chevron_left:",
            on_click=_shift_day,
            args=("appointments.day", -step),
        )
        st.button("Today", on_click=_set_today, args=("appointments.day", today))
        st.button(
            f"Next {unit}",
            icon=":material/chevron_right:",
            on_click=_shift_day,
            args=("appointments.day", step),
        )
    if view == "Week":
        monday = day - timedelta(days=day.weekday())
        return Filters("Week", monday, monday + timedelta(days=6), doctor, office)
    lanes = nav[1].segmented_control(
        "Columns",
        ("Doctor", "Exam room"),
        key="appointments.lanes",
        on_change=_keep_choice,
        args=("appointments.lanes", "Doctor"),
    )
    return Filters(
        "Day", day, day, doctor, office, lanes="Exam room" if lanes == "Exam room" else "Doctor"
    )


def _list_filters(
    cell: st.delta_generator.DeltaGenerator, today: date, doctor: int | None, office: int | None
) -> Filters | None:
    _initial("appointments.range", (today, today + timedelta(days=6)))
    picked = cell.date_input("From – to", key="appointments.range", format="YYYY-MM-DD")
    statuses = st.multiselect(
        "Status", list(STATUS_LABELS.values()), key="appointments.statuses", placeholder="Any"
    )
    if not isinstance(picked, tuple) or len(picked) != 2:  # still picking the end date
        st.info("Pick the last day of the range.")
        return None
    start, end = picked
    if (end - start).days + 1 > LIST_MAX_DAYS:
        st.error(f"Choose at most {LIST_MAX_DAYS} days at a time.")
        return None
    return Filters("List", start, end, doctor, office, frozenset(statuses))


# --- tables -------------------------------------------------------------------------------


def _visible(items: Iterable[Appointment]) -> list[Appointment]:
    return sorted(
        (a for a in items if not a.is_deleted and a.scheduled_time is not None),
        key=lambda a: (a.scheduled_time, a.doctor_id, a.id),
    )


def time_range(appointment: Appointment, tz: tzinfo) -> str:
    """``09:00–09:20`` in the practice timezone."""
    if appointment.scheduled_time is None:
        return DASH
    start = appointment.scheduled_time.astimezone(tz)
    end = appointment.ends_at
    return f"{start:%H:%M}–{end.astimezone(tz):%H:%M}" if end else f"{start:%H:%M}"


def schedule_frame(items: Sequence[Appointment], ref: Practice, tz: tzinfo) -> pd.DataFrame:
    """One row per appointment for ``st.dataframe``; a withheld reason shows as a dash."""
    rows = [
        {
            "Date": a.scheduled_time.astimezone(tz).date() if a.scheduled_time else None,
            "Time": time_range(a, tz),
            "Patient": ref.patient(a),
            "Doctor": ref.doctor(a.doctor_id),
            "Office": ref.office(a.office_id),
            "Room": ref.room(a.office_id, a.exam_room),
            "Status": "Break" if a.is_break else status_label(a.status),
            "Reason": a.reason or DASH,
        }
        for a in _visible(items)
    ]
    columns = ["Date", "Time", "Patient", "Doctor", "Office", "Room", "Status", "Reason"]
    return pd.DataFrame(rows, columns=columns)


def _styled(frame: pd.DataFrame) -> Styler:
    """The frame with each status cell in its badge colour (a custom status stays grey)."""
    return frame.style.map(
        lambda label: _CELL_STYLE[_COLOUR_OF_LABEL.get(str(label), "gray")], subset=["Status"]
    )


def list_table(items: Sequence[Appointment], ref: Practice, tz: tzinfo, chosen: Filters) -> None:
    """The list view: every appointment in the range matching the status filter."""
    wanted = [a for a in items if not chosen.statuses or status_label(a.status) in chosen.statuses]
    frame = schedule_frame(wanted, ref, tz)
    if frame.empty:
        st.info("No appointments match these filters.")
        return
    st.caption(f"{len(frame)} appointments")
    st.dataframe(
        _styled(frame),
        hide_index=True,
        column_config={"Date": st.column_config.DateColumn("Date", format="ddd D MMM")},
    )


def week_tables(items: Sequence[Appointment], ref: Practice, tz: tzinfo, chosen: Filters) -> None:
    """The week view: a compact table per day, Monday to Sunday."""
    frame = schedule_frame(items, ref, tz)
    for offset in range((chosen.end - chosen.start).days + 1):
        day = chosen.start + timedelta(days=offset)
        rows = frame[frame["Date"] == day].drop(columns=["Date"])
        st.markdown(f"**{day:%A %d %B}** · {len(rows)} appointments")
        if rows.empty:
            st.caption("No appointments.")
            continue
        st.dataframe(_styled(rows), hide_index=True)


# --- the day grid -------------------------------------------------------------------------

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
    shown = _visible(items)
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
        with st.popover("More", icon=":material/more_horiz:"):
            for status in actions:
                if status is not step:
                    _status_button(gw, appointment, ref, tz, status, primary=False)
            more(appointment)


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


def flash(message: str, *, warning: bool = False) -> None:
    """Keep a message for the next rerun (the page reruns to show fresh data)."""
    st.session_state[_FLASH_KEY] = (message, warning)


def show_flash() -> None:
    """Show and forget the last message."""
    kept = st.session_state.pop(_FLASH_KEY, None)
    if not isinstance(kept, tuple):
        return
    message, warning = kept
    if warning:
        st.warning(message, icon=":material/sync_problem:")
    else:
        st.success(message, icon=":material/check_circle:")
