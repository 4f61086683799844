"""``RecordStream`` takes a per-page fast path for ordinary pages; every page keeps one rule.

Whichever path a page takes (all plain objects with distinct, unseen int/str ids, or anything
else), the records out must be those of a record-by-record walk that keeps the first of each id
and counts the rest, and a non-object record must still be refused.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from ehr.errors import UpstreamDataError
from ehr.paging import RecordStream, origin_of

BASE = "https://api.example.test"
ORIGIN = origin_of(BASE)
assert ORIGIN is not None


def _site(pages: list[list[Any]]) -> dict[str, dict[str, Any]]:
    urls = [f"{BASE}/api/line_items?cursor={n}" for n in range(len(pages))]
    return {
        url: {"results": records, "next": urls[n + 1] if n + 1 < len(urls) else None}
        for n, (url, records) in enumerate(zip(urls, pages, strict=True))
    }


def _walk(pages: list[list[Any]]) -> RecordStream:
    site = _site(pages)
    return RecordStream(
        site.__getitem__,
        f"{BASE}/api/line_items?cursor=0",
        base_origin=ORIGIN,
        list_key=lambda envelope: envelope["results"],
    )


def _expected(pages: list[list[Any]]) -> tuple[list[Any], int]:
    kept, seen, dropped = [], [], 0
    for record in (r for page in pages for r in page):
        key = record.get("id")
        if key is not None and any(key == s for s in seen):
            dropped += 1
            continue
        if key is not None:
            seen.append(key)
        kept.append(record)
    return kept, dropped


IDS = [1, 2, 3, "3", "a", None, True, 1.0, 2.5]


@pytest.mark.parametrize("seed", range(60))
def test_the_same_records_as_a_record_by_record_walk(seed: int) -> None:
    rng = random.Random(seed)
    pages = [
        [{"id": rng.choice(IDS), "n": n} for n in range(rng.randrange(5))]
        for _ in range(rng.randrange(1, 5))
    ]
    if rng.randrange(2):  # also plenty of ordinary pages: distinct fresh integer ids
        pages.append([{"id": 100 + n} for n in range(rng.randrange(1, 5))])
    kept, dropped = _expected(pages)
    stream = _walk(pages)
    assert list(stream) == kept
    assert stream.duplicates_dropped == dropped


def test_ordinary_pages_pass_whole_and_a_repeat_on_a_later_page_is_dropped() -> None:
    pages = [[{"id": 1}, {"id": "1"}, {"id": 2}], [{"id": 3}, {"id": 2, "late": True}]]
    stream = _walk(pages)
    assert list(stream) == [{"id": 1}, {"id": "1"}, {"id": 2}, {"id": 3}]
    assert stream.duplicates_dropped == 1
    assert stream.pages == 2


@pytest.mark.parametrize("bad", [1, "x", None, ["id", 1]])
def test_a_record_that_is_not_an_object_is_refused(bad: Any) -> None:
    stream = _walk([[{"id": 1}], [{"id": 2}, bad, {"id": 3}]])
    assert next(stream) == {"id": 1}
    assert next(stream) == {"id": 2}
    with pytest.raises(UpstreamDataError) as caught:
        next(stream)
    assert caught.value.details == {"field": "results", "problem": "expected objects"}
