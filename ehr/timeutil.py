"""Practice-timezone time handling: DrChrono timestamps carry no zone.

DrChrono writes timestamps like ``"2026-03-08T09:00:00"`` in the practice's local time
(drchrono.md §2.2). They are parsed in the *configured practice timezone*, passed explicitly;
the server's own zone (``TZ``, ``time.localtime``) is never consulted. Everything returned is
timezone-aware; storage and audit use UTC (``to_utc``); writes back to DrChrono use naive
practice-local text (``format_practice``).

Daylight-saving rules for naive wall times (PEP 495, ``fold=0``):

* **Spring-forward gap** — a wall time that never happened, e.g. ``2026-03-08T02:30:00`` in
  ``America/New_York``, is read with the offset in force *before* the gap (EST, -05:00) and
  normalised, so it becomes ``03:30-04:00`` (07:30 UTC). The event moves later by the gap's
  length, never earlier, and is never dropped. ``classify_wall_time`` reports ``"gap"`` so a
  caller can count it.
* **Fall-back overlap** — a wall time that happened twice, e.g. ``2026-11-01T01:30:00``, is the
  *first* occurrence (EDT, -04:00, i.e. 05:30 UTC). ``classify_wall_time`` reports
  ``"ambiguous"``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ehr.errors import ConfigurationError

__all__ = [
    "DRCHRONO_TIMESTAMP_FORMAT",
    "WallTimeKind",
    "classify_wall_time",
    "format_practice",
    "load_practice_zone",
    "parse_date",
    "parse_practice_datetime",
    "to_utc",
]

# How DrChrono reads and writes timestamps: ISO 8601 to the second, without a zone.
DRCHRONO_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
# The longest ISO 8601 timestamp we accept (with microseconds and an offset); longer is junk.
MAX_TIMESTAMP_CHARS = 40

WallTimeKind = Literal["normal", "gap", "ambiguous"]


def load_practice_zone(name: str) -> ZoneInfo:
    """The IANA zone for the configured practice timezone name (e.g. ``"America/New_York"``).

    Raises ``ConfigurationError`` for an empty or unknown name; the server's local zone is
    never used as a fallback.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(details={"setting": "practice_timezone"}) from None


def classify_wall_time(naive: datetime, tz: tzinfo) -> WallTimeKind:
    """Whether a naive wall time is ``"normal"``, in a DST ``"gap"`` or ``"ambiguous"`` in ``tz``."""
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return "normal"
    # In a gap, the instant round-trips to a different wall time; in an overlap it does not.
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive.replace(fold=0):
        return "gap"
    return "ambiguous"


def parse_practice_datetime(value: str | None, tz: tzinfo) -> datetime | None:
    """An aware datetime in ``tz`` from a DrChrono timestamp, or None when absent or invalid.

    Naive text is practice-local time in ``tz`` (DST rules in the module docstring); text with
    ``Z`` or an offset keeps its instant and is converted to ``tz``. A bare date means its
    midnight. None, ``""``, non-strings and invalid values (``"2026-13-01"``) give None; callers
    count those as a data-quality issue.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > MAX_TIMESTAMP_CHARS:
        return None
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.utcoffset() is None:
            parsed = parsed.replace(tzinfo=tz, fold=0)
        return parsed.astimezone(UTC).astimezone(tz)
    except (ValueError, OverflowError):
        return None


def parse_date(value: str | None) -> date | None:
    """A calendar date from ``"YYYY-MM-DD"``, or None when absent or invalid.

    A full timestamp is tolerated and its date part taken (as written, with no zone
    conversion). None, ``""``, non-strings and invalid dates give None.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > MAX_TIMESTAMP_CHARS:
        return None
    try:
        if "T" in text or " " in text:
            return datetime.fromisoformat(text).date()
        return date.fromisoformat(text)
    except ValueError:
        return None


def to_utc(value: datetime) -> datetime:
    """The same instant in UTC. Raises ``ValueError`` for a naive datetime (zone unknown)."""
    if value.utcoffset() is None:
        raise ValueError("naive datetime: its timezone is unknown")
    return value.astimezone(UTC)


def format_practice(value: datetime, tz: tzinfo) -> str:
    """Naive practice-local text ``"YYYY-MM-DDTHH:MM:SS"`` for writing a timestamp to DrChrono.

    Raises ``ValueError`` for a naive datetime, which could silently be in the wrong zone.
    """
    return to_utc(value).astimezone(tz).strftime(DRCHRONO_TIMESTAMP_FORMAT)
