"""``ConnectionTokens`` against the real sandbox: single-flight refresh, rotation, expiry (TK-02, TK-03).

Connections are made through the real OAuth flow (``Env.connect``), so the refresh tokens are
live sandbox tokens that rotate on every refresh. The app clock is a ``FakeClock``; the sandbox
keeps real time, so "expired" here means expired by the app's own reckoning, which is what
decides a proactive refresh.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from cryptography.fernet import Fernet

import ehr.oauth_endpoints
import ehr.tokens
from ehr.errors import (
    ConfigurationError,
    NotConnectedError,
    ReauthorizationRequiredError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from ehr.tokens import ConnectionTokens
from ehr.transport import EHRTransport
from storage.crypto import Cipher
from storage.database import make_engine
from storage.tokens import EXPIRY_SAFETY_MARGIN, connection_status, load_tokens
from tests.ehr.stub_server import Answer, StubServer, json_answer
from tests.ehr.test_oauth_callback import (
    ADMIN,
    AUDIT_KEY,
    T0,
    Env,
    FakeClock,
    audit_rows,
    details,
    sandbox_env,
    store_connection,
    stub_config,
)

TTL = timedelta(seconds=172800)  # the sandbox's access-token lifetime (DrChrono's 48 h)
LATER = T0 + timedelta(days=3)  # past any token issued at T0
THREADS = 5
JOIN_TIMEOUT_S = 15.0


@pytest.fixture(autouse=True)
def _loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the sandbox is plain http on loopback


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with sandbox_env(tmp_path) as running:
        yield running


def _run_together(calls: list[ehr.tokens.ConnectionTokens]) -> list[str]:
    """Call ``access_token()`` on every instance at once; return what each one got."""
    barrier = threading.Barrier(len(calls))
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(tokens: ConnectionTokens) -> None:
        barrier.wait(JOIN_TIMEOUT_S)
        try:
            token = tokens.access_token()
        except BaseException as exc:  # reported by the assertion below
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(token)

    threads = [threading.Thread(target=worker, args=(t,)) for t in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert errors == []
    return results


# --------------------------------------------------------------------------- TK-02


def test_five_threads_with_an_expired_token_make_exactly_one_refresh(env: Env) -> None:
    connection_id = env.connect(now=T0).connection_id
    old = env.stored(connection_id)
    tokens = env.tokens(connection_id, clock=FakeClock(LATER))

    results = _run_together([tokens] * THREADS)

    assert env.token_posts() == 2  # the code exchange, then exactly one refresh
    new = env.stored(connection_id)
    assert results == [new.access_token.reveal()] * THREADS
    assert new.access_token != old.access_token
    assert new.refresh_token is not None
    assert new.refresh_token != old.refresh_token
    assert new.version == old.version + 1
    assert env.accepted(new.access_token.reveal())
    assert not env.accepted(old.access_token.reveal())  # rotation retired the old pair
    [row] = audit_rows(env.engine, "TOKEN_REFRESHED")
    assert (row.user_id, row.username, row.outcome) == (None, "system", "SUCCESS")
    assert details(row) == {"connection_id": connection_id}


def test_processes_without_a_shared_lock_still_refresh_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each "process" gets its own engine on the same SQLite file and no shared in-process lock:
    # only the database lock and the re-read inside it stand between them and a double refresh.
    monkeypatch.setattr(ehr.tokens, "_process_lock", lambda _connection_id: threading.Lock())
    connection_id = env.connect(now=T0).connection_id
    engines = [make_engine(env.db_url) for _ in range(3)]
    instances = [
        ConnectionTokens(
            engine,
            env.cipher,
            env.config,
            connection_id,
            audit_key=AUDIT_KEY,
            clock=FakeClock(LATER),
        )
        for engine in engines
    ]
    try:
        results = _run_together(instances)
    finally:
        for engine in engines:
            engine.dispose()

    assert env.token_posts() == 2
    assert set(results) == {env.stored(connection_id).access_token.reveal()}
    assert len(audit_rows(env.engine, "TOKEN_REFRESHED")) == 1


def test_another_process_uses_the_refreshed_token_without_refreshing(env: Env) -> None:
    connection_id = env.connect(now=T0).connection_id
    first = env.tokens(connection_id, clock=FakeClock(LATER)).access_token()
    other_engine = make_engine(env.db_url)
    try:
        other = ConnectionTokens(
            other_engine,
            env.cipher,
            env.config,
            connection_id,
            audit_key=AUDIT_KEY,
            clock=FakeClock(LATER + timedelta(minutes=5)),
        )
        assert other.access_token() == first
    finally:
        other_engine.dispose()
    assert env.token_posts() == 2


def test_invalid_grant_marks_the_connection_and_is_never_retried(env: Env) -> None:
    connection_id = env.connect(now=T0).connection_id
    env.provider.revoke_all_tokens()
    tokens = env.tokens(connection_id, clock=FakeClock(LATER), actor=ADMIN)

    with pytest.raises(ReauthorizationRequiredError) as caught:
        tokens.access_token()

    assert caught.value.details == {"reason": "invalid_grant"}
    assert env.token_posts() == 2
    status = connection_status(env.engine, connection_id)
    assert status is not None
    assert (status.needs_reauth, status.reauth_reason) == (True, "invalid_grant")
    for attempt in (tokens.access_token, lambda: tokens.refresh_after_unauthorized("x")):
        with pytest.raises(ReauthorizationRequiredError):
            attempt()
    assert env.token_posts() == 2  # no further token POSTs
    [row] = audit_rows(env.engine, "TOKEN_REFRESH_FAILED")
    assert (row.outcome, row.user_id) == ("ERROR", ADMIN.user_id)
    assert details(row) == {"connection_id": connection_id, "error_code": "invalid_grant"}


# --------------------------------------------------------------------------- TK-03


def test_refresh_happens_inside_the_margin_of_the_server_stated_expiry(env: Env) -> None:
    connection_id = env.connect(now=T0).connection_id
    original = env.stored(connection_id).access_token.reveal()
    server_expiry = T0 + TTL  # expires_in counted from our receipt time (T0)
    clock = FakeClock(server_expiry - EXPIRY_SAFETY_MARGIN - timedelta(seconds=1))
    tokens = env.tokens(connection_id, clock=clock)

    assert tokens.access_token() == original  # 121 s left: still outside the margin
    assert env.token_posts() == 1

    clock.set(server_expiry - timedelta(seconds=1))
    renewed = tokens.access_token()

    assert renewed != original
    assert env.token_posts() == 2
    assert env.accepted(renewed)


def test_expiry_counts_from_local_receipt_time_never_the_server_date(env: Env) -> None:
    # The app clock is years away from the sandbox's (whose Date header is real time); the
    # stored expiry must follow the app clock at receipt.
    connection_id = env.connect(now=T0).connection_id
    received = T0 + timedelta(days=400)
    env.tokens(connection_id, clock=FakeClock(received)).access_token()

    status = connection_status(env.engine, connection_id)
    assert status is not None
    assert status.expires_at == received + TTL - EXPIRY_SAFETY_MARGIN
    assert status.last_refreshed_at == received


def test_a_wider_margin_refreshes_earlier(env: Env) -> None:
    connection_id = env.connect(now=T0).connection_id
    clock = FakeClock(T0 + TTL - timedelta(seconds=299))
    original = env.stored(connection_id).access_token.reveal()

    assert env.tokens(connection_id, clock=clock).access_token() == original
    assert (
        env.tokens(connection_id, clock=clock, margin=timedelta(seconds=300)).access_token()
        != original
    )
    assert env.token_posts() == 2


# --------------------------------------------------------------------------- 401 handling


def test_after_a_401_a_token_someone_else_refreshed_is_used_as_is(env: Env) -> None:
    connection_id = env.connect(now=T0).connection_id
    stale = env.stored(connection_id).access_token.reveal()
    current = env.tokens(connection_id, clock=FakeClock(LATER)).access_token()
    assert env.token_posts() == 2

    again = env.tokens(connection_id, clock=FakeClock(LATER)).refresh_after_unauthorized(stale)

    assert again == current
    assert env.token_posts() == 2


def test_a_401_from_the_api_refreshes_once_and_the_read_succeeds(env: Env) -> None:
    connection_id = env.connect(now=T0).connection_id
    env.provider.expire_all_tokens()  # upstream says expired; our clock says it is fine
    transport = EHRTransport(
        env.config.base_url, env.tokens(connection_id, clock=FakeClock(T0)), sleep=lambda _s: None
    )
    try:
        user = transport.get_json("/api/users/current")
    finally:
        transport.close()

    assert user["username"] == "demo"
    assert env.token_posts() == 2
    assert env.accepted(env.stored(connection_id).access_token.reveal())


# --------------------------------------------------------------------------- unusable connections


def test_unknown_connection_is_not_connected(env: Env) -> None:
    with pytest.raises(NotConnectedError):
        env.tokens(12345).access_token()
    assert env.token_posts() == 0


def test_unreadable_tokens_need_reauthorisation_and_are_audited_once(env: Env) -> None:
    connection_id = env.connect(now=T0).connection_id
    wrong_key = ConnectionTokens(
        env.engine,
        Cipher([Fernet.generate_key()]),
        env.config,
        connection_id,
        audit_key=AUDIT_KEY,
    )

    for _ in range(2):
        with pytest.raises(ReauthorizationRequiredError) as caught:
            wrong_key.access_token()
        assert caught.value.details == {"reason": "token_decrypt_failed"}

    [row] = audit_rows(env.engine, "TOKEN_DECRYPT_FAILED")
    assert details(row) == {"connection_id": connection_id}
    assert env.token_posts() == 1


# --------------------------------------------------------------------------- token endpoint failures


@pytest.fixture
def stub_env(tmp_path: Path) -> Iterator[tuple[StubServer, Env]]:
    """A connection whose upstream is a scripted stub (for failures the sandbox cannot make)."""
    with sandbox_env(tmp_path) as running, StubServer() as stub:
        running.config = stub_config(stub.base_url)
        yield stub, running


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (json_answer({"detail": "Server Error"}, 500), UpstreamUnavailableError),
        (json_answer({"error": "temporarily_unavailable"}, 400), UpstreamUnavailableError),
        (Answer(200, b"{}", action="stall_after_processing", stall_s=1.0), UpstreamTimeoutError),
    ],
    ids=["500", "temporarily_unavailable", "timeout"],
)
def test_token_endpoint_failures_leave_the_connection_usable(
    stub_env: tuple[StubServer, Env],
    monkeypatch: pytest.MonkeyPatch,
    answer: Answer,
    error: type[Exception],
) -> None:
    # Keep the timeout case fast.
    monkeypatch.setattr(ehr.oauth_endpoints, "REFRESH_TIMEOUT_S", (1.0, 0.3))
    stub, env = stub_env
    stub.add("POST", "/o/token/", answer)
    connection_id = store_connection(env.engine, env.cipher, stub.base_url)
    before = env.stored(connection_id)

    with pytest.raises(error):
        env.tokens(connection_id, clock=FakeClock(LATER)).access_token()

    assert stub.count("POST", "/o/token/") == 1
    status = connection_status(env.engine, connection_id)
    assert status is not None
    assert not status.needs_reauth
    after = load_tokens(env.engine, env.cipher, connection_id)
    assert after == before  # nothing written: the stored pair is still the one to try later
    [row] = audit_rows(env.engine, "TOKEN_REFRESH_FAILED")
    assert row.outcome == "ERROR"


def test_the_refresh_form_carries_the_client_credentials_in_the_body(
    stub_env: tuple[StubServer, Env],
) -> None:
    stub, env = stub_env
    stub.add(
        "POST",
        "/o/token/",
        json_answer(
            {
                "access_token": "AT-new",
                "refresh_token": "RT-new",
                "expires_in": 7200,
                "token_type": "Bearer",
            }
        ),
    )
    connection_id = store_connection(env.engine, env.cipher, stub.base_url)

    assert env.tokens(connection_id, clock=FakeClock(LATER)).access_token() == "AT-new"

    [request] = stub.requests
    form = dict(parse_qsl(request.body.decode(), strict_parsing=True))
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "RT-stub-old-1",
        "client_id": env.config.client_id,
        "client_secret": env.config.client_secret.reveal(),
    }
    assert "Authorization" not in request.headers
    stored = env.stored(connection_id)
    assert stored.refresh_token is not None
    assert stored.refresh_token.reveal() == "RT-new"
    assert stored.scopes == env.config.scopes  # no scope in the answer: unchanged


def test_tokens_are_never_sent_to_an_ehr_other_than_the_connections(
    stub_env: tuple[StubServer, Env],
) -> None:
    stub, env = stub_env
    connection_id = store_connection(env.engine, env.cipher, "https://drchrono.example")

    with pytest.raises(ConfigurationError):
        env.tokens(connection_id, clock=FakeClock(LATER)).access_token()

    assert stub.requests == []
