"""EHRTransport against the recording stub (``mock_ehr``): TLS, redirects, auth, bodies, writes.

The acceptance criteria are SECURITY.md TR-01, TK-03, RL-02, RL-03 (redirects), RL-04 and the
§3.4 table; every test injects ``sleep`` so nothing really waits.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import ehr.transport as transport_module
from ehr.errors import (
    ConfigurationError,
    DuplicatePatientError,
    RateLimitedError,
    ReauthorizationRequiredError,
    UnexpectedResponseError,
    UnsafeRedirectError,
    UpstreamDataError,
    UpstreamForbiddenError,
    UpstreamTooLargeError,
    UpstreamUnavailableError,
    WriteOutcomeUnknownError,
)
from ehr.retry import RetryPolicy
from ehr.throttle import Throttle
from ehr.transport import MAX_JSON_DEPTH, EHRTransport
from tests.ehr.stub_server import (
    FIXED_NOW,
    Answer,
    CountingBudget,
    FakeTokens,
    StubServer,
    json_answer,
    unused_port,
)

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@pytest.fixture
def other() -> Iterator[StubServer]:
    """A second stub: another port is another origin."""
    with StubServer() as server:
        yield server


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make(base_url: str, tokens: FakeTokens, sleeps: list[float], **kwargs) -> EHRTransport:
    kwargs.setdefault("throttle", Throttle(rate_per_s=1e9, burst=10**9))
    return EHRTransport(base_url, tokens, sleep=sleeps.append, clock=lambda: FIXED_NOW, **kwargs)


@pytest.fixture
def client(stub: StubServer, tokens: FakeTokens, sleeps: list[float]) -> Iterator[EHRTransport]:
    transport = make(stub.base_url, tokens, sleeps)
    yield transport
    transport.close()


# -- TR-01: trusted connections -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://app.drchrono.com",
        "http://10.0.0.5:8000",
        "ftp://app.drchrono.com",
        "app.drchrono.com",
        "https://user:pw@app.drchrono.com",
        "https://app.drchrono.com/?x=1",
    ],
)
def test_unsafe_base_urls_are_refused_at_construction(url: str, tokens: FakeTokens) -> None:
    with pytest.raises(ConfigurationError):
        EHRTransport(url, tokens)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.drchrono.com",
        "https://app.drchrono.com/",
        "http://127.0.0.1:8000",
        "http://127.9.9.9",
        "http://localhost:1234",
        "http://[::1]:8080",
    ],
)
def test_https_and_loopback_base_urls_are_accepted(url: str, tokens: FakeTokens) -> None:
    transport = EHRTransport(url, tokens)
    assert not transport.base_url.endswith("/")
    transport.close()


def test_no_verify_false_anywhere_in_ehr() -> None:
    pattern = re.compile(r"verify\s*=\s*False")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "ehr").rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


def test_self_signed_certificate_is_refused_and_nothing_is_sent(
    tokens: FakeTokens, sleeps: list[float]
) -> None:
    with StubServer(tls=True) as tls_stub:
        tls_stub.add("POST", "/api/patients", json_answer({"id": 1}, 201))
        transport = make(tls_stub.base_url, tokens, sleeps)
        with pytest.raises(UpstreamUnavailableError) as caught:
            transport.write("POST", "/api/patients", json={"first_name": "Zebulon"})
        with pytest.raises(UpstreamUnavailableError):
            transport.get_json("/api/patients")
        transport.close()
    assert caught.value.details["reason"] == "tls"
    assert tls_stub.requests == []  # the handshake failed: no request, no body
    assert transport.requests_made == 2  # neither call was retried
    assert sleeps == []


# -- RL-03: redirects ---------------------------------------------------------------------------


def test_cross_origin_redirect_is_refused_and_the_token_never_reaches_it(
    stub: StubServer, other: StubServer, client: EHRTransport
) -> None:
    other.add("GET", "/api/users/7", json_answer({"id": 7}))
    stub.add(
        "GET",
        "/api/users/current",
        Answer(302, headers={"Location": f"{other.base_url}/api/users/7"}),
    )
    with pytest.raises(UnsafeRedirectError) as caught:
        client.get_json("/api/users/current")
    assert other.requests == []
    assert stub.count("GET", "/api/users/current") == 1
    assert caught.value.correlation_id


def test_same_origin_302_is_followed_resending_authorization(
    stub: StubServer, client: EHRTransport
) -> None:
    stub.add("GET", "/api/users/current", Answer(302, headers={"Location": "/api/users/7"}))
    stub.add("GET", "/api/users/7", json_answer({"id": 7, "is_doctor": True}))
    assert client.get_json("/api/users/current") == {"id": 7, "is_doctor": True}
    followed = [r for r in stub.requests if r.path == "/api/users/7"]
    assert len(followed) == 1
    assert followed[0].headers["Authorization"] == "Bearer tok-1"
    # One logical call: both hops carry the same correlation id.
    ids = {r.headers["X-Correlation-ID"] for r in stub.requests}
    assert len(ids) == 1


def test_absolute_same_origin_redirect_is_followed(stub: StubServer, client: EHRTransport) -> None:
    stub.add("GET", "/a", Answer(301, headers={"Location": f"{stub.base_url}/b"}))
    stub.add("GET", "/b", json_answer([1, 2]))
    assert client.get_json("/a") == [1, 2]


def test_redirect_chain_is_cut_after_three_hops(stub: StubServer, client: EHRTransport) -> None:
    stub.add("GET", "/loop", Answer(302, headers={"Location": "/loop"}))
    with pytest.raises(UnexpectedResponseError) as caught:
        client.get_json("/loop")
    assert stub.count("GET", "/loop") == 4  # the request and three followed hops
    assert caught.value.details["status"] == 302


def test_absolute_url_on_another_origin_is_refused_before_sending(
    stub: StubServer, other: StubServer, client: EHRTransport
) -> None:
    with pytest.raises(UnsafeRedirectError):
        client.get_json(f"{other.base_url}/api/patients")
    with pytest.raises(UnsafeRedirectError):
        client.get_json("//evil.example/api/patients")
    assert other.requests == []
    assert stub.requests == []


def test_307_on_a_post_is_not_followed(stub: StubServer, client: EHRTransport) -> None:
    stub.add("POST", "/api/appointments", Answer(307, headers={"Location": "/api/appointments2"}))
    with pytest.raises(UnexpectedResponseError) as caught:
        client.write("POST", "/api/appointments", json={"doctor": 1})
    assert stub.count("POST") == 1
    assert stub.count(path="/api/appointments2") == 0
    assert caught.value.details["status"] == 307


def test_cross_origin_307_on_a_post_is_unsafe(
    stub: StubServer, other: StubServer, client: EHRTransport
) -> None:
    stub.add("POST", "/api/patients", Answer(307, headers={"Location": f"{other.base_url}/x"}))
    with pytest.raises(UnsafeRedirectError):
        client.write("POST", "/api/patients", json={})
    assert other.requests == []


# -- TK-03: 401 and 403 --------------------------------------------------------------------------


def test_401_refreshes_once_and_retries_once(
    stub: StubServer, client: EHRTransport, tokens: FakeTokens
) -> None:
    stub.add(
        "GET", "/api/patients/5", json_answer({"detail": "expired"}, 401), json_answer({"id": 5})
    )
    assert client.get_json("/api/patients/5") == {"id": 5}
    assert tokens.refreshes == ["tok-1"]
    assert [r.headers["Authorization"] for r in stub.requests] == ["Bearer tok-1", "Bearer tok-2"]


def test_401_twice_means_reauthorization(
    stub: StubServer, client: EHRTransport, tokens: FakeTokens
) -> None:
    stub.add("GET", "/api/patients/5", json_answer({"detail": "Authorization failed."}, 401))
    with pytest.raises(ReauthorizationRequiredError) as caught:
        client.get_json("/api/patients/5")
    assert stub.count("GET") == 2
    assert len(tokens.refreshes) == 1
    assert caught.value.correlation_id == stub.requests[0].headers["X-Correlation-ID"]


def test_403_does_not_refresh(stub: StubServer, client: EHRTransport, tokens: FakeTokens) -> None:
    stub.add(
        "GET",
        "/api/line_items",
        json_answer(
            {"detail": "You do not have permission."},
            403,
            WWW_Authenticate='Bearer error="insufficient_scope", scope="billing:read"',
        ),
    )
    with pytest.raises(UpstreamForbiddenError) as caught:
        client.get_json("/api/line_items")
    assert tokens.refreshes == []
    assert stub.count("GET") == 1
    assert caught.value.details["gate"] == "scope"


def test_401_on_a_write_is_not_resent(
    stub: StubServer, client: EHRTransport, tokens: FakeTokens
) -> None:
    stub.add("POST", "/api/patients", json_answer({"detail": "expired"}, 401))
    with pytest.raises(ReauthorizationRequiredError):
        client.write("POST", "/api/patients", json={"first_name": "A"})
    assert stub.count("POST") == 1
    assert tokens.refreshes == []


# -- RL-04 / §3.4: bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        Answer(200, b'{"results":[{"id":1,', {"Content-Type": "application/json"}),
        Answer(200, b"<html><body>Service error</body></html>", {"Content-Type": "text/html"}),
        Answer(200, b"<html>oops</html>"),  # no content type at all
        Answer(200, b'{"name": "\xff\xfe"}', {"Content-Type": "application/json"}),
        Answer(200, b"", {"Content-Type": "application/json"}),
    ],
    ids=["truncated", "html-200", "html-untyped", "invalid-utf8", "empty"],
)
def test_unusable_bodies_are_upstream_data_errors(
    stub: StubServer, client: EHRTransport, answer: Answer
) -> None:
    stub.add("GET", "/api/patients", answer)
    with pytest.raises(UpstreamDataError) as caught:
        client.get_json("/api/patients")
    assert type(caught.value) is UpstreamDataError
    assert caught.value.correlation_id
    assert stub.count("GET") == 1  # data errors are not retried


def test_vendor_json_content_type_is_accepted(stub: StubServer, client: EHRTransport) -> None:
    stub.add(
        "GET",
        "/x",
        Answer(200, b'{"a": 1}', {"Content-Type": "application/vnd.api+json; charset=utf-8"}),
    )
    assert client.get_json("/x") == {"a": 1}


def test_deep_nesting_is_refused_without_recursion_error(
    stub: StubServer, client: EHRTransport
) -> None:
    stub.add(
        "GET",
        "/deep",
        Answer(200, b"[" * 10_000 + b"]" * 10_000, {"Content-Type": "application/json"}),
    )
    with pytest.raises(UpstreamDataError) as caught:
        client.get_json("/deep")
    assert caught.value.details["problem"] == "nesting too deep"


def test_nesting_limit_is_exact_and_ignores_brackets_in_strings(
    stub: StubServer, client: EHRTransport
) -> None:
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    stub.add("GET", "/ok", json_answer({"s": '[[[[{{{{\\"[[', "v": 1}))
    stub.add(
        "GET",
        "/limit",
        Answer(200, at_limit[1:-1].join(["[", "]"]), {"Content-Type": "application/json"}),
    )
    stub.add(
        "GET", "/over", Answer(200, "[" + at_limit + "]", {"Content-Type": "application/json"})
    )
    assert client.get_json("/ok")["v"] == 1
    client.get_json("/limit")
    with pytest.raises(UpstreamDataError):
        client.get_json("/over")


@pytest.mark.parametrize("content_length", [True, False], ids=["declared", "streamed"])
def test_25_mb_body_is_too_large(
    stub: StubServer, client: EHRTransport, content_length: bool
) -> None:
    body = b'{"results": ["' + b"x" * (25 * MB) + b'"]}'
    stub.add(
        "GET",
        "/api/patients",
        Answer(200, body, {"Content-Type": "application/json"}, content_length=content_length),
    )
    with pytest.raises(UpstreamTooLargeError) as caught:
        client.get_json("/api/patients")
    assert caught.value.details["limit_bytes"] == 20 * MB
    assert stub.count("GET") == 1


def test_body_just_under_the_limit_is_read(stub: StubServer, tokens, sleeps) -> None:
    transport = make(stub.base_url, tokens, sleeps, max_response_bytes=1000)
    stub.add("GET", "/a", json_answer(["x" * 990]))
    stub.add(
        "GET",
        "/b",
        Answer(
            200,
            b'["' + b"x" * 1000 + b'"]',
            {"Content-Type": "application/json"},
            content_length=False,
        ),
    )
    assert transport.get_json("/a") == ["x" * 990]
    with pytest.raises(UpstreamTooLargeError):
        transport.get_json("/b")


# -- RL-02: writes --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_post_5xx_is_sent_once_and_outcome_unknown(
    stub: StubServer, client: EHRTransport, sleeps: list[float], status: int
) -> None:
    stub.add("POST", "/api/appointments", json_answer({"detail": "boom"}, status))
    with pytest.raises(WriteOutcomeUnknownError) as caught:
        client.write("POST", "/api/appointments", json={"doctor": 1})
    assert stub.count("POST") == 1
    assert caught.value.details["status"] == status
    assert sleeps == []


def test_post_429_is_sent_once_and_rate_limited(
    stub: StubServer, client: EHRTransport, sleeps: list[float]
) -> None:
    stub.add(
        "POST", "/api/appointments", json_answer({"detail": "throttled"}, 429, Retry_After="2")
    )
    with pytest.raises(RateLimitedError) as caught:
        client.write("POST", "/api/appointments", json={"doctor": 1})
    assert stub.count("POST") == 1
    assert caught.value.retry_at == FIXED_NOW.replace(second=2)
    assert sleeps == []


def test_post_read_timeout_after_the_server_got_it_is_not_resent(
    stub: StubServer, client: EHRTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_module, "READ_TIMEOUT_S", 0.3)
    stub.add(
        "POST",
        "/api/appointments",
        Answer(201, {"id": 9}, action="stall_after_processing", stall_s=1.5),
    )
    with pytest.raises(WriteOutcomeUnknownError) as caught:
        client.write("POST", "/api/appointments", json={"doctor": 1})
    assert stub.count("POST") == 1
    assert caught.value.details["cause"] == "ReadTimeout"
    assert caught.value.__cause__ is None  # the requests error text holds the URL


def test_post_connection_reset_mid_body_is_not_resent(
    stub: StubServer, client: EHRTransport
) -> None:
    stub.add(
        "POST", "/api/patients", Answer(201, {"id": 1, "pad": "x" * 5000}, action="reset_mid_body")
    )
    with pytest.raises(WriteOutcomeUnknownError):
        client.write("POST", "/api/patients", json={"first_name": "A"})
    assert stub.count("POST") == 1


def test_post_with_nothing_listening_is_retried_then_reported(
    tokens: FakeTokens, sleeps: list[float]
) -> None:
    transport = make(f"http://127.0.0.1:{unused_port()}", tokens, sleeps)
    with pytest.raises(UpstreamUnavailableError) as caught:
        transport.write("POST", "/api/patients", json={"first_name": "A"})
    assert transport.requests_made == 3  # the first try and two more: nothing was ever sent
    assert len(sleeps) == 2
    assert caught.value.details["reason"] == "connect_failed"
    assert caught.value.details["attempts"] == 3


def test_write_connect_attempts_follow_the_policy(tokens: FakeTokens, sleeps: list[float]) -> None:
    transport = make(
        f"http://127.0.0.1:{unused_port()}",
        tokens,
        sleeps,
        retry=RetryPolicy(write_connect_attempts=1),
    )
    with pytest.raises(UpstreamUnavailableError):
        transport.write("DELETE", "/api/patients/1")
    assert transport.requests_made == 1
    assert sleeps == []


def test_successful_writes_return_status_and_body(stub: StubServer, client: EHRTransport) -> None:
    stub.add("POST", "/api/patients", json_answer({"id": 42}, 201))
    stub.add("PATCH", "/api/patients/42", Answer(204))
    created = client.write(
        "POST", "/api/patients", json={"first_name": "A"}, params={"allow_duplicates": "true"}
    )
    updated = client.write("PATCH", "/api/patients/42", json={"first_name": "B"})
    assert (created.status, created.body) == (201, {"id": 42})
    assert (updated.status, updated.body) == (204, None)
    assert stub.requests[0].json() == {"first_name": "A"}
    assert stub.requests[0].query == "allow_duplicates=true"
    assert created.correlation_id == stub.requests[0].headers["X-Correlation-ID"]


def test_unreadable_success_body_on_a_write_is_outcome_unknown(
    stub: StubServer, client: EHRTransport
) -> None:
    stub.add(
        "POST", "/api/patients", Answer(201, b"<html>created</html>", {"Content-Type": "text/html"})
    )
    with pytest.raises(WriteOutcomeUnknownError) as caught:
        client.write("POST", "/api/patients", json={})
    assert caught.value.details["status"] == 201


def test_duplicate_patient_409_is_mapped_and_sent_once(
    stub: StubServer, client: EHRTransport
) -> None:
    stub.add(
        "POST",
        "/api/patients",
        json_answer({"detail": "Potential duplicate patient(s) found."}, 409),
    )
    with pytest.raises(DuplicatePatientError):
        client.write("POST", "/api/patients", json={})
    assert stub.count("POST") == 1


def test_write_rejects_read_methods(client: EHRTransport) -> None:
    with pytest.raises(ValueError, match="POST, PUT, PATCH or DELETE"):
        client.write("GET", "/api/patients")  # type: ignore[arg-type]


# -- budget, throttle, correlation ids, logs ------------------------------------------------------


def test_exhausted_budget_fails_fast_with_no_request(stub: StubServer, tokens, sleeps) -> None:
    budget = CountingBudget(allowance=2)
    transport = make(stub.base_url, tokens, sleeps, budget=budget)
    stub.add("GET", "/x", json_answer({}))
    transport.get_json("/x")
    transport.get_json("/x")
    with pytest.raises(RateLimitedError) as caught:
        transport.get_json("/x")
    assert stub.count() == 2
    assert budget.spent == 2
    assert caught.value.retry_at == FIXED_NOW.replace(hour=8)
    assert caught.value.correlation_id  # tagged by the transport
    with pytest.raises(RateLimitedError):
        transport.write("POST", "/x", json={})
    assert stub.count() == 2


def test_every_request_waits_on_the_throttle_and_spends_budget(
    stub: StubServer, tokens, sleeps
) -> None:
    now = [0.0]
    throttle_sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        throttle_sleeps.append(seconds)
        now[0] += seconds

    throttle = Throttle(rate_per_s=8, burst=1, clock=lambda: now[0], sleep=fake_sleep)
    budget = CountingBudget(allowance=100)
    transport = make(stub.base_url, tokens, sleeps, throttle=throttle, budget=budget)
    stub.add("GET", "/r", Answer(302, headers={"Location": "/x"}))
    stub.add("GET", "/x", json_answer({}))
    transport.get_json("/r")  # two requests: the redirect hop counts too
    transport.get_json("/x")
    assert budget.spent == 3 == transport.requests_made
    assert throttle_sleeps == [0.125, 0.125]


def test_correlation_id_is_fresh_per_call_and_shared_by_retries(
    stub: StubServer, client: EHRTransport
) -> None:
    stub.add("GET", "/x", json_answer({}, 503), json_answer({}))
    client.get_json("/x")
    client.get_json("/x")
    ids = [r.headers["X-Correlation-ID"] for r in stub.requests]
    assert len(ids) == 3
    assert ids[0] == ids[1] != ids[2]
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids)


def test_logs_hold_no_token_query_values_or_bodies(
    stub: StubServer, tokens: FakeTokens, sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    tokens.current = "secret-access-token-123"
    transport = make(stub.base_url, tokens, sleeps)
    stub.add(
        "GET",
        "/api/patients",
        json_answer({"detail": "x"}, 503),
        json_answer({"results": [{"first_name": "Zebulon"}], "next": None}),
    )
    stub.add(
        "POST",
        "/api/patients",
        json_answer({"detail": "Zebulon Quixote 1931-03-17 Traceback"}, 500),
    )
    caplog.set_level(logging.DEBUG)
    transport.get_json(
        "/api/patients", params={"last_name": "Quixote", "date_of_birth": "1931-03-17"}
    )
    with pytest.raises(WriteOutcomeUnknownError) as caught:
        transport.write("POST", "/api/patients", json={"first_name": "Zebulon"})
    # Only the EHR layer's own records: urllib3 logs full URLs at DEBUG and is held at WARNING
    # by the app's logging setup (LG-01), not by the transport.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ehr"))
    text = ours + str(caught.value) + repr(caught.value.to_dict())
    for secret in ("secret-access-token-123", "Zebulon", "Quixote", "1931"):
        assert secret not in text
    assert "GET /api/patients -> 503" in ours
    assert "GET /api/patients -> 200" in ours
    cid = stub.requests[0].headers["X-Correlation-ID"]
    assert any(getattr(r, "correlation_id", None) == cid for r in caplog.records)


def test_token_source_errors_carry_the_correlation_id(stub: StubServer, sleeps) -> None:
    from ehr.errors import NotConnectedError

    class NoTokens(FakeTokens):
        def access_token(self) -> str:
            raise NotConnectedError()

    transport = make(stub.base_url, NoTokens(), sleeps)
    with pytest.raises(NotConnectedError) as caught:
        transport.get_json("/x")
    assert caught.value.correlation_id
    assert stub.requests == []
