"""Cursor pagination for sandbox list endpoints: page-size rules, signed keyset cursors, links.

DrChrono pages with an opaque ``cursor`` query parameter and absolute ``next``/``previous`` URLs
that keep the original query string (drchrono.md §2.3). The sandbox's cursor is keyset-based:
it carries the sort key of the last (or first) record of the page, so records created while a
client walks the pages never make it see an existing record twice or skip one. The cursor is
signed with HMAC-SHA256 under a per-server secret and bound to the endpoint, so a tampered or
transplanted cursor is rejected with 400 ``{"detail": "Invalid cursor"}``.

Page-size rules (documented choice; drchrono.md §2.3 marks the appointment limits uncertain):
- default and maximum 250 on every list endpoint;
- ``/api/appointments``: default and maximum 20, with ``verbose=true`` default and maximum 25
  (the appointments description says "max 20", the ``verbose`` parameter "limits page_size to 25");
- a ``page_size`` above the maximum is clamped to it, as Django REST Framework's
  ``max_page_size`` does; a non-integer, zero or negative ``page_size`` is a 400
  ``{"page_size": ["A valid positive integer is required."]}`` (DRF would silently fall back to the
  default; rejecting is stricter, so client code tested here also works there).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# DrChrono's documented default page size for list endpoints ("can be lowered").
DEFAULT_PAGE_SIZE = 250
# Most lists never return more than the default; larger requests are clamped.
MAX_PAGE_SIZE = 250
# /api/appointments: "max 20" per its description (drchrono.md §2.3).
APPOINTMENTS_PAGE_SIZE = 20
# /api/appointments?verbose=true: "limit page_size to 25" per the verbose parameter.
APPOINTMENTS_VERBOSE_PAGE_SIZE = 25
# Async batch lists take page_size 1-1000 (drchrono.md §2.3); 1000 is their default here.
BATCH_MAX_PAGE_SIZE = 1000
# Longest page_size text parsed at all: anything longer is garbage, not a number.
_MAX_PAGE_SIZE_CHARS = 12
# Longest cursor accepted: real ones are well under 200 characters.
_MAX_CURSOR_CHARS = 1024
# Truncated HMAC length in bytes (128 bits is plenty to make forgery hopeless).
_MAC_BYTES = 16

INVALID_CURSOR = "Invalid cursor"
PAGE_SIZE_MESSAGE = "A valid positive integer is required."

SortKey = tuple[Any, ...]


class PagingError(Exception):
    """A bad ``cursor`` or ``page_size``: carries the DrChrono-style 400 body."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("invalid paging parameter")
        self.body = body


def parse_page_size(raw: str | None, *, default: int, maximum: int, clamp: bool = True) -> int:
    """The page size to use for a raw ``page_size`` query value (see module docstring).

    With ``clamp`` False a value above ``maximum`` is a 400 instead (batch lists, whose
    documented range is 1-1000).
    """
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if len(text) > _MAX_PAGE_SIZE_CHARS or not text.isdigit() or int(text) <= 0:
        raise PagingError({"page_size": [PAGE_SIZE_MESSAGE]})
    size = int(text)
    if size > maximum:
        if not clamp:
            raise PagingError(
                {"page_size": [f"Ensure this value is less than or equal to {maximum}."]}
            )
        return maximum
    return size


@dataclass(frozen=True, slots=True)
class CursorPosition:
    """Where a page starts: after ``key`` (forward) or before it (backward)."""

    key: SortKey
    forward: bool


class CursorCodec:
    """Encodes and verifies opaque, signed keyset cursors bound to one endpoint ``scope``."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode() + b"\x00" + payload
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, scope: str, position: CursorPosition) -> str:
        """An opaque cursor string for ``position`` on the endpoint ``scope``."""
        payload = json.dumps(
            {"k": list(position.key), "f": position.forward}, separators=(",", ":")
        ).encode()
        token = payload + self._mac(scope, payload)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, scope: str, cursor: str) -> CursorPosition:
        """Verify and decode a cursor; raises ``PagingError`` (400 Invalid cursor) otherwise."""
        invalid = PagingError({"detail": INVALID_CURSOR})
        if not cursor or len(cursor) > _MAX_CURSOR_CHARS:
            raise invalid
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except ValueError:
            raise invalid from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise invalid
        try:
            data = json.loads(payload)
            return CursorPosition(tuple(data["k"]), bool(data["f"]))
        except (ValueError, KeyError, TypeError):
            raise invalid from None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of items plus the positions of the neighbouring pages (None at the ends)."""

    items: list[Any]
    next_position: CursorPosition | None
    previous_position: CursorPosition | None


def paginate(
    keys: Sequence[SortKey], items: Sequence[Any], position: CursorPosition | None, size: int
) -> Page:
    """Cut one page out of ``items`` sorted ascending by ``keys`` (parallel sequences).

    Forward pages start strictly after the cursor key, backward pages end strictly before it,
    so a record inserted anywhere during a walk shifts no boundary of existing records.
    """
    if position is None:
        start = 0
    elif position.forward:
        start = bisect.bisect_right(keys, position.key)
    else:
        start = max(0, bisect.bisect_left(keys, position.key) - size)
    end = min(len(items), start + size)
    if position is not None and not position.forward:
        end = bisect.bisect_left(keys, position.key)
    next_position = CursorPosition(keys[end - 1], True) if end < len(items) and end > 0 else None
    previous_position = CursorPosition(keys[start], False) if start > 0 else None
    return Page(list(items[start:end]), next_position, previous_position)


def page_link(request_url: str, cursor: str, *, host: str | None = None) -> str:
    """The absolute URL of a neighbouring page: the request URL with ``cursor`` replaced.

    Every other query parameter is kept in order. ``host`` overrides the network location
    (the "next link points elsewhere" fault).
    """
    parts = urlsplit(request_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "cursor"]
    query.append(("cursor", cursor))
    netloc = host if host is not None else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))
