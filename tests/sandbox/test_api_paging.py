"""Sandbox pagination over real HTTP: walks, keyset stability, cursors, page-size rules."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from ehr.sandbox.paging import (
    APPOINTMENTS_PAGE_SIZE,
    APPOINTMENTS_VERBOSE_PAGE_SIZE,
    DEFAULT_PAGE_SIZE,
    CursorCodec,
    CursorPosition,
    PagingError,
    paginate,
)
from tests.sandbox.conftest import Api

RANGE = {"date_range": "2025-03-01/2025-06-30"}


def test_walking_every_page_yields_each_patient_exactly_once(start_sandbox) -> None:
    api = start_sandbox()
    seen = api.walk("/api/patients", params={"page_size": 7})
    ids = [p["id"] for p in seen]
    assert len(ids) == len(set(ids)) == api.server.store.count("patients")
    assert ids == sorted(ids)


def test_next_is_absolute_and_keeps_the_query(api: Api) -> None:
    body = api.get("/api/patients", params={"page_size": 5, "gender": "Female"}).json()
    assert body["previous"] is None
    parts = urlsplit(body["next"])
    assert f"{parts.scheme}://{parts.netloc}" == api.server.base_url
    query = parse_qs(parts.query)
    assert query["page_size"] == ["5"]
    assert query["gender"] == ["Female"]
    assert query["cursor"]
    second = api.get(body["next"]).json()
    back = api.get(second["previous"]).json()
    assert [p["id"] for p in back["results"]] == [p["id"] for p in body["results"]]


def test_records_created_during_a_walk_neither_duplicate_nor_skip(start_sandbox) -> None:
    api = start_sandbox()
    original = {p["id"] for p in api.walk("/api/patients")}
    seen: list[int] = []
    url: str | None = "/api/patients?page_size=10"
    while url:
        body = api.get(url).json()
        seen.extend(p["id"] for p in body["results"])
        created = api.post(
            "/api/patients", json={"gender": "Other", "doctor": api.server.store.user["doctor"]}
        )
        assert created.status_code == 201
        url = body["next"]
    assert len(seen) == len(set(seen))
    assert original <= set(seen)


def test_appointment_walk_is_complete_and_ordered(api: Api) -> None:
    walked = api.walk("/api/appointments", params={**RANGE, "show_archived": "true"})
    expected = [
        a
        for a in api.server.store.scan("appointments")
        if "2025-03-01" <= a[1]["scheduled_time"][:10] <= "2025-06-30"
    ]
    assert len(walked) == len({a["id"] for a in walked}) == len(expected)
    keys = [(a["scheduled_time"], int(a["id"])) for a in walked]
    assert keys == sorted(keys)


def test_tampered_or_foreign_cursor_is_400(api: Api) -> None:
    next_url = api.get("/api/patients", params={"page_size": 3}).json()["next"]
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    for bad in (tampered, "garbage", "", "x" * 5000):
        response = api.get("/api/patients", params={"cursor": bad})
        assert response.status_code == 400, bad
        assert response.json() == {"detail": "Invalid cursor"}
    foreign = api.get("/api/problems", params={"cursor": cursor})
    assert foreign.json() == {"detail": "Invalid cursor"}


@pytest.mark.parametrize("value", ["0", "-5", "ten", "1.5", "9" * 40, ""])
def test_bad_page_size(api: Api, value: str) -> None:
    response = api.get("/api/patients", params={"page_size": value})
    if value == "":
        assert response.status_code == 200
        assert (
            len(response.json()["results"]) == DEFAULT_PAGE_SIZE or response.json()["next"] is None
        )
    else:
        assert response.status_code == 400
        assert response.json() == {"page_size": ["A valid positive integer is required."]}


def test_page_size_caps(api: Api) -> None:
    assert api.server.store.count("lab_results") > DEFAULT_PAGE_SIZE
    huge = api.get("/api/lab_results", params={"page_size": 100000}).json()
    assert len(huge["results"]) == DEFAULT_PAGE_SIZE
    assert huge["next"]
    appts = api.get("/api/appointments", params={**RANGE, "page_size": 250}).json()
    assert len(appts["results"]) == APPOINTMENTS_PAGE_SIZE
    default = api.get("/api/appointments", params=RANGE).json()
    assert len(default["results"]) == APPOINTMENTS_PAGE_SIZE
    verbose = api.get(
        "/api/appointments", params={**RANGE, "verbose": "true", "page_size": 250}
    ).json()
    assert len(verbose["results"]) == APPOINTMENTS_VERBOSE_PAGE_SIZE


def test_paginate_unit() -> None:
    keys = [(i,) for i in range(10)]
    page = paginate(keys, list(range(10)), None, 4)
    assert page.items == [0, 1, 2, 3]
    assert page.previous_position is None
    assert page.next_position == CursorPosition((3,), True)
    page2 = paginate(keys, list(range(10)), page.next_position, 4)
    assert page2.items == [4, 5, 6, 7]
    back = paginate(keys, list(range(10)), page2.previous_position, 4)
    assert back.items == [0, 1, 2, 3]
    assert back.previous_position is None
    last = paginate(keys, list(range(10)), CursorPosition((7,), True), 4)
    assert last.items == [8, 9]
    assert last.next_position is None


def test_codec_binds_scope_and_key() -> None:
    codec = CursorCodec(b"k" * 32)
    token = codec.encode("patients", CursorPosition((5,), True))
    assert codec.decode("patients", token) == CursorPosition((5,), True)
    with pytest.raises(PagingError):
        codec.decode("appointments", token)
    with pytest.raises(PagingError):
        CursorCodec(b"other" * 8).decode("patients", token)
