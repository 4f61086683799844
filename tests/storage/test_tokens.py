"""Token store, OAuth state rows and the shared API budget on SQLite and PostgreSQL.

SECURITY.md TK-01 (encrypted at rest, no plaintext on disk, failed decrypt = reconnect needed),
TK-02 (single-flight refresh lock, versioned writes) and OA-01/OA-02 (state single use, bound,
10-minute expiry; PKCE S256 verifier stored encrypted).
"""

import base64
import hashlib
import logging
import threading
import time
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlmodel import Session

from storage.crypto import Cipher, Secret
from storage.oauth_state import (
    OAUTH_STATE_RETENTION,
    ConsumedState,
    StateRejected,
    consume_oauth_state,
    create_oauth_state,
    hash_reference,
)
from storage.tokens import (
    BUDGET_RETENTION,
    EXPIRY_SAFETY_MARGIN,
    ConnectionNotFoundError,
    ConnectionProfile,
    ConnectionStatus,
    NeedsReconnect,
    TokenGrant,
    TokenSet,
    TokenVersionConflictError,
    as_utc,
    budget_state,
    connection_status,
    delete_connection,
    delete_connection_tokens,
    expires_at_from,
    list_connections,
    load_tokens,
    load_tokens_for_revocation,
    lock_connection_for_refresh,
    mark_needs_reauth,
    rotate_keys,
    save_connection_tokens,
    save_refreshed_tokens,
    spend_budget,
)

AT = "AT-ZZZ-plain-123"
RT = "RT-ZZZ-plain-456"
NOW = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
SCOPES = ("patients:read", "calendar:read", "billing:read")


@pytest.fixture
def key():
    return Fernet.generate_key()


@pytest.fixture
def cipher(key):
    return Cipher([key])


def _grant(access=AT, refresh=RT, at=NOW, scopes=SCOPES):
    return TokenGrant(
        access_token=Secret(access),
        refresh_token=None if refresh is None else Secret(refresh),
        token_type="Bearer",
        scopes=scopes,
        expires_at=expires_at_from(at, 172800),
        obtained_at=at,
    )


def _profile(base_url="https://drchrono.test"):
    return ConnectionProfile(
        vendor="drchrono",
        base_url=base_url,
        requested_scopes=(*SCOPES, "clinical:read"),
        connected_by_user_id=1,
        ehr_user_id="4242",
        ehr_username="dr.test",
        practice_group="77",
        doctor_id="9",
    )


def _raw(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def _corrupt(engine, connection_id, column="access_token_ciphertext"):
    (value,) = _raw(engine, f"SELECT {column} FROM ehr_connection WHERE id = :i", i=connection_id)[
        0
    ]
    middle = len(value) // 2
    flipped = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE ehr_connection SET {column} = :v WHERE id = :i"),
            {"v": flipped, "i": connection_id},
        )


def _db_bytes(engine) -> bytes:
    main = Path(engine.url.database)
    parts = [main, *(main.with_name(main.name + s) for s in ("-wal", "-journal", "-shm"))]
    return b"".join(p.read_bytes() for p in parts if p.exists())


# --------------------------------------------------------------------------- TK-01 at rest


def test_tokens_never_reach_the_database_in_plaintext(engine, cipher):
    kept = save_connection_tokens(engine, cipher, _grant(), _profile("https://a.test"))
    gone = save_connection_tokens(engine, cipher, _grant(), _profile("https://b.test"))
    for n in (1, 2):
        for saved in (kept, gone):
            save_refreshed_tokens(
                engine, cipher, saved.connection_id, _grant(f"{AT}-v{n}", f"{RT}-v{n}")
            )
    (gone_ciphertext,) = _raw(
        engine,
        "SELECT access_token_ciphertext FROM ehr_connection WHERE id = :i",
        i=gone.connection_id,
    )[0]
    assert delete_connection(engine, gone.connection_id)

    rows = _raw(
        engine, "SELECT access_token_ciphertext, refresh_token_ciphertext FROM ehr_connection"
    )
    assert len(rows) == 1
    for value in rows[0]:
        assert value.startswith("gAAAAA")  # Fernet version byte 0x80, base64
        assert AT not in value
        assert RT not in value
        assert cipher.decrypt(value).startswith(("AT-ZZZ-plain-123-v2", "RT-ZZZ-plain-456-v2"))
    if engine.dialect.name == "sqlite":
        raw = _db_bytes(engine)
        assert raw  # the database file was found
        for needle in (AT, RT):
            assert needle.encode() not in raw
        # secure_delete + WAL truncation: the deleted connection's ciphertext is gone as well.
        assert gone_ciphertext.encode() not in raw
        assert (
            not Path(engine.url.database + "-wal").exists()
            or not Path(engine.url.database + "-wal").stat().st_size
        )


def test_load_tokens_round_trip_and_secrets_stay_masked(engine, cipher):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    tokens = load_tokens(engine, cipher, saved.connection_id)
    assert isinstance(tokens, TokenSet)
    assert tokens.access_token.reveal() == AT
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.reveal() == RT
    assert tokens.scopes == SCOPES
    assert tokens.version == saved.version == 1
    assert tokens.expires_at == NOW + timedelta(seconds=172800) - EXPIRY_SAFETY_MARGIN
    assert tokens.expires_at.tzinfo is not None
    assert tokens.expires_at.utcoffset() == timedelta(0)
    assert AT not in repr(tokens)
    assert RT not in repr(tokens)
    assert not tokens.expired(NOW)
    assert tokens.expired(tokens.expires_at)


@pytest.mark.parametrize("column", ["access_token_ciphertext", "refresh_token_ciphertext"])
def test_corrupted_ciphertext_means_reconnect_not_crash(engine, cipher, caplog, column):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    _corrupt(engine, saved.connection_id, column)
    with caplog.at_level(logging.DEBUG):
        result = load_tokens(engine, cipher, saved.connection_id)
    assert result == NeedsReconnect(saved.connection_id, "token_decrypt_failed", newly_marked=True)
    status = connection_status(engine, saved.connection_id)
    assert status is not None
    assert status.needs_reauth
    assert not status.connected
    assert status.reauth_reason == "token_decrypt_failed"
    assert AT not in caplog.text
    assert RT not in caplog.text
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    # Reported once as new; later calls still refuse, without a second "newly" for the audit.
    again = load_tokens(engine, cipher, saved.connection_id)
    assert again == NeedsReconnect(saved.connection_id, "token_decrypt_failed", newly_marked=False)


def test_wrong_key_means_reconnect(engine, cipher, caplog):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    with caplog.at_level(logging.DEBUG):
        result = load_tokens(engine, Cipher([Fernet.generate_key()]), saved.connection_id)
    assert isinstance(result, NeedsReconnect)
    assert result.reason == "token_decrypt_failed"
    assert AT not in caplog.text
    assert "Traceback" not in caplog.text
    # The connection stays flagged even for the right key until an admin reconnects.
    assert isinstance(load_tokens(engine, cipher, saved.connection_id), NeedsReconnect)
    reconnected = save_connection_tokens(engine, cipher, _grant(), _profile())
    assert reconnected.connection_id == saved.connection_id
    assert isinstance(load_tokens(engine, cipher, saved.connection_id), TokenSet)


def test_rotate_keys_reencrypts_every_secret_under_the_new_key(engine):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    old_cipher = Cipher([old])
    saved = save_connection_tokens(engine, old_cipher, _grant(), _profile())
    issued = create_oauth_state(
        engine,
        old_cipher,
        user_id=1,
        session_ref="s1",
        redirect_uri="https://app/cb",
        scopes=SCOPES,
        now=NOW,
    )
    count = rotate_keys(engine, Cipher([new, old]))
    assert count == 3  # access token, refresh token, PKCE verifier

    only_new = Cipher([new])
    tokens = load_tokens(engine, only_new, saved.connection_id)
    assert isinstance(tokens, TokenSet)
    assert tokens.access_token.reveal() == AT
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.reveal() == RT
    consumed = consume_oauth_state(engine, only_new, issued.state.reveal(), 1, "s1", now=NOW)
    assert isinstance(consumed, ConsumedState)
    assert consumed.code_verifier == issued.code_verifier
    # Rotation leaves nothing the retired key can read.
    (access,) = _raw(engine, "SELECT access_token_ciphertext FROM ehr_connection")[0]
    assert isinstance(load_tokens(engine, Cipher([old]), saved.connection_id), NeedsReconnect)
    assert access.startswith("gAAAAA")


def test_rotate_keys_skips_unreadable_values_and_reports_them(engine, key, cipher, caplog):
    broken = save_connection_tokens(engine, cipher, _grant(), _profile("https://a.test"))
    fine = save_connection_tokens(engine, cipher, _grant(), _profile("https://b.test"))
    _corrupt(engine, broken.connection_id)
    new = Fernet.generate_key()
    with caplog.at_level(logging.WARNING):
        assert rotate_keys(engine, Cipher([new, key])) == 3  # all but the corrupted one
    assert "1 stored secrets" in caplog.text
    assert AT not in caplog.text
    assert RT not in caplog.text
    assert isinstance(load_tokens(engine, Cipher([new]), fine.connection_id), TokenSet)
    assert isinstance(load_tokens(engine, Cipher([new]), broken.connection_id), NeedsReconnect)


# --------------------------------------------------------------------------- writes, versions


def test_refresh_bumps_version_and_keeps_unrotated_refresh_token(engine, cipher):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    later = NOW + timedelta(hours=1)
    first = save_refreshed_tokens(engine, cipher, saved.connection_id, _grant("AT-2", None, later))
    assert first.version == 2
    tokens = load_tokens(engine, cipher, saved.connection_id)
    assert isinstance(tokens, TokenSet)
    assert tokens.access_token.reveal() == "AT-2"
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.reveal() == RT
    status = connection_status(engine, saved.connection_id)
    assert status is not None
    assert status.last_refreshed_at == later
    assert status.connected_at == NOW

    second = save_refreshed_tokens(
        engine, cipher, saved.connection_id, _grant("AT-3", "RT-3", later), expected_version=2
    )
    assert second.version == 3
    with pytest.raises(TokenVersionConflictError):
        save_refreshed_tokens(
            engine, cipher, saved.connection_id, _grant("AT-4", "RT-4"), expected_version=2
        )
    tokens = load_tokens(engine, cipher, saved.connection_id)
    assert isinstance(tokens, TokenSet)
    assert tokens.access_token.reveal() == "AT-3"
    with pytest.raises(ConnectionNotFoundError):
        save_refreshed_tokens(engine, cipher, 999, _grant())


def test_reconnect_replaces_tokens_of_the_same_row(engine, cipher):
    first = save_connection_tokens(engine, cipher, _grant(), _profile())
    mark_needs_reauth(engine, first.connection_id, "invalid_grant")
    second = save_connection_tokens(engine, cipher, _grant("AT-new", "RT-new"), _profile())
    assert second.connection_id == first.connection_id
    assert second.version == 2
    tokens = load_tokens(engine, cipher, first.connection_id)
    assert isinstance(tokens, TokenSet)
    assert tokens.access_token.reveal() == "AT-new"
    assert len(list_connections(engine)) == 1


def test_needs_reauth_reason_is_a_short_code(engine, cipher):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    with pytest.raises(ValueError, match="short code"):
        mark_needs_reauth(engine, saved.connection_id, "invalid_grant: token AT-ZZZ was revoked")
    assert mark_needs_reauth(engine, saved.connection_id, "invalid_grant")
    assert not mark_needs_reauth(engine, 999, "invalid_grant")
    assert load_tokens(engine, cipher, saved.connection_id) == NeedsReconnect(
        saved.connection_id, "invalid_grant"
    )


def test_a_flagged_connections_tokens_are_handed_out_for_revocation_only(engine, cipher):
    # TK-04: after invalid_grant the access token may still be live upstream; disconnect must
    # be able to revoke it although nothing may use it any more.
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    assert mark_needs_reauth(engine, saved.connection_id, "invalid_grant")

    assert load_tokens(engine, cipher, saved.connection_id) == NeedsReconnect(
        saved.connection_id, "invalid_grant"
    )
    tokens = load_tokens_for_revocation(engine, cipher, saved.connection_id)

    assert isinstance(tokens, TokenSet)
    assert tokens.connection_id == saved.connection_id
    assert tokens.access_token.reveal() == AT
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.reveal() == RT
    status = connection_status(engine, saved.connection_id)
    assert status is not None
    assert (status.needs_reauth, status.reauth_reason) == (True, "invalid_grant")  # untouched


def test_nothing_stored_means_nothing_to_revoke(engine, cipher):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    assert delete_connection_tokens(engine, saved.connection_id)
    assert load_tokens_for_revocation(engine, cipher, saved.connection_id) is None
    assert load_tokens_for_revocation(engine, cipher, 999) is None


@pytest.mark.parametrize("column", ["access_token_ciphertext", "refresh_token_ciphertext"])
def test_undecryptable_tokens_are_none_for_revocation_and_not_flagged(
    engine, cipher, caplog, column
):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    _corrupt(engine, saved.connection_id, column)
    with caplog.at_level(logging.DEBUG):
        result = load_tokens_for_revocation(engine, cipher, saved.connection_id)
    assert result is None
    assert AT not in caplog.text
    assert RT not in caplog.text
    assert "Traceback" not in caplog.text
    # Read-only: flagging is load_tokens's job (it writes the audit row that goes with it).
    status = connection_status(engine, saved.connection_id)
    assert status is not None
    assert not status.needs_reauth


def test_tokens_under_a_key_not_configured_are_none_for_revocation(engine, cipher):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    other = Cipher([Fernet.generate_key()])
    assert load_tokens_for_revocation(engine, other, saved.connection_id) is None
    assert isinstance(load_tokens_for_revocation(engine, cipher, saved.connection_id), TokenSet)


def test_delete_tokens_keeps_row_and_unknown_connection_is_not_connected(engine, cipher):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    assert delete_connection_tokens(engine, saved.connection_id)
    assert _raw(
        engine, "SELECT access_token_ciphertext, refresh_token_ciphertext FROM ehr_connection"
    ) == [(None, None)]
    assert load_tokens(engine, cipher, saved.connection_id) == NeedsReconnect(
        saved.connection_id, "disconnected"
    )
    assert load_tokens(engine, cipher, 999) == NeedsReconnect(999, "not_connected")
    assert not delete_connection_tokens(engine, 999)
    assert delete_connection(engine, saved.connection_id)
    assert not delete_connection(engine, saved.connection_id)
    assert connection_status(engine, saved.connection_id) is None


def test_connection_status_has_no_token_fields(engine, cipher):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    status = connection_status(engine, saved.connection_id)
    assert status is not None
    names = {f.name for f in fields(ConnectionStatus)}
    assert not {n for n in names if "token" in n} - {"token_type"}
    assert AT not in repr(status)
    assert "gAAAAA" not in repr(status)
    assert status.connected
    assert status.ehr_username == "dr.test"
    assert status.missing_scopes == ("clinical:read",)
    assert status.expires_at is not None
    assert status.expires_at.tzinfo is not None


def test_datetimes_are_stored_in_utc_and_read_back_aware(engine, cipher):
    local = datetime(2026, 11, 28, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    saved = save_connection_tokens(engine, cipher, _grant(at=local), _profile())
    status = connection_status(engine, saved.connection_id)
    assert status is not None
    assert status.obtained_at == local
    assert status.obtained_at.utcoffset() == timedelta(0)
    assert as_utc(datetime(2026, 1, 1, 8)) == datetime(2026, 1, 1, 8, tzinfo=UTC)


def test_expires_at_uses_local_receipt_time_minus_margin():
    assert expires_at_from(NOW, 3600) == NOW + timedelta(seconds=3600 - 120)


# --------------------------------------------------------------------------- TK-02 lock


def test_refresh_lock_serialises_refreshers_and_the_second_sees_the_first(engine, cipher):
    saved = save_connection_tokens(engine, cipher, _grant(), _profile())
    locked, events = threading.Event(), []
    seen: dict[str, int] = {}

    def first():
        with Session(engine) as session:
            assert lock_connection_for_refresh(session, saved.connection_id)
            locked.set()
            time.sleep(0.4)  # the upstream refresh call
            save_refreshed_tokens(
                session, cipher, saved.connection_id, _grant("AT-A", "RT-A"), expected_version=1
            )
            events.append("first-commit")
            session.commit()

    def second():
        locked.wait(5)
        with Session(engine) as session:
            assert lock_connection_for_refresh(session, saved.connection_id)
            events.append("second-locked")
            current = load_tokens(session, cipher, saved.connection_id)
            assert isinstance(current, TokenSet)
            seen["version"] = current.version
            seen["access"] = current.access_token.reveal()
            session.commit()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert events == ["first-commit", "second-locked"]
    assert seen == {"version": 2, "access": "AT-A"}  # the second uses the first's refresh


def test_refresh_lock_returns_false_for_unknown_connection(engine):
    with Session(engine) as session:
        assert not lock_connection_for_refresh(session, 999)
        session.rollback()


def test_sqlite_refresh_lock_must_come_first(sqlite_engine, cipher):
    saved = save_connection_tokens(sqlite_engine, cipher, _grant(), _profile())
    with Session(sqlite_engine) as session:
        mark_needs_reauth(session, saved.connection_id, "x")
        with pytest.raises(RuntimeError, match="before any write"):
            lock_connection_for_refresh(session, saved.connection_id)
        session.rollback()


# --------------------------------------------------------------------------- OA-01 / OA-02


def _issue(engine, cipher, user_id=1, session_ref="sess-a", now=NOW):
    return create_oauth_state(
        engine,
        cipher,
        user_id=user_id,
        session_ref=session_ref,
        redirect_uri="https://app.test/ehr-auth/callback",
        scopes=SCOPES,
        now=now,
    )


def test_state_and_verifier_are_stored_hashed_and_encrypted(engine, cipher):
    issued = _issue(engine, cipher)
    state, verifier = issued.state.reveal(), issued.code_verifier.reveal()
    assert len(state) >= 43  # 32 random bytes
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert issued.code_challenge == expected.decode()
    assert issued.expires_at == NOW + timedelta(minutes=10)
    rows = _raw(engine, "SELECT state_hash, code_verifier_ciphertext, session_ref FROM oauth_state")
    assert rows[0][0] == hash_reference(state) == hashlib.sha256(state.encode()).hexdigest()
    assert state not in str(rows)
    assert verifier not in str(rows)
    assert cipher.decrypt(rows[0][1]) == verifier
    assert state not in repr(issued)
    assert verifier not in repr(issued)


def test_state_is_single_use_and_the_verifier_is_erased(engine, cipher):
    issued = _issue(engine, cipher)
    ok = consume_oauth_state(engine, cipher, issued.state.reveal(), 1, "sess-a", now=NOW)
    assert isinstance(ok, ConsumedState)
    assert ok.code_verifier == issued.code_verifier
    assert ok.redirect_uri == "https://app.test/ehr-auth/callback"
    assert ok.scopes == SCOPES
    again = consume_oauth_state(engine, cipher, issued.state.reveal(), 1, "sess-a", now=NOW)
    assert again == StateRejected("consumed")
    assert _raw(engine, "SELECT code_verifier_ciphertext FROM oauth_state") == [(None,)]


@pytest.mark.parametrize(
    ("offset", "outcome"),
    [
        (timedelta(minutes=9, seconds=59), None),
        (timedelta(minutes=10), "expired"),
        (timedelta(minutes=11), "expired"),
    ],
)
def test_state_expires_after_ten_minutes(engine, cipher, offset, outcome):
    issued = _issue(engine, cipher)
    result = consume_oauth_state(
        engine, cipher, issued.state.reveal(), 1, "sess-a", now=NOW + offset
    )
    if outcome is None:
        assert isinstance(result, ConsumedState)
    else:
        assert result == StateRejected(outcome)


@pytest.mark.parametrize(
    ("user_id", "session_ref", "reason"),
    [(2, "sess-a", "other_user"), (1, "sess-b", "other_session")],
)
def test_state_is_bound_to_user_and_session_and_burnt_when_misused(
    engine, cipher, user_id, session_ref, reason
):
    issued = _issue(engine, cipher)
    wrong = consume_oauth_state(
        engine, cipher, issued.state.reveal(), user_id, session_ref, now=NOW
    )
    assert wrong == StateRejected(reason)
    # A state presented in the wrong place has leaked: it is not usable afterwards.
    right = consume_oauth_state(engine, cipher, issued.state.reveal(), 1, "sess-a", now=NOW)
    assert right == StateRejected("consumed")


def test_unknown_state_is_rejected(engine, cipher):
    _issue(engine, cipher)
    assert consume_oauth_state(
        engine, cipher, "never-issued", 1, "sess-a", now=NOW
    ) == StateRejected("unknown")


def test_concurrent_consume_has_exactly_one_winner(engine, cipher):
    for _round in range(5):
        issued = _issue(engine, cipher)
        barrier = threading.Barrier(2)
        results: list[ConsumedState | StateRejected] = []

        def consume(state, barrier, results):
            barrier.wait(5)
            results.append(consume_oauth_state(engine, cipher, state, 1, "sess-a", now=NOW))

        threads = [
            threading.Thread(target=consume, args=(issued.state.reveal(), barrier, results))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert sum(isinstance(r, ConsumedState) for r in results) == 1
        assert StateRejected("consumed") in results


def test_old_states_are_purged_when_new_ones_are_issued(engine, cipher):
    _issue(engine, cipher, now=NOW)
    _issue(
        engine,
        cipher,
        now=NOW + timedelta(minutes=10) + OAUTH_STATE_RETENTION + timedelta(seconds=1),
    )
    assert _raw(engine, "SELECT count(*) FROM oauth_state") == [(1,)]


# --------------------------------------------------------------------------- API budget


def test_budget_is_atomic_across_threads(engine):
    granted = []
    lock = threading.Lock()

    def spender():
        for _ in range(50):
            state = spend_budget(engine, 1, limit=120, now=NOW)
            with lock:
                granted.append(state.granted)

    threads = [threading.Thread(target=spender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(granted) == 200
    assert sum(granted) == 120
    state = budget_state(engine, 1, limit=120, now=NOW)
    assert (state.calls, state.remaining, state.exhausted) == (120, 0, True)


def test_budget_refuses_without_spending_and_resets_next_hour(engine):
    assert spend_budget(engine, 1, n=8, limit=10, now=NOW).granted
    refused = spend_budget(engine, 1, n=3, limit=10, now=NOW)
    assert not refused.granted
    assert refused.exhausted
    assert refused.calls == 8
    assert refused.remaining == 2
    assert refused.resets_at == datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    assert spend_budget(engine, 1, n=2, limit=10, now=NOW).calls == 10
    assert spend_budget(engine, 2, n=10, limit=10, now=NOW).granted  # per connection
    next_hour = spend_budget(engine, 1, n=10, limit=10, now=NOW + timedelta(minutes=30))
    assert next_hour.granted
    assert next_hour.calls == 10
    assert next_hour.window_start == datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    assert budget_state(engine, 1, limit=10, now=NOW + timedelta(hours=2)).calls == 0
    with pytest.raises(ValueError, match="at least one"):
        spend_budget(engine, 1, n=0, now=NOW)


def test_budget_purges_old_windows(engine):
    spend_budget(engine, 1, now=NOW)
    spend_budget(engine, 1, now=NOW + BUDGET_RETENTION + timedelta(hours=2))
    assert _raw(engine, "SELECT count(*) FROM api_budget") == [(1,)]
