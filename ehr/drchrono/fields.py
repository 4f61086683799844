"""Typed reads of one DrChrono JSON object: the field rules every ``*_from_drchrono`` shares.

``Record`` wraps one object and reads its fields strictly about structure and tolerantly about
values (the rules are listed in ``ehr.drchrono.mapping``): a field of the wrong kind raises
``UpstreamDataError`` naming ``resource.field`` (never the value); an unreadable timestamp,
date, amount or number becomes None and is counted in the ``DataQuality`` passed in.

Money keeps ``quirks.parse_money``'s semantics (an exact ``Decimal``, no rounding) with a fast
path: a plain ASCII decimal string (``"-12.30"``, ``"5"``) goes straight to ``Decimal``, and
its parse is cached, because a page of line items holds 14 amounts a record, mostly the same
few values (``"0.00"``), and parsing them was ~40% of mapping time (issue 7). Anything else
(grouped thousands, padding, numbers, bad values) takes the full ``parse_money``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, Final, TypeVar

from ehr.drchrono import quirks
from ehr.errors import UpstreamDataError
from ehr.models import DataQuality, Other, QualityIssue
from ehr.timeutil import classify_wall_time, parse_date, parse_practice_datetime

__all__ = ["MAX_ID_DIGITS", "Record", "bad", "in_dst_gap", "plain_decimal", "shifted_from"]

E = TypeVar("E", bound=Enum)

# Largest id DrChrono could send (a signed 64-bit integer); more digits are not an id.
MAX_ID_DIGITS = 18
# A plain decimal amount, ASCII digits only: a subset of what ``quirks.parse_money`` accepts,
# and ``Decimal`` reads it the same way (no stripping or separators to remove first).
_PLAIN_DECIMAL: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# Distinct plain amounts kept parsed; a clinic's amounts repeat (fees, "0.00"), and a
# ``Decimal`` is immutable, so one instance can be shared by every record holding it.
_MONEY_CACHE_SIZE: Final = 4096
_STR_ONLY: Final = frozenset({str})


@lru_cache(maxsize=_MONEY_CACHE_SIZE)
def plain_decimal(text: str) -> Decimal | None:
    """``Decimal(text)`` when ``text`` is a plain ASCII decimal (``"-12.30"``), else None.

    For such text this equals ``quirks.parse_money(text)``; None means "use parse_money".
    Callers pass only short text (at most ``quirks.MAX_MONEY_CHARS``): results are cached.
    """
    if len(text) <= quirks.MAX_MONEY_CHARS and _PLAIN_DECIMAL.fullmatch(text):
        return Decimal(text)
    return None


def bad(where: str, problem: str) -> UpstreamDataError:
    return UpstreamDataError(details={"field": where, "problem": problem})


class Record:
    """Typed reads of one DrChrono JSON object, naming ``resource.field`` in every error."""

    __slots__ = ("_name", "_obj", "_quality", "_tz")

    def __init__(self, obj: object, name: str, tz: tzinfo, quality: DataQuality) -> None:
        if not isinstance(obj, Mapping):
            raise bad(name, "expected an object")
        self._obj: Mapping[str, Any] = obj
        self._name = name
        self._tz = tz
        self._quality = quality

    def where(self, key: str) -> str:
        return f"{self._name}.{key}"

    def has_list(self, key: str) -> bool:
        return isinstance(self._obj.get(key), list)

    def nested(self, key: str) -> Record | None:
        value = self._obj.get(key)
        return None if value is None else Record(value, self.where(key), self._tz, self._quality)

    def nested_list(self, key: str) -> list[Record]:
        value = self._obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise bad(self.where(key), "expected a list")
        return [Record(v, self.where(key), self._tz, self._quality) for v in value]

    def opt_int(self, key: str) -> int | None:
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        digits = isinstance(value, str) and value.isascii() and value.isdigit()
        if digits and len(value) <= MAX_ID_DIGITS:
            return int(value)
        raise bad(self.where(key), "expected an integer")

    def id(self, key: str = "id") -> int:
        value = self.opt_int(key)
        if value is None:
            raise bad(self.where(key), "missing")
        return value

    def ids(self, key: str) -> tuple[int, ...]:
        value = self._obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise bad(self.where(key), "expected a list")
        return tuple(Record({key: v}, self._name, self._tz, self._quality).id(key) for v in value)

    def appointment_id(self, key: str) -> str | None:
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        try:
            return quirks.appointment_id(value)
        except ValueError:
            raise bad(self.where(key), "expected an appointment id") from None

    def text(self, key: str) -> str | None:
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise bad(self.where(key), "expected text")

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._obj.get(key)
        if value is None or value == []:
            return ()
        if type(value) is list and "" not in value and set(map(type, value)) <= _STR_ONLY:
            return tuple(value)  # the common case, checked in C: text only, none blank
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise bad(self.where(key), "expected a list of text")
        return tuple(str(v) for v in value if v != "")

    def opt_flag(self, key: str) -> bool | None:
        value = self._obj.get(key)
        if value is None or value == "" or isinstance(value, bool):
            return None if value == "" else value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad(self.where(key), "expected true or false")

    def flag(self, key: str) -> bool:
        return self.opt_flag(key) or False

    def timestamp(self, key: str) -> datetime | None:
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        parsed = parse_practice_datetime(value if isinstance(value, str) else None, self._tz)
        if parsed is None:
            self._quality.note(QualityIssue.BAD_TIMESTAMP, self.where(key))
        elif isinstance(value, str) and shifted_from(value, parsed):
            self._quality.note(QualityIssue.SHIFTED_LOCAL_TIME, self.where(key))
        return parsed

    def day(self, key: str) -> date | None:
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        parsed = parse_date(value if isinstance(value, str) else None)
        if parsed is None:
            self._quality.note(QualityIssue.BAD_DATE, self.where(key))
        return parsed

    def money(self, key: str, issue: QualityIssue = QualityIssue.BAD_MONEY) -> Decimal | None:
        value = self._obj.get(key)
        # The length check comes first so no long upstream string is ever kept in the cache.
        if type(value) is str and len(value) <= quirks.MAX_MONEY_CHARS:
            plain = plain_decimal(value)
            if plain is not None:
                return plain
        try:
            return quirks.parse_money(value)
        except ValueError:
            self._quality.note(issue, self.where(key))
            return None

    def number(self, key: str) -> Decimal | None:
        return self.money(key, QualityIssue.BAD_NUMBER)

    def choice(self, key: str, known: Mapping[str, E], blank: E | None = None) -> E | Other | None:
        value = self._obj.get(key)
        if value is None:
            return blank
        if not isinstance(value, str):
            raise bad(self.where(key), "expected text")
        if value in known:
            return known[value]
        if value.strip() == "":
            return blank
        self._quality.note_unknown(self.where(key), value)
        return Other(value)


def in_dst_gap(text: str, tz: tzinfo) -> bool:
    """Whether ``text`` is a naive wall time that falls in a DST gap of ``tz``."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return False
    return parsed.utcoffset() is None and classify_wall_time(parsed, tz) == "gap"


def shifted_from(text: str, parsed: datetime) -> bool:
    """Whether ``parse_practice_datetime(text, tz)`` gave ``parsed`` by shifting a naive wall
    time out of a DST gap: ``in_dst_gap`` reusing the parse (a normal or ambiguous wall time
    comes back unchanged from its round trip through UTC; only a gap's moves)."""
    try:
        wall = datetime.fromisoformat(text.strip())
    except ValueError:
        return False
    return wall.utcoffset() is None and parsed.replace(tzinfo=None) != wall
