"""How the DrChrono backend walks list pages: whole listings, or one page at a time.

Whole listings (``Pager.listing``) go through the transport's ``RecordStream`` under one page
budget shared by every query of the call, and report ``truncated`` when the budget ran out.
Page-at-a-time walks (``Pager.stream``, ``Pager.page``) fetch a ``next`` URL per upstream page
so the caller gets a resumable cursor after each; they apply ``RecordStream``'s safety rules
themselves: ``next`` must stay on the API's origin (``UnsafeRedirectError``), a ``next`` seen
before is a ``PaginationLoopError``, and the page cap ends the walk with ``truncated=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, TypeVar
from urllib.parse import urljoin

from ehr.drchrono import endpoints as ep
from ehr.drchrono.quirks import list_key
from ehr.errors import PaginationLoopError, UnsafeRedirectError, UpstreamDataError
from ehr.models import DataQuality, Page, QualityIssue
from ehr.paging import origin_of
from ehr.transport import EHRTransport

__all__ = ["Fetched", "Mapper", "Pager", "Query", "RawPage"]

T = TypeVar("T")
Mapper = Callable[[object, tzinfo, DataQuality], T]
# (path, query parameters) of one listing.
Query = tuple[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Fetched:
    """Raw records of one or more listings, whether the page cap cut them short, and the
    data-quality tally (records repeated across pages, then whatever mapping adds)."""

    records: list[Any]
    truncated: bool
    quality: DataQuality


@dataclass(frozen=True, slots=True)
class RawPage:
    """One upstream page: its records, the next page's URL, and whether the cap stopped here."""

    records: list[Any]
    next_url: str | None
    truncated: bool = False


class Pager:
    """Page walks of one backend: its transport, practice timezone and page cap."""

    def __init__(self, transport: EHRTransport, tz: tzinfo, max_pages: int) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self._transport = transport
        self._tz = tz
        self._max_pages = max_pages
        self._origin = origin_of(transport.base_url)

    def fetch(self, *queries: Query) -> Fetched:
        """Every record of the listings, in order, within one shared page budget."""
        records: list[Any] = []
        quality = DataQuality()
        budget, truncated = self._max_pages, False
        for path, params in queries:
            if budget < 1:
                truncated = True
                break
            stream = self._transport.iter_records(path, params, max_pages=budget)
            records.extend(stream)
            budget -= stream.pages
            truncated = truncated or stream.truncated
            if stream.duplicates_dropped:
                duplicates = (QualityIssue.DUPLICATE_RECORD, f"{path}.id")
                quality.counts[duplicates] += stream.duplicates_dropped
        return Fetched(records, truncated, quality)

    def listing(
        self, mapper: Mapper[T], *queries: Query, keep: Callable[[T], bool] | None = None
    ) -> Page[T]:
        """The mapped records of the listings, those ``keep`` accepts, as one ``Page``."""
        fetched = self.fetch(*queries)
        items = (mapper(r, self._tz, fetched.quality) for r in fetched.records)
        kept = tuple(i for i in items if keep is None or keep(i))
        return Page(kept, truncated=fetched.truncated, quality=fetched.quality)

    def page(self, url: str) -> RawPage:
        """The one page at ``url`` (the transport refuses a URL on another origin)."""
        envelope = self._transport.get_json(url)
        return RawPage(list_key(envelope), self._next_link(envelope, url))

    def stream(
        self, mapper: Mapper[T], path: str, params: Mapping[str, Any], cursor: str | None
    ) -> Iterator[Page[T]]:
        """Mapped pages of ``path`` from its first page, or from ``cursor``, with cursors.

        The cursor is checked here, before the first page is asked for, so a bad one fails at
        the call (``ValueError``) rather than at the first ``next()``.
        """
        if cursor is not None:
            url, _ = ep.decode_cursor(cursor, self._transport.base_url, path)
        else:
            url = ep.list_url(self._transport.base_url, path, params)
        return self._mapped(mapper, url)

    def chained_page(
        self,
        mapper: Mapper[T],
        path: str,
        queries: Sequence[Mapping[str, Any]],
        cursor: str | None,
        *,
        skip: Callable[[object, int], bool],
    ) -> Page[T]:
        """One upstream page of a search made of several queries walked one after another.

        ``skip(record, index)`` drops a record the ``index``-th query returns that an earlier
        one already did. When a query ends with nothing collected the next one starts in the
        same call, so a page is empty only when no query has more. Raises ``ValueError`` for a
        cursor of another endpoint or query list.
        """
        base = self._transport.base_url
        if cursor is None:
            url, index = ep.list_url(base, path, queries[0]), 0
        else:
            url, index = ep.decode_cursor(cursor, base, path)
            if index >= len(queries):
                raise ValueError("invalid cursor")
        quality = DataQuality()
        items: list[T] = []
        while True:
            raw = self.page(url)
            kept = (r for r in raw.records if not skip(r, index))
            items.extend(mapper(r, self._tz, quality) for r in kept)
            if raw.next_url is not None:
                return Page(tuple(items), ep.encode_cursor(raw.next_url, index), quality=quality)
            index += 1
            if index >= len(queries):
                return Page(tuple(items), quality=quality)
            url = ep.list_url(base, path, queries[index])
            if items:
                return Page(tuple(items), ep.encode_cursor(url, index), quality=quality)

    def _mapped(self, mapper: Mapper[T], url: str) -> Iterator[Page[T]]:
        seen: set[str] = set()
        for raw in self._walk(url):
            quality = DataQuality()
            items = []
            for record in raw.records:
                raw_id = record.get("id") if isinstance(record, dict) else None
                key = None if raw_id is None else repr(raw_id)
                if key is not None and key in seen:
                    quality.note(QualityIssue.DUPLICATE_RECORD, "record.id")
                    continue
                if key is not None:
                    seen.add(key)
                items.append(mapper(record, self._tz, quality))
            cursor = ep.encode_cursor(raw.next_url) if raw.next_url else None
            yield Page(tuple(items), next_cursor=cursor, truncated=raw.truncated, quality=quality)

    def _walk(self, url: str) -> Iterator[RawPage]:
        seen = {url}
        for number in range(1, self._max_pages + 1):
            raw = self.page(url)
            if raw.next_url in seen:
                raise PaginationLoopError(details={"pages": number})
            if raw.next_url is None:
                yield raw
                return
            yield RawPage(raw.records, raw.next_url, truncated=number == self._max_pages)
            seen.add(raw.next_url)
            url = raw.next_url

    def _next_link(self, envelope: Any, current_url: str) -> str | None:
        raw = envelope.get("next") if isinstance(envelope, dict) else None
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise UpstreamDataError(details={"field": "next", "problem": "expected a URL"})
        # DrChrono sends absolute URLs; a relative one is resolved against its page.
        next_url = urljoin(current_url, raw)
        if origin_of(next_url) != self._origin:
            raise UnsafeRedirectError(details={"field": "next"})
        return next_url
