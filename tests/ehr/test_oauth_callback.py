"""The OAuth callback and disconnect against the real sandbox over loopback (OA-01, OA-02, OA-04, TK-04).

Each test starts its own sandbox (uvicorn on 127.0.0.1:0) and a fresh SQLite file, drives the
consent page with plain ``requests`` as a browser would (demo/demo) and hands the callback's query
parameters to ``complete_authorization``. ``provider.token_requests()`` counts every POST that
reached ``/o/token/``, which is how "no token request was made" is proven. The ``Env`` helper is
shared with test_tokens.py and test_budget.py.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from ehr.errors import (
    GrantRefusedError,
    NotConnectedError,
    OAuthAuthorizationFailed,
    OAuthCallbackRejected,
    ReauthorizationRequiredError,
    UnsafeRedirectError,
    UpstreamUnavailableError,
)
from ehr.oauth import (
    ConnectResult,
    OAuthClientConfig,
    begin_authorization,
    complete_authorization,
    revoke_and_disconnect,
)
from ehr.oauth_endpoints import request_refresh
from ehr.policy import Principal
from ehr.redaction import QUIET_LOGGERS
from ehr.sandbox.clinic import Clinic, ClinicConfig, generate_clinic
from ehr.sandbox.oauth import SandboxAuthError
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.tokens import ConnectionTokens
from storage.audit import AuditEvent
from storage.crypto import Cipher, Secret
from storage.database import create_schema, make_engine
from storage.oauth_state import OAuthState, hash_reference, pkce_challenge
from storage.tokens import (
    ConnectionProfile,
    EHRConnection,
    TokenGrant,
    TokenSet,
    connection_status,
    expires_at_from,
    load_tokens,
    save_connection_tokens,
    save_refreshed_tokens,
)
from tests.ehr.stub_server import StubServer, json_answer

CLIENT_ID = "dashboard-app"
CLIENT_SECRET = "client-secret-Kq7Zx93-distinct"  # distinctive so a log leak is unmistakable
REDIRECT = "http://127.0.0.1:8501/ehr-auth/callback"
SCOPES = ("user:read", "patients:read", "calendar:read")
AUDIT_KEY = b"audit-key-for-tests-0123456789abcdef"
SESSION = "session-ref-a"
ADMIN = Principal(user_id=1, username="admin", role="admin", is_active=True)
OTHER_ADMIN = Principal(user_id=2, username="admin2", role="admin", is_active=True)
HTTP_TIMEOUT_S = 10.0
# The sandbox's request log lags the response by a moment: poll it this often, this long at most.
LOG_SETTLE_S = 0.05
LOG_SETTLE_TIMEOUT_S = 2.0
# The sandbox's demo practice (generated with the seed below): user, doctor and practice group.
EHR_USER_ID, EHR_DOCTOR_ID, EHR_PRACTICE_GROUP = "90001", "120001", "71001"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@functools.cache
def small_clinic() -> Clinic:
    config = ClinicConfig(
        seed=7, patients=5, months_back=0, months_ahead=0, today=dt.date(2026, 3, 2)
    )
    return generate_clinic(config)


class FakeClock:
    """Aware UTC datetimes that move only when a test says so."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when


@dataclass
class Env:
    """A running sandbox, an empty database and the OAuth client configured for both."""

    server: SandboxServer
    engine: Engine
    cipher: Cipher
    config: OAuthClientConfig
    db_url: str
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def provider(self) -> Any:
        return self.server.provider

    def token_posts(self) -> int:
        return int(self.provider.token_requests())

    def requests_to(self, method: str, path_prefix: str) -> int:
        """Requests the sandbox answered, once its log has caught up.

        The server appends to its log just after the response has left, so a count read the
        moment the client returns can be one short; wait until it holds still.
        """
        log = self.server.sandbox.request_log
        deadline = time.monotonic() + LOG_SETTLE_TIMEOUT_S
        seen = log.count(method=method, path_prefix=path_prefix)
        while time.monotonic() < deadline:
            time.sleep(LOG_SETTLE_S)
            now = log.count(method=method, path_prefix=path_prefix)
            if now == seen:
                break
            seen = now
        return int(seen)

    def authorize(
        self,
        *,
        actor: Principal = ADMIN,
        session_ref: str = SESSION,
        now: datetime | None = None,
        tamper: Callable[[str], str] | None = None,
        decision: str = "allow",
    ) -> dict[str, str]:
        """Begin the flow and answer the consent page; returns the callback's query params."""
        url = begin_authorization(
            self.engine,
            self.cipher,
            self.config,
            user_id=actor.user_id,
            session_ref=session_ref,
            now=now,
        )
        if tamper is not None:
            url = tamper(url)
        page = self.http.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT_S)
        assert page.status_code == 200, page.text
        match = re.search(r'name="request_id" value="([^"]+)"', page.text)
        assert match, "consent form has no request_id"
        reply = self.http.post(
            self.server.base_url + "/o/authorize/",
            data={
                "request_id": match.group(1),
                "decision": decision,
                "username": "demo",
                "password": "demo",
            },
            allow_redirects=False,
            timeout=HTTP_TIMEOUT_S,
        )
        assert reply.status_code == 302
        location = reply.headers["Location"]
        assert location.startswith(REDIRECT + "?")
        return dict(parse_qsl(urlsplit(location).query))

    def complete(
        self,
        params: dict[str, str],
        *,
        actor: Principal = ADMIN,
        session_ref: str = SESSION,
        now: datetime | None = None,
        config: OAuthClientConfig | None = None,
    ) -> ConnectResult:
        return complete_authorization(
            self.engine,
            self.cipher,
            config or self.config,
            audit_key=AUDIT_KEY,
            actor=actor,
            session_ref=session_ref,
            params=params,
            now=now,
        )

    def connect(self, now: datetime | None = None) -> ConnectResult:
        return self.complete(self.authorize(now=now), now=now)

    def stored(self, connection_id: int) -> TokenSet:
        tokens = load_tokens(self.engine, self.cipher, connection_id)
        assert isinstance(tokens, TokenSet)
        return tokens

    def tokens(self, connection_id: int, **kwargs: Any) -> ConnectionTokens:
        return ConnectionTokens(
            self.engine, self.cipher, self.config, connection_id, audit_key=AUDIT_KEY, **kwargs
        )

    def accepted(self, access_token: str) -> bool:
        try:
            self.provider.authenticate(f"Bearer {access_token}", ())
        except SandboxAuthError:
            return False
        return True


@contextmanager
def sandbox_env(tmp_path: Path, **overrides: Any) -> Iterator[Env]:
    """Start a sandbox with this test client registered, and an empty SQLite database."""
    config = SandboxConfig(
        clinic=ClinicConfig(),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=(REDIRECT,),
        rate_limit_per_hour=0,
        burst_per_second=0,
        **overrides,
    )
    db_url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(db_url)
    create_schema(engine)
    server = SandboxServer(config, clinic=small_clinic()).start()
    oauth = OAuthClientConfig(
        base_url=server.base_url,
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        redirect_uri=REDIRECT,
        scopes=SCOPES,
    )
    env = Env(server, engine, Cipher([Fernet.generate_key()]), oauth, db_url)
    try:
        yield env
    finally:
        env.http.close()
        server.stop()
        engine.dispose()


def audit_rows(engine: Engine, action: str | None = None) -> list[AuditEvent]:
    with Session(engine) as session:
        query = select(AuditEvent).order_by(col(AuditEvent.seq))
        if action is not None:
            query = query.where(col(AuditEvent.action) == action)
        return list(session.exec(query))


def details(row: AuditEvent) -> dict[str, Any]:
    return dict(json.loads(row.details))


def connection_count(engine: Engine) -> int:
    with Session(engine) as session:
        return len(list(session.exec(select(EHRConnection))))


def stub_config(base_url: str) -> OAuthClientConfig:
    return OAuthClientConfig(
        base_url=base_url,
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        redirect_uri=REDIRECT,
        scopes=SCOPES,
    )


def store_connection(engine: Engine, cipher: Cipher, base_url: str, *, at: datetime = T0) -> int:
    """A connection saved directly (no flow), for tests whose upstream is a stub."""
    grant = TokenGrant(
        access_token=Secret("AT-stub-old-1"),
        refresh_token=Secret("RT-stub-old-1"),
        token_type="Bearer",
        scopes=SCOPES,
        expires_at=expires_at_from(at, 172800),
        obtained_at=at,
    )
    profile = ConnectionProfile(vendor="drchrono", base_url=base_url, requested_scopes=SCOPES)
    return save_connection_tokens(engine, cipher, grant, profile).connection_id


@pytest.fixture(autouse=True)
def _loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the sandbox is plain http on loopback


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with sandbox_env(tmp_path) as running:
        yield running


# --------------------------------------------------------------------------- the happy path


def test_callback_connects_and_stores_the_ehr_user(env: Env) -> None:
    result = env.connect()

    assert result.ehr_username == "demo"
    assert result.practice_group == EHR_PRACTICE_GROUP
    assert result.missing_scopes == ()
    assert env.token_posts() == 1
    status = connection_status(env.engine, result.connection_id)
    assert status is not None
    assert (status.ehr_user_id, status.doctor_id) == (EHR_USER_ID, EHR_DOCTOR_ID)
    assert status.connected_by_user_id == ADMIN.user_id
    assert status.requested_scopes == SCOPES
    assert set(status.scopes) == set(SCOPES)
    # The stored token is the live one the sandbox issued.
    assert env.accepted(env.stored(result.connection_id).access_token.reveal())
    # users/current is a 302 to /api/users/<id>; the bearer token was resent on the same origin.
    assert env.requests_to("GET", "/api/users/") == 2
    [row] = audit_rows(env.engine, "EHR_CONNECT")
    assert (row.outcome, row.user_id, row.resource_id) == (
        "SUCCESS",
        ADMIN.user_id,
        str(result.connection_id),
    )
    assert details(row) == {
        "connection_id": result.connection_id,
        "ehr_user_id": EHR_USER_ID,
        "missing_scopes": [],
    }


def test_scopes_the_user_did_not_grant_are_reported(env: Env) -> None:
    # DrChrono may grant fewer scopes than asked; here the consent was for two of the three.
    def narrow(url: str) -> str:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query["scope"] = "user:read patients:read"
        return urlunsplit(parts._replace(query=urlencode(query)))

    result = env.complete(env.authorize(tamper=narrow))

    assert result.missing_scopes == ("calendar:read",)


# --------------------------------------------------------------------------- OA-01


def _expect_rejection(env: Env, params: dict[str, str], reason: str, **kwargs: Any) -> None:
    posts_before = env.token_posts()
    with pytest.raises(OAuthCallbackRejected) as caught:
        env.complete(params, **kwargs)
    assert type(caught.value) is OAuthCallbackRejected
    assert caught.value.details == {"reason": reason}
    assert (
        caught.value.message == "This sign-in link is no longer valid. Start the connection again."
    )
    assert env.token_posts() == posts_before  # checked before anything else: no token request
    row = audit_rows(env.engine, "OAUTH_CALLBACK_REJECTED")[-1]
    assert (row.outcome, details(row)) == ("DENIED", {"reason": reason})


def test_a_state_never_issued_is_rejected_without_a_token_request(env: Env) -> None:
    params = env.authorize()  # a real code, but a state this app never issued
    _expect_rejection(env, {**params, "state": "forged-state-value"}, "unknown")
    _expect_rejection(env, {"code": params["code"]}, "missing_state")
    assert env.token_posts() == 0
    assert connection_count(env.engine) == 0


def test_a_state_used_twice_is_rejected_the_second_time(env: Env) -> None:
    params = env.authorize()
    env.complete(params)
    assert env.token_posts() == 1

    _expect_rejection(env, params, "consumed")
    assert env.token_posts() == 1


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [({"actor": OTHER_ADMIN}, "other_user"), ({"session_ref": "session-ref-b"}, "other_session")],
)
def test_a_state_presented_by_another_user_or_session_is_rejected_and_burnt(
    env: Env, kwargs: dict[str, Any], reason: str
) -> None:
    params = env.authorize()
    _expect_rejection(env, params, reason, **kwargs)
    # The leaked state is burnt: even its rightful owner cannot use it any more.
    _expect_rejection(env, params, "consumed")
    assert env.token_posts() == 0


def test_a_state_older_than_ten_minutes_is_rejected(env: Env) -> None:
    params = env.authorize(now=T0)
    _expect_rejection(env, params, "expired", now=T0 + timedelta(minutes=11))
    assert env.token_posts() == 0


def test_a_callback_without_a_code_is_rejected_after_the_state_check(env: Env) -> None:
    params = env.authorize()
    _expect_rejection(env, {"state": params["state"]}, "missing_code")


# --------------------------------------------------------------------------- upstream error=


def test_access_denied_is_reported_by_its_code_only(env: Env) -> None:
    params = env.authorize(decision="deny")
    assert params["error"] == "access_denied"

    with pytest.raises(OAuthAuthorizationFailed) as caught:
        env.complete(params)

    assert caught.value.details == {"error_code": "access_denied"}
    assert "access_denied" in caught.value.message
    assert env.token_posts() == 0
    [row] = audit_rows(env.engine, "EHR_CONNECT")
    assert (row.outcome, details(row)) == ("DENIED", {"error_code": "access_denied"})


def test_an_unrecognised_error_value_is_never_echoed(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    state = env.authorize()["state"]
    injected = "x\nINFO forged line <script>"
    caplog.set_level(logging.DEBUG)

    with pytest.raises(OAuthAuthorizationFailed) as caught:
        env.complete({"state": state, "error": injected, "error_description": "Zebulon"})

    assert caught.value.details == {"error_code": "unrecognised_error"}
    assert "forged" not in caught.value.message
    assert "forged" not in caplog.text
    assert "Zebulon" not in caplog.text


# --------------------------------------------------------------------------- OA-02


def test_the_exchange_fails_when_the_code_was_bound_to_another_verifier(env: Env) -> None:
    # The sandbox enforces PKCE once a challenge was sent, so every successful exchange in this
    # file proves the stored verifier was posted. Here the authorize request carried the
    # challenge of a different verifier, so the stored one no longer matches the code.
    def swap_challenge(url: str) -> str:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query["code_challenge"] = pkce_challenge(Secret("another-verifier-" + "v" * 40))
        return urlunsplit(parts._replace(query=urlencode(query)))

    params = env.authorize(tamper=swap_challenge)

    with pytest.raises(OAuthAuthorizationFailed) as caught:
        env.complete(params)

    assert caught.value.details == {"error_code": "invalid_grant"}
    assert env.token_posts() == 1
    assert connection_count(env.engine) == 0
    [row] = audit_rows(env.engine, "EHR_CONNECT")
    assert (row.outcome, details(row)) == ("ERROR", {"error_code": "invalid_grant"})


@pytest.mark.parametrize("module", ["ehr/oauth.py", "ehr/oauth_endpoints.py"])
def test_the_oauth_modules_never_mention_the_plain_pkce_method(module: str) -> None:
    # OA-02: S256 only. Not even a comment may name the other method, so it cannot creep in.
    source = (Path(__file__).resolve().parents[2] / module).read_text()
    assert "plain" not in source.lower()


# --------------------------------------------------------------------------- OA-04 / LG-01


def test_no_code_state_verifier_token_or_secret_reaches_the_logs(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    # The browser's part (the authorize page, the consent form) is not the app's: its requests
    # carry the state in the URL by design. Capture starts when the callback reaches the app.
    params = env.authorize(now=T0)
    with Session(env.engine) as session:
        row = session.exec(
            select(OAuthState).where(col(OAuthState.state_hash) == hash_reference(params["state"]))
        ).one()
        assert row.code_verifier_ciphertext is not None
        verifier = env.cipher.decrypt(row.code_verifier_ciphertext)
    caplog.clear()
    for name in QUIET_LOGGERS:  # as in a fresh process: following root down to DEBUG
        caplog.set_level(logging.NOTSET, logger=name)
    caplog.set_level(logging.DEBUG)
    clock = FakeClock(T0 + timedelta(days=3))  # past expiry: the first use refreshes

    result = env.complete(params, now=T0)
    first = env.stored(result.connection_id)
    renewed = env.tokens(result.connection_id, clock=clock).access_token()
    second = env.stored(result.connection_id)

    assert env.token_posts() == 2
    assert renewed != first.access_token.reveal()
    assert first.refresh_token is not None
    assert second.refresh_token is not None
    assert "EHR connected" in caplog.text
    assert "token refreshed" in caplog.text
    leaks = [
        params["code"],
        params["state"],
        verifier,
        CLIENT_SECRET,
        first.access_token.reveal(),
        first.refresh_token.reveal(),
        renewed,
        second.refresh_token.reveal(),
    ]
    for value in leaks:
        assert value not in caplog.text


# --------------------------------------------------------------------------- redirects and failures


def test_users_current_redirecting_to_another_origin_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    create_schema(engine)
    cipher = Cipher([Fernet.generate_key()])
    with StubServer() as upstream, StubServer() as elsewhere:
        config = stub_config(upstream.base_url)
        upstream.add(
            "POST",
            "/o/token/",
            json_answer(
                {
                    "access_token": "AT-stub-abc",
                    "refresh_token": "RT-stub-abc",
                    "expires_in": 172800,
                    "token_type": "Bearer",
                    "scope": " ".join(SCOPES),
                }
            ),
        )
        upstream.add(
            "GET",
            "/api/users/current",
            json_answer(None, 302, Location=elsewhere.base_url + "/api/users/1"),
        )
        upstream.add("POST", "/o/revoke_token/", json_answer(None, 200))
        url = begin_authorization(
            engine, cipher, config, user_id=ADMIN.user_id, session_ref=SESSION
        )
        state = dict(parse_qsl(urlsplit(url).query))["state"]

        with pytest.raises(UnsafeRedirectError):
            complete_authorization(
                engine,
                cipher,
                config,
                audit_key=AUDIT_KEY,
                actor=ADMIN,
                session_ref=SESSION,
                params={"code": "stub-code", "state": state},
            )

        assert elsewhere.requests == []  # the token never reached the other host
        assert upstream.count("GET", "/api/users/current") == 1
        # The code is spent and the user must start again: the fresh tokens were revoked.
        revoked = [
            dict(parse_qsl(r.body.decode()))
            for r in upstream.requests
            if r.path == "/o/revoke_token/"
        ]
        assert [(r["token"], r["token_type_hint"]) for r in revoked] == [
            ("RT-stub-abc", "refresh_token"),
            ("AT-stub-abc", "access_token"),
        ]
    assert connection_count(engine) == 0
    [row] = audit_rows(engine, "EHR_CONNECT")
    assert (row.outcome, details(row)) == ("ERROR", {"error_code": "unsafe_redirect"})
    engine.dispose()


def test_a_failing_token_endpoint_is_unavailable_not_a_rejection(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    create_schema(engine)
    cipher = Cipher([Fernet.generate_key()])
    with StubServer() as upstream:
        config = stub_config(upstream.base_url)
        upstream.add("POST", "/o/token/", json_answer({"detail": "boom"}, 503))
        url = begin_authorization(
            engine, cipher, config, user_id=ADMIN.user_id, session_ref=SESSION
        )
        state = dict(parse_qsl(urlsplit(url).query))["state"]

        with pytest.raises(UpstreamUnavailableError) as caught:
            complete_authorization(
                engine,
                cipher,
                config,
                audit_key=AUDIT_KEY,
                actor=ADMIN,
                session_ref=SESSION,
                params={"code": "stub-code", "state": state},
            )

        assert caught.value.details == {"status": 503}
        assert upstream.count("POST", "/o/token/") == 1  # never retried: a code is single-use
    [row] = audit_rows(engine, "EHR_CONNECT")
    assert (row.outcome, details(row)) == ("ERROR", {"error_code": "upstream_unavailable"})
    engine.dispose()


# --------------------------------------------------------------------------- TK-04


def test_disconnect_revokes_upstream_deletes_the_row_and_audits(env: Env) -> None:
    result = env.connect()
    before = env.stored(result.connection_id)
    assert before.refresh_token is not None
    api_calls = env.requests_to("GET", "/api/")

    assert revoke_and_disconnect(
        env.engine, env.cipher, env.config, result.connection_id, audit_key=AUDIT_KEY, actor=ADMIN
    )

    assert env.requests_to("POST", "/o/revoke_token/") == 2
    assert not env.accepted(before.access_token.reveal())
    with pytest.raises(GrantRefusedError) as caught:  # the refresh token is dead upstream too
        request_refresh(env.config, before.refresh_token, scopes=SCOPES)
    assert caught.value.error_code == "invalid_grant"
    assert connection_count(env.engine) == 0
    [row] = audit_rows(env.engine, "EHR_DISCONNECT")
    assert (row.outcome, row.user_id) == ("SUCCESS", ADMIN.user_id)
    assert details(row) == {"connection_id": result.connection_id, "revoke_ok": True}

    posts = env.token_posts()
    with pytest.raises(NotConnectedError):
        env.tokens(result.connection_id).access_token()
    assert env.token_posts() == posts
    assert env.requests_to("GET", "/api/") == api_calls


def test_a_failed_upstream_revoke_still_disconnects_and_says_so(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as running:
        result = running.connect()
        running.server.stop()  # upstream gone: the revoke POSTs cannot connect

        revoked = revoke_and_disconnect(
            running.engine,
            running.cipher,
            running.config,
            result.connection_id,
            audit_key=AUDIT_KEY,
            actor=ADMIN,
        )

        assert revoked is False
        assert connection_count(running.engine) == 0
        [row] = audit_rows(running.engine, "EHR_DISCONNECT")
        assert details(row) == {"connection_id": result.connection_id, "revoke_ok": False}


def test_a_connection_flagged_after_invalid_grant_still_has_its_tokens_revoked(env: Env) -> None:
    # A refresh whose rotated pair was only half kept: the stored access token is live, the
    # stored refresh token already retired upstream, so the next refresh meets invalid_grant.
    connection_id = env.connect(now=T0).connection_id
    issued = env.stored(connection_id)
    assert issued.refresh_token is not None
    rotated = request_refresh(env.config, issued.refresh_token, scopes=SCOPES, clock=FakeClock(T0))
    half_kept = TokenGrant(
        access_token=rotated.access_token,
        refresh_token=issued.refresh_token,
        token_type=rotated.token_type,
        scopes=rotated.scopes,
        expires_at=rotated.expires_at,
        obtained_at=rotated.obtained_at,
    )
    save_refreshed_tokens(env.engine, env.cipher, connection_id, half_kept)
    with pytest.raises(ReauthorizationRequiredError):
        env.tokens(connection_id, clock=FakeClock(T0 + timedelta(days=3))).access_token()
    status = connection_status(env.engine, connection_id)
    assert status is not None
    assert (status.needs_reauth, status.reauth_reason) == (True, "invalid_grant")
    assert env.accepted(rotated.access_token.reveal())  # the gap: live upstream, unusable here

    assert revoke_and_disconnect(
        env.engine, env.cipher, env.config, connection_id, audit_key=AUDIT_KEY, actor=ADMIN
    )

    assert env.requests_to("POST", "/o/revoke_token/") == 2
    assert not env.accepted(rotated.access_token.reveal())
    assert connection_count(env.engine) == 0
    [row] = audit_rows(env.engine, "EHR_DISCONNECT")
    assert details(row) == {"connection_id": connection_id, "revoke_ok": True}


def test_unreadable_tokens_are_not_revoked_but_the_connection_is_deleted(env: Env) -> None:
    result = env.connect()
    access = env.stored(result.connection_id).access_token
    not_our_key = Cipher([Fernet.generate_key()])

    revoked = revoke_and_disconnect(
        env.engine, not_our_key, env.config, result.connection_id, audit_key=AUDIT_KEY, actor=ADMIN
    )

    assert revoked is False
    assert env.requests_to("POST", "/o/revoke_token/") == 0
    assert env.accepted(access.reveal())  # nothing could be sent, so upstream still honours it
    assert connection_count(env.engine) == 0
    [row] = audit_rows(env.engine, "EHR_DISCONNECT")
    assert details(row) == {
        "connection_id": result.connection_id,
        "revoke_ok": False,
        "revoke_skipped": "no_readable_tokens",
    }


def test_disconnecting_an_unknown_connection_is_not_connected(env: Env) -> None:
    with pytest.raises(NotConnectedError):
        revoke_and_disconnect(
            env.engine, env.cipher, env.config, 404, audit_key=AUDIT_KEY, actor=ADMIN
        )
    assert env.requests_to("POST", "/o/revoke_token/") == 0
    [row] = audit_rows(env.engine, "EHR_DISCONNECT")
    assert (row.outcome, details(row)) == (
        "ERROR",
        {"connection_id": 404, "reason": "not_connected"},
    )
