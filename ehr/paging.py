"""Safe cursor paging: a flat, lazy record iterator across ``next`` links (SECURITY.md RL-03).

DrChrono list responses are ``{"previous", "results", "next"}`` with an absolute ``next`` URL
carrying an opaque cursor (drchrono.md §2.3). ``RecordStream`` walks them one page at a time and
refuses what a hostile or buggy upstream could do with ``next``: point at another origin (the
bearer token would follow it), repeat a page (an endless loop), or never end (a page cap that
stops with ``truncated=True`` rather than a silent partial list). Records repeated across pages
(an offset shift while paging) are dropped by ``id``, keeping the first.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from itertools import repeat
from typing import Any
from urllib.parse import urljoin, urlsplit

from ehr.errors import EHRError, PaginationLoopError, UnsafeRedirectError, UpstreamDataError

__all__ = ["MAX_PAGES", "MAX_PAGE_SIZE", "Origin", "RecordStream", "origin_of"]

# Pages fetched per listing before it stops with truncated=True: 200 pages of 250 records is
# 50,000 records, more than a clinic's patient list, and 40% of DrChrono's hourly budget.
MAX_PAGES = 200
# DrChrono's largest (and default) page_size for most lists; fewer pages means fewer of the
# 500 hourly calls. Appointments cap lower (20-25), so their callers pass a smaller size.
MAX_PAGE_SIZE = 250

_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]
_PLAIN_RECORD = frozenset({dict})
_PLAIN_ID = frozenset({int, str})


def origin_of(url: str) -> Origin | None:
    """The (scheme, host, port) origin of an absolute URL, or None when it has none.

    Scheme and host are lower-cased and a missing port becomes the scheme's default, so
    ``https://A.example`` and ``https://a.example:443`` compare equal.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a malformed port or IPv6 literal
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if not scheme or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme, -1)


def _id_key(record: dict[str, Any]) -> Hashable | None:
    value = record.get("id")
    if value is None or isinstance(value, Hashable):
        return value
    return repr(value)  # an unhashable id is upstream garbage, but must not crash dedup


def _fresh_page(records: list[Any], seen_ids: set[Hashable]) -> bool:
    """True when every record is a plain dict whose id is an int or str, all distinct and none
    in ``seen_ids`` (which then gains them): the page needs no per-record checks."""
    if set(map(type, records)) - _PLAIN_RECORD:
        return False
    ids = list(map(dict.get, records, repeat("id")))
    if set(map(type, ids)) - _PLAIN_ID or len(set(ids)) != len(ids) or not seen_ids.isdisjoint(ids):
        return False
    seen_ids.update(ids)
    return True


class RecordStream(Iterator[dict[str, Any]]):
    """Records across all pages of one listing, fetched lazily (one page in memory at a time).

    ``fetch_page(url)`` returns the parsed envelope of one page; ``list_key(envelope)`` picks
    its record list (vendor quirk); ``base_origin`` is the only origin ``next`` may point at.
    After the walk, ``pages`` is the number of pages fetched, ``truncated`` is True when
    ``max_pages`` stopped it with more pages left, and ``duplicates_dropped`` counts records
    skipped because their id was already seen. Errors carry ``correlation_id``.
    """

    def __init__(
        self,
        fetch_page: Callable[[str], Any],
        first_url: str,
        *,
        base_origin: Origin,
        list_key: Callable[[Any], list[Any]],
        max_pages: int = MAX_PAGES,
        correlation_id: str | None = None,
    ) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self.truncated = False
        self.pages = 0
        self.duplicates_dropped = 0
        self.correlation_id = correlation_id
        self._fetch_page = fetch_page
        self._list_key = list_key
        self._base_origin = base_origin
        self._max_pages = max_pages
        self._records = self._walk(first_url)

    def __iter__(self) -> RecordStream:
        return self

    def __next__(self) -> dict[str, Any]:
        try:
            return next(self._records)
        except EHRError as exc:
            if exc.correlation_id is None:
                exc.correlation_id = self.correlation_id
            raise

    def _walk(self, url: str) -> Iterator[dict[str, Any]]:
        seen_urls = {url}
        seen_ids: set[Hashable] = set()
        while True:
            envelope = self._fetch_page(url)
            self.pages += 1
            records = self._list_key(envelope)
            if _fresh_page(records, seen_ids):
                # The common case, checked per page in C: plain objects, distinct int/str ids
                # none seen before; per-record Python work was a tenth of the bare fetch time.
                yield from records
            else:
                yield from self._deduplicated(records, seen_ids)
            next_url = self._next_link(envelope, url)
            if next_url is None:
                return
            if self.pages >= self._max_pages:
                self.truncated = True
                return
            if next_url in seen_urls:
                raise PaginationLoopError(details={"pages": self.pages})
            seen_urls.add(next_url)
            url = next_url

    def _deduplicated(
        self, records: list[Any], seen_ids: set[Hashable]
    ) -> Iterator[dict[str, Any]]:
        for record in records:
            if not isinstance(record, dict):
                raise UpstreamDataError(details={"field": "results", "problem": "expected objects"})
            key = _id_key(record)
            if key is not None:
                if key in seen_ids:
                    self.duplicates_dropped += 1
                    continue
                seen_ids.add(key)
            yield record

    def _next_link(self, envelope: Any, current_url: str) -> str | None:
        raw = envelope.get("next") if isinstance(envelope, dict) else None
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise UpstreamDataError(details={"field": "next", "problem": "expected a URL"})
        # DrChrono sends absolute URLs; a relative one is resolved against the page it came on.
        next_url = urljoin(current_url, raw)
        if origin_of(next_url) != self._base_origin:
            raise UnsafeRedirectError(details={"field": "next", "pages": self.pages})
        return next_url
