"""Server-side OAuth ``state`` and PKCE verifier rows (SECURITY.md OA-01, OA-02).

Streamlit loses ``st.session_state`` across the redirect to the EHR and back, so the ``state``
sent in the authorize URL and its PKCE ``code_verifier`` live here, bound to the app user and the
app session that started the flow. Only a SHA-256 hash of the state is stored (a database reader
cannot forge a callback) and the verifier is Fernet-encrypted (TK-01).

``consume_oauth_state`` is the first thing the callback does: it claims the row with one
conditional UPDATE, so of two concurrent callbacks with the same state exactly one wins, and it
burns the state whatever the outcome (expired, other user, other session): a state seen in the
wrong place has leaked and must not be usable afterwards. The verifier ciphertext is erased in the
same statement.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from storage.crypto import Cipher, DecryptionError, Secret
from storage.tokens import ENCRYPTED, as_utc, unit_of_work, utc_now

# OA-01: a state is usable for 10 minutes; long enough for a consent page, short for an attacker.
OAUTH_STATE_TTL = timedelta(minutes=10)
# Used states are kept a day after expiry so a replay is reported as "consumed", not "unknown".
OAUTH_STATE_RETENTION = timedelta(days=1)
# 32 random bytes = 256 bits, well over SMART's 122-bit floor (OA-01).
STATE_BYTES = 32
# 64 random bytes give an 86-character verifier, inside RFC 7636's 43-128 and its alphabet.
VERIFIER_BYTES = 64

RejectReason = Literal[
    "unknown", "consumed", "expired", "other_user", "other_session", "verifier_unreadable"
]


class OAuthState(SQLModel, table=True):
    """One authorization request in flight: hashed state, encrypted verifier, who started it."""

    __tablename__ = "oauth_state"

    id: int | None = Field(default=None, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True)
    user_id: int
    session_ref: str = Field(max_length=64)
    code_verifier_ciphertext: str | None = Field(
        default=None, sa_type=sa.Text, sa_column_kwargs={"info": ENCRYPTED}
    )
    redirect_uri: str = Field(sa_type=sa.Text)
    scopes: str = Field(default="", sa_type=sa.Text)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    consumed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


@dataclass(frozen=True)
class IssuedState:
    """A new authorization request: what goes into the authorize URL."""

    state: Secret
    code_verifier: Secret
    code_challenge: str
    expires_at: datetime


@dataclass(frozen=True)
class ConsumedState:
    """A state that passed every check: what the callback needs for the token request."""

    user_id: int
    session_ref: str
    code_verifier: Secret
    redirect_uri: str
    scopes: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class StateRejected:
    """The callback must stop here: no token request, an audit row with ``reason``."""

    reason: RejectReason


def hash_reference(value: str) -> str:
    """SHA-256 hex of a secret reference (an OAuth state, an app session id) for storage."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def pkce_challenge(verifier: Secret) -> str:
    """The S256 code challenge: BASE64URL(SHA256(verifier)) without padding (RFC 7636)."""
    digest = hashlib.sha256(verifier.reveal().encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def create_oauth_state(
    bind: Engine | Session,
    cipher: Cipher,
    *,
    user_id: int,
    session_ref: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    now: datetime | None = None,
) -> IssuedState:
    """Start an authorization request bound to ``user_id`` and ``session_ref``.

    Generates the state and a PKCE verifier, stores the state's hash and the encrypted verifier
    with a 10-minute expiry, and returns the raw values for the authorize URL (never store or log
    them elsewhere). ``session_ref`` is an opaque reference to the app session, such as
    ``hash_reference(session_id)``. Long-expired rows are purged on the way.
    """
    issued_at = as_utc(now or utc_now())
    state = Secret(secrets.token_urlsafe(STATE_BYTES))
    verifier = Secret(secrets.token_urlsafe(VERIFIER_BYTES))
    row = OAuthState(
        state_hash=hash_reference(state.reveal()),
        user_id=user_id,
        session_ref=session_ref,
        code_verifier_ciphertext=cipher.encrypt(verifier),
        redirect_uri=redirect_uri,
        scopes=" ".join(scopes),
        created_at=issued_at,
        expires_at=issued_at + OAUTH_STATE_TTL,
    )
    with unit_of_work(bind) as session:
        session.exec(
            sa.delete(OAuthState).where(
                col(OAuthState.expires_at) < issued_at - OAUTH_STATE_RETENTION
            )
        )
        session.add(row)
        session.flush()
    return IssuedState(
        state=state,
        code_verifier=verifier,
        code_challenge=pkce_challenge(verifier),
        expires_at=issued_at + OAUTH_STATE_TTL,
    )


def consume_oauth_state(
    bind: Engine | Session,
    cipher: Cipher,
    state: str,
    user_id: int,
    session_ref: str,
    now: datetime | None = None,
) -> ConsumedState | StateRejected:
    """Check and burn a state returned to the OAuth callback; single use, atomic.

    Rejects a state never issued, already used, past its 10 minutes, or presented by another app
    user or another app session. Whatever the outcome, a known state cannot be used again. Of
    two concurrent calls with the same state, exactly one can succeed. Never raises on bad input;
    the reason is a short code fit for the audit log.
    """
    at = as_utc(now or utc_now())
    with unit_of_work(bind) as session:
        row = session.exec(
            select(OAuthState)
            .where(col(OAuthState.state_hash) == hash_reference(state))
            .execution_options(populate_existing=True)
        ).first()
        if row is None:
            return StateRejected("unknown")
        if row.consumed_at is not None:
            return StateRejected("consumed")
        claimed = session.exec(
            sa.update(OAuthState)
            .where(col(OAuthState.id) == row.id, col(OAuthState.consumed_at).is_(None))
            .values(consumed_at=at, code_verifier_ciphertext=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:  # another callback won the race
            return StateRejected("consumed")
        if at >= as_utc(row.expires_at):
            return StateRejected("expired")
        if row.user_id != user_id:
            return StateRejected("other_user")
        if not hmac.compare_digest(row.session_ref, session_ref):
            return StateRejected("other_session")
        if row.code_verifier_ciphertext is None:
            return StateRejected("verifier_unreadable")
        try:
            verifier = cipher.decrypt_secret(row.code_verifier_ciphertext)
        except DecryptionError:
            return StateRejected("verifier_unreadable")
        return ConsumedState(
            user_id=row.user_id,
            session_ref=row.session_ref,
            code_verifier=verifier,
            redirect_uri=row.redirect_uri,
            scopes=tuple(row.scopes.split()),
            created_at=as_utc(row.created_at),
        )
