"""The Appointments page's filter bar (view, day or range, doctor, office, statuses, lanes)
and the link that presets it.

Query parameters carry only opaque ids and dates, never PHI, and are parsed strictly: a value
that is refused is named to the user and the default is shown instead."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

import streamlit as st

from ui.appointments_view import Practice
from ui.components import STATUS_LABELS

__all__ = [
    "LIST_MAX_DAYS",
    "Filters",
    "Query",
    "filters",
    "parse_query",
    "selected_day",
]

View = Literal["Day", "Week", "List"]
Lanes = Literal["Doctor", "Exam room"]

VIEWS: Final[tuple[View, ...]] = ("Day", "Week", "List")
# The list view walks upstream pages (20 appointments each): a month keeps it within budget.
LIST_MAX_DAYS: Final = 31
# Query parameters carry only opaque ids and dates (no PHI in URLs); ids are bounded positives.
MAX_ID_DIGITS: Final = 12
_ID = re.compile(rf"^[1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}}$")


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
