"""The EHR connection: encrypted OAuth tokens, refresh locking, key rotation, the hourly budget.

One ``EHRConnection`` row per connected EHR (for now one per app) holds the access and refresh
tokens as Fernet ciphertext (SECURITY.md TK-01) next to non-secret metadata: granted scopes,
expiry, who connected it, and ``needs_reauth``. ``version`` is bumped on every token write, so a
refresher that re-reads the row inside its lock can tell that someone else already refreshed
(TK-02). The Settings page reads ``ConnectionStatus``, a model without token fields.

The functions take an ``Engine`` (they open, commit and close their own session) or a caller's
``Session`` (they work inside its transaction and never commit; the caller does). The second form
is how a refresh runs as one transaction::

    with Session(engine) as session:
        lock_connection_for_refresh(session, cid)      # first statement: waits for the lock
        current = load_tokens(session, cipher, cid)    # re-read inside the lock
        if isinstance(current, TokenSet) and current.version == version_seen_before:
            grant = ...                                # POST the refresh token upstream
            save_refreshed_tokens(session, cipher, cid, grant, expected_version=current.version)
        session.commit()                               # releases the lock

On SQLite every write of token ciphertext is followed, after commit, by a
``PRAGMA wal_checkpoint(TRUNCATE)`` so old pages do not linger in the ``-wal`` file; with
``secure_delete`` (set by ``make_engine``) freed pages are zeroed.

``ApiBudget`` is the shared hourly call counter (DESIGN.md §4 "Retries"): every session, process
and replica spends from the same row, atomically, so together they stay under DrChrono's limit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, Session, SQLModel, col, select

from storage.crypto import Cipher, DecryptionError, Secret

logger = logging.getLogger(__name__)

# Column ``info`` marker for ciphertext columns: ``rotate_keys`` re-encrypts every column that
# carries it, in any table registered on the metadata (tokens, verifiers, later the mirror).
ENCRYPTED: dict[str, Any] = {"encrypted": True}

# TK-03: tokens count as expired this long before the server says, so clock skew and the
# duration of a request never let an expired token reach the API.
EXPIRY_SAFETY_MARGIN = timedelta(seconds=120)
# DrChrono counts its limit per clock hour; the shared budget uses the same window.
BUDGET_WINDOW = timedelta(hours=1)
# Past windows are kept this long for the Settings page's "last hours" view, then purged.
BUDGET_RETENTION = timedelta(hours=48)
# DrChrono's documented per-application limit (drchrono.md), the default when none is given.
DEFAULT_CALLS_PER_HOUR = 500
# Re-authorisation reasons are short machine codes shown and audited as-is; never free text,
# so nothing secret can be stored in them.
_REASON_PATTERN = re.compile(r"[a-z0-9_]{1,64}")

REASON_DECRYPT_FAILED = "token_decrypt_failed"
REASON_DISCONNECTED = "disconnected"
REASON_NOT_CONNECTED = "not_connected"


# ----------------------------------------------------------------------------- time helpers


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Normalise a datetime read from the database to aware UTC.

    SQLite returns naive datetimes (it drops the zone); everything this module writes is UTC, so
    a naive value is UTC. PostgreSQL returns aware values, converted to UTC here.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _as_utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def expires_at_from(received_at: datetime, expires_in_seconds: float) -> datetime:
    """``expires_at`` for a token response: local receipt time + ``expires_in`` − the margin.

    The server's ``Date`` header is never used (TK-03): only our own clock at receipt.
    """
    return as_utc(received_at) + timedelta(seconds=expires_in_seconds) - EXPIRY_SAFETY_MARGIN


# ----------------------------------------------------------------------------- tables


class EHRConnection(SQLModel, table=True):
    """One connected EHR: encrypted tokens plus the metadata the Settings page shows."""

    __tablename__ = "ehr_connection"
    # One connection per EHR endpoint: reconnecting replaces the tokens of the same row, so the
    # connection id (and the budget counted against it) survives a reconnect.
    __table_args__ = (
        sa.UniqueConstraint("vendor", "base_url", name="uq_ehr_connection_vendor_base_url"),
    )

    id: int | None = Field(default=None, primary_key=True)
    vendor: str = Field(max_length=32)
    base_url: str = Field(max_length=255)
    access_token_ciphertext: str | None = Field(
        default=None, sa_type=sa.Text, sa_column_kwargs={"info": ENCRYPTED}
    )
    refresh_token_ciphertext: str | None = Field(
        default=None, sa_type=sa.Text, sa_column_kwargs={"info": ENCRYPTED}
    )
    token_type: str = Field(default="Bearer", max_length=32)
    scopes: str = Field(default="", sa_type=sa.Text)  # granted, space-separated
    requested_scopes: str = Field(default="", sa_type=sa.Text)
    expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    obtained_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    last_refreshed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    needs_reauth: bool = Field(default=False)
    reauth_reason: str | None = Field(default=None, max_length=64)
    ehr_user_id: str | None = Field(default=None, max_length=64)
    ehr_username: str | None = Field(default=None, max_length=255)
    practice_group: str | None = Field(default=None, max_length=64)
    doctor_id: str | None = Field(default=None, max_length=64)
    connected_by_user_id: int | None = Field(default=None)
    connected_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    version: int = Field(default=0)


class ApiBudget(SQLModel, table=True):
    """Calls spent against one connection in one clock hour (UTC), shared by every process."""

    __tablename__ = "api_budget"

    connection_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    window_start: datetime = Field(primary_key=True, sa_type=sa.DateTime(timezone=True))
    calls: int = Field(default=0)


# ----------------------------------------------------------------------------- value objects


@dataclass(frozen=True)
class TokenGrant:
    """What a token endpoint returned, interpreted by the caller (expiry already computed).

    ``refresh_token`` None on a refresh means "the server did not rotate it": the stored one is
    kept.
    """

    access_token: Secret
    refresh_token: Secret | None
    token_type: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    obtained_at: datetime


@dataclass(frozen=True)
class ConnectionProfile:
    """Who and what a new connection is: the non-secret facts recorded at connect time."""

    vendor: str
    base_url: str
    requested_scopes: tuple[str, ...]
    connected_by_user_id: int | None = None
    ehr_user_id: str | None = None
    ehr_username: str | None = None
    practice_group: str | None = None
    doctor_id: str | None = None


@dataclass(frozen=True)
class TokenSet:
    """Decrypted tokens of a connection; the values are ``Secret`` so they never print."""

    connection_id: int
    access_token: Secret
    refresh_token: Secret | None
    token_type: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    version: int

    def expired(self, now: datetime) -> bool:
        """True when the (margin-adjusted) expiry has passed at ``now``."""
        return self.expires_at is not None and as_utc(now) >= self.expires_at


@dataclass(frozen=True)
class NeedsReconnect:
    """The connection cannot be used until an admin reconnects it.

    ``reason`` is a short code (``not_connected``, ``disconnected``, ``token_decrypt_failed``,
    ``invalid_grant``, ...). ``newly_marked`` is True only on the call that detected the problem,
    so the caller writes one audit row, not one per request.
    """

    connection_id: int
    reason: str
    newly_marked: bool = False


@dataclass(frozen=True)
class SavedTokens:
    """The row a token write went to and the version it now carries."""

    connection_id: int
    version: int


@dataclass(frozen=True)
class ConnectionStatus:
    """Read model for the Settings page: everything about a connection except its tokens."""

    connection_id: int
    vendor: str
    base_url: str
    connected: bool
    needs_reauth: bool
    reauth_reason: str | None
    token_type: str
    scopes: tuple[str, ...]
    requested_scopes: tuple[str, ...]
    expires_at: datetime | None
    obtained_at: datetime | None
    last_refreshed_at: datetime | None
    connected_at: datetime | None
    connected_by_user_id: int | None
    ehr_user_id: str | None
    ehr_username: str | None
    practice_group: str | None
    doctor_id: str | None
    version: int

    @property
    def missing_scopes(self) -> tuple[str, ...]:
        """Scopes requested but not granted (DrChrono may grant fewer than asked)."""
        granted = set(self.scopes)
        return tuple(s for s in self.requested_scopes if s not in granted)


@dataclass(frozen=True)
class BudgetState:
    """The shared hourly budget of a connection after a spend (or as read).

    ``granted`` says whether the spend was taken; ``exhausted`` whether calls must wait for
    ``resets_at`` (for a spend: it was refused; for a read: nothing is left).
    """

    connection_id: int
    window_start: datetime
    calls: int
    limit: int
    granted: bool
    exhausted: bool
    resets_at: datetime

    @property
    def remaining(self) -> int:
        """Calls left in the current window."""
        return max(0, self.limit - self.calls)


class ConnectionNotFoundError(LookupError):
    """No EHR connection row has the given id."""


class TokenVersionConflictError(RuntimeError):
    """The tokens changed since they were read (another process refreshed); nothing was written."""


# ----------------------------------------------------------------------------- plumbing


@contextmanager
def unit_of_work(bind: Engine | Session) -> Iterator[Session]:
    """Yield the caller's session as-is (it commits), or a new session committed on success."""
    if isinstance(bind, OrmSession):
        yield bind
        return
    with Session(bind) as session:
        yield session
        session.commit()


def _engine_of(session: OrmSession) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def checkpoint_wal(engine: Engine) -> None:
    """SQLite: copy the WAL into the database and truncate it to zero bytes (TK-01).

    No-op on other databases. If a reader still holds an old snapshot the checkpoint is partial;
    the next token write tries again.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").scalar()
        if busy:
            logger.debug("WAL checkpoint after a token write was partial (readers active)")


def _checkpoint_after_commit(session: OrmSession) -> None:
    def _run(committed: OrmSession) -> None:
        checkpoint_wal(_engine_of(committed))

    if _engine_of(session).dialect.name == "sqlite":
        sa.event.listen(session, "after_commit", _run, once=True)


def begin_write_lock(conn: Connection) -> None:
    """SQLite: open the connection's transaction with ``BEGIN IMMEDIATE`` (take the write lock).

    Must be the first statement of the transaction; waits up to the engine's busy timeout for
    another writer. No-op on other databases, where row locks are used instead.
    """
    if conn.dialect.name != "sqlite":
        return
    if conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        raise RuntimeError(
            "the SQLite write lock must be taken before any write in this transaction"
        )
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _dialect_insert(dialect_name: str, table: Any) -> sqlite.Insert | postgresql.Insert:
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"unsupported database: {dialect_name}")


def _connection_table() -> Any:
    return EHRConnection.__table__  # type: ignore[attr-defined]


def _fetch_connection(
    session: Session, connection_id: int, *, for_update: bool = False
) -> EHRConnection | None:
    stmt = select(EHRConnection).where(col(EHRConnection.id) == connection_id)
    if for_update:
        stmt = stmt.with_for_update()
    # populate_existing: the row may have been updated in this session by a core statement.
    return session.exec(stmt.execution_options(populate_existing=True)).first()


def _split(scopes: str) -> tuple[str, ...]:
    return tuple(scopes.split())


def _check_reason(reason: str) -> str:
    if not _REASON_PATTERN.fullmatch(reason):
        raise ValueError("reauth reason must be a short code of a-z, 0-9 and _")
    return reason


# ----------------------------------------------------------------------------- token store


def save_connection_tokens(
    bind: Engine | Session, cipher: Cipher, grant: TokenGrant, profile: ConnectionProfile
) -> SavedTokens:
    """Store the tokens of a new connection, or replace those of the same vendor and base URL.

    One atomic upsert writes both ciphertexts and the profile, clears ``needs_reauth`` and bumps
    ``version``. Used after the OAuth callback's code exchange; refreshes use
    ``save_refreshed_tokens``. Returns the connection id and its new version.
    """
    obtained = as_utc(grant.obtained_at)
    values: dict[str, Any] = {
        "vendor": profile.vendor,
        "base_url": profile.base_url,
        "access_token_ciphertext": cipher.encrypt(grant.access_token),
        "refresh_token_ciphertext": (
            None if grant.refresh_token is None else cipher.encrypt(grant.refresh_token)
        ),
        "token_type": grant.token_type,
        "scopes": " ".join(grant.scopes),
        "requested_scopes": " ".join(profile.requested_scopes),
        "expires_at": _as_utc_or_none(grant.expires_at),
        "obtained_at": obtained,
        "last_refreshed_at": None,
        "needs_reauth": False,
        "reauth_reason": None,
        "ehr_user_id": profile.ehr_user_id,
        "ehr_username": profile.ehr_username,
        "practice_group": profile.practice_group,
        "doctor_id": profile.doctor_id,
        "connected_by_user_id": profile.connected_by_user_id,
        "connected_at": obtained,
        "version": 1,
    }
    table = _connection_table()
    with unit_of_work(bind) as session:
        stmt = _dialect_insert(session.get_bind().dialect.name, table).values(**values)
        replace = {k: v for k, v in values.items() if k not in ("vendor", "base_url", "version")}
        replace["version"] = table.c.version + 1
        upsert = stmt.on_conflict_do_update(
            index_elements=[table.c.vendor, table.c.base_url], set_=replace
        ).returning(table.c.id, table.c.version)
        row = session.connection().execute(upsert).one()
        _checkpoint_after_commit(session)
        return SavedTokens(connection_id=row.id, version=row.version)


def save_refreshed_tokens(
    bind: Engine | Session,
    cipher: Cipher,
    connection_id: int,
    grant: TokenGrant,
    *,
    expected_version: int | None = None,
) -> SavedTokens:
    """Replace a connection's tokens after a refresh, in one UPDATE that bumps ``version``.

    The new access and refresh tokens land together (the old pair is retired in the same
    statement); a grant without a refresh token keeps the stored one. With
    ``expected_version`` the write happens only if nobody wrote since that version, else
    ``TokenVersionConflictError``. Raises ``ConnectionNotFoundError`` for an unknown id.
    """
    table = _connection_table()
    values: dict[str, Any] = {
        "access_token_ciphertext": cipher.encrypt(grant.access_token),
        "token_type": grant.token_type,
        "scopes": " ".join(grant.scopes),
        "expires_at": _as_utc_or_none(grant.expires_at),
        "obtained_at": as_utc(grant.obtained_at),
        "last_refreshed_at": as_utc(grant.obtained_at),
        "needs_reauth": False,
        "reauth_reason": None,
        "version": table.c.version + 1,
    }
    if grant.refresh_token is not None:
        values["refresh_token_ciphertext"] = cipher.encrypt(grant.refresh_token)
    stmt = sa.update(table).where(table.c.id == connection_id)
    if expected_version is not None:
        stmt = stmt.where(table.c.version == expected_version)
    with unit_of_work(bind) as session:
        row = session.connection().execute(stmt.values(**values).returning(table.c.version)).first()
        if row is None:
            if _fetch_connection(session, connection_id) is None:
                raise ConnectionNotFoundError(f"no EHR connection with id {connection_id}")
            raise TokenVersionConflictError(
                f"tokens of connection {connection_id} changed since version {expected_version}"
            )
        _checkpoint_after_commit(session)
        return SavedTokens(connection_id=connection_id, version=row.version)


def load_tokens(
    bind: Engine | Session, cipher: Cipher, connection_id: int
) -> TokenSet | NeedsReconnect:
    """Decrypt a connection's tokens, or say why it needs reconnecting. Never raises on bad data.

    A ciphertext that no configured key opens (corrupted, truncated, wrong or retired key) marks
    the connection ``needs_reauth`` with reason ``token_decrypt_failed`` and returns
    ``NeedsReconnect(newly_marked=True)``; the caller writes the audit row. Nothing secret is
    logged.
    """
    with unit_of_work(bind) as session:
        row = _fetch_connection(session, connection_id)
        if row is None or row.id is None:
            return NeedsReconnect(connection_id, REASON_NOT_CONNECTED)
        if row.needs_reauth:
            return NeedsReconnect(connection_id, row.reauth_reason or REASON_NOT_CONNECTED)
        try:
            tokens = _decrypted(row, cipher)
        except DecryptionError:
            logger.warning("stored tokens of EHR connection %s could not be decrypted", row.id)
            _set_needs_reauth(session, connection_id, REASON_DECRYPT_FAILED)
            return NeedsReconnect(connection_id, REASON_DECRYPT_FAILED, newly_marked=True)
        if tokens is None:
            return NeedsReconnect(connection_id, REASON_NOT_CONNECTED)
        return tokens


def load_tokens_for_revocation(
    bind: Engine | Session, cipher: Cipher, connection_id: int
) -> TokenSet | None:
    """Decrypt a connection's stored tokens whatever its ``needs_reauth`` flag, for revocation only.

    ``load_tokens`` withholds the tokens of a flagged connection so nothing uses them, but after
    ``invalid_grant`` the access token may still be live upstream for hours, and disconnecting
    must revoke it (TK-04). Never use the result to call the API. Read-only: returns None for an
    unknown connection, one without stored tokens, or ciphertext no configured key opens.
    """
    with unit_of_work(bind) as session:
        row = _fetch_connection(session, connection_id)
        if row is None:
            return None
        try:
            return _decrypted(row, cipher)
        except DecryptionError:
            logger.warning("stored tokens of EHR connection %s could not be decrypted", row.id)
            return None


def _decrypted(row: EHRConnection, cipher: Cipher) -> TokenSet | None:
    """The row's tokens (None if it holds none); ``DecryptionError`` if a ciphertext won't open."""
    access, refresh = row.access_token_ciphertext, row.refresh_token_ciphertext
    if row.id is None or access is None:
        return None
    return TokenSet(
        connection_id=row.id,
        access_token=cipher.decrypt_secret(access),
        refresh_token=None if refresh is None else cipher.decrypt_secret(refresh),
        token_type=row.token_type,
        scopes=_split(row.scopes),
        expires_at=_as_utc_or_none(row.expires_at),
        version=row.version,
    )


def lock_connection_for_refresh(session: Session, connection_id: int) -> bool:
    """Take the database lock that makes a token refresh single-flight (TK-02).

    Call it first in a fresh session (no earlier writes), then re-read with ``load_tokens(session,
    ...)``, refresh, save with ``save_refreshed_tokens(session, ...)`` and commit or roll back;
    ending the transaction releases the lock. PostgreSQL: ``SELECT ... FOR UPDATE`` on the row,
    so refreshers of the same connection queue and other connections are unaffected. SQLite:
    ``BEGIN IMMEDIATE``, the database-wide write lock, so keep the upstream call short (under the
    engine's busy timeout), as every other writer waits meanwhile. Combine with an in-process lock
    so threads of one process do not all queue on the database. Returns False if the connection
    does not exist.
    """
    begin_write_lock(session.connection())
    return _fetch_connection(session, connection_id, for_update=True) is not None


def _set_needs_reauth(session: Session, connection_id: int, reason: str) -> bool:
    table = _connection_table()
    result = session.connection().execute(
        sa.update(table)
        .where(table.c.id == connection_id)
        .values(needs_reauth=True, reauth_reason=_check_reason(reason))
    )
    return bool(result.rowcount)


def mark_needs_reauth(bind: Engine | Session, connection_id: int, reason: str) -> bool:
    """Flag a connection as needing re-authorisation (e.g. ``invalid_grant`` on refresh).

    ``reason`` is a short code (``[a-z0-9_]{1,64}``), never a message from upstream. The tokens
    are kept until the admin reconnects or disconnects. Returns False for an unknown id.
    """
    with unit_of_work(bind) as session:
        return _set_needs_reauth(session, connection_id, reason)


def delete_connection_tokens(bind: Engine | Session, connection_id: int) -> bool:
    """Erase a connection's token ciphertexts but keep its row (id, budget, history).

    The connection becomes ``needs_reauth`` with reason ``disconnected`` and ``version`` is
    bumped. On SQLite the freed bytes are zeroed (``secure_delete``) and the WAL truncated after
    commit. Returns False for an unknown id.
    """
    table = _connection_table()
    with unit_of_work(bind) as session:
        result = session.connection().execute(
            sa.update(table)
            .where(table.c.id == connection_id)
            .values(
                access_token_ciphertext=None,
                refresh_token_ciphertext=None,
                needs_reauth=True,
                reauth_reason=REASON_DISCONNECTED,
                version=table.c.version + 1,
            )
        )
        _checkpoint_after_commit(session)
        return bool(result.rowcount)


def delete_connection(bind: Engine | Session, connection_id: int) -> bool:
    """Delete a connection row with its tokens (TK-04 "Disconnect EHR"); False if unknown.

    On SQLite the freed bytes are zeroed (``secure_delete``) and the WAL truncated after commit.
    """
    table = _connection_table()
    with unit_of_work(bind) as session:
        result = session.connection().execute(sa.delete(table).where(table.c.id == connection_id))
        _checkpoint_after_commit(session)
        return bool(result.rowcount)


def _status(row: EHRConnection) -> ConnectionStatus:
    assert row.id is not None  # rows read from the database always have their key
    return ConnectionStatus(
        connection_id=row.id,
        vendor=row.vendor,
        base_url=row.base_url,
        connected=row.access_token_ciphertext is not None and not row.needs_reauth,
        needs_reauth=row.needs_reauth,
        reauth_reason=row.reauth_reason,
        token_type=row.token_type,
        scopes=_split(row.scopes),
        requested_scopes=_split(row.requested_scopes),
        expires_at=_as_utc_or_none(row.expires_at),
        obtained_at=_as_utc_or_none(row.obtained_at),
        last_refreshed_at=_as_utc_or_none(row.last_refreshed_at),
        connected_at=_as_utc_or_none(row.connected_at),
        connected_by_user_id=row.connected_by_user_id,
        ehr_user_id=row.ehr_user_id,
        ehr_username=row.ehr_username,
        practice_group=row.practice_group,
        doctor_id=row.doctor_id,
        version=row.version,
    )


def connection_status(engine: Engine, connection_id: int) -> ConnectionStatus | None:
    """The token-free status of one connection, or None if it does not exist."""
    with Session(engine) as session:
        row = _fetch_connection(session, connection_id)
        return None if row is None else _status(row)


def list_connections(engine: Engine) -> list[ConnectionStatus]:
    """Token-free status of every connection, oldest first."""
    with Session(engine) as session:
        rows = session.exec(select(EHRConnection).order_by(col(EHRConnection.id)))
        return [_status(r) for r in rows]


# ----------------------------------------------------------------------------- key rotation


def _encrypted_columns() -> list[tuple[Any, list[Any]]]:
    import storage.models  # noqa: F401  every table module registers on the metadata

    found = []
    for table in SQLModel.metadata.sorted_tables:
        cols = [c for c in table.columns if c.info.get("encrypted")]
        if cols:
            found.append((table, cols))
    return found


def rotate_keys(engine: Engine, cipher: Cipher) -> int:
    """Re-encrypt every stored secret under the cipher's first key, in one transaction.

    Covers every column marked ``info=ENCRYPTED`` in any registered table (token ciphertexts,
    PKCE verifiers, ...). Rows are locked for the duration (SQLite: ``BEGIN IMMEDIATE``;
    PostgreSQL: ``FOR UPDATE``), so a concurrent refresh waits rather than being overwritten.
    A value no key can open is left as it is and counted in a warning (its connection will report
    ``token_decrypt_failed`` on next use). Returns the number of values re-encrypted.
    """
    rotated = unreadable = 0
    with engine.connect() as conn:
        begin_write_lock(conn)
        for table, cols in _encrypted_columns():
            pk = list(table.primary_key.columns)
            for row in conn.execute(sa.select(*pk, *cols).with_for_update()).all():
                changes: dict[str, Any] = {}
                for column in cols:
                    value = row._mapping[column]
                    if value is None:
                        continue
                    try:
                        if isinstance(value, bytes):
                            changes[column.name] = cipher.rotate_bytes(value)
                        else:
                            changes[column.name] = cipher.rotate(value)
                    except DecryptionError:
                        unreadable += 1
                if changes:
                    where = [c == row._mapping[c] for c in pk]
                    conn.execute(sa.update(table).where(*where).values(**changes))
                    rotated += len(changes)
        conn.commit()  # closing without it rolls back: nothing is half-rotated
    checkpoint_wal(engine)
    if unreadable:
        logger.warning("key rotation left %d stored secrets that no key can decrypt", unreadable)
    return rotated


# ----------------------------------------------------------------------------- API budget


def _window_start(now: datetime) -> datetime:
    return as_utc(now).replace(minute=0, second=0, microsecond=0)


def spend_budget(
    engine: Engine,
    connection_id: int,
    n: int = 1,
    limit: int = DEFAULT_CALLS_PER_HOUR,
    now: datetime | None = None,
) -> BudgetState:
    """Atomically take ``n`` calls from the connection's budget for the current UTC hour.

    Granted only if the hour's total stays within ``limit``; otherwise nothing is taken and the
    state says ``exhausted`` with ``resets_at``. Safe across threads, processes and replicas: the
    window row is created with insert-or-ignore and spent with one conditional
    ``UPDATE ... SET calls = calls + n WHERE calls + n <= limit``.
    """
    if n < 1:
        raise ValueError("spend at least one call")
    window = _window_start(now or utc_now())
    table: Any = ApiBudget.__table__  # type: ignore[attr-defined]
    key = (table.c.connection_id == connection_id, table.c.window_start == window)
    with engine.begin() as conn:
        created = conn.execute(
            _dialect_insert(conn.dialect.name, table)
            .values(connection_id=connection_id, window_start=window, calls=0)
            .on_conflict_do_nothing(index_elements=[table.c.connection_id, table.c.window_start])
        ).rowcount
        spent = conn.execute(
            sa.update(table)
            .where(*key, table.c.calls + n <= limit)
            .values(calls=table.c.calls + n)
            .returning(table.c.calls)
        ).first()
        if spent is not None:
            calls = int(spent.calls)
        else:
            calls = int(conn.execute(sa.select(table.c.calls).where(*key)).scalar_one())
        if created:
            conn.execute(
                sa.delete(table).where(
                    table.c.connection_id == connection_id,
                    table.c.window_start < window - BUDGET_RETENTION,
                )
            )
    return BudgetState(
        connection_id=connection_id,
        window_start=window,
        calls=calls,
        limit=limit,
        granted=spent is not None,
        exhausted=spent is None,
        resets_at=window + BUDGET_WINDOW,
    )


def budget_state(
    engine: Engine,
    connection_id: int,
    limit: int = DEFAULT_CALLS_PER_HOUR,
    now: datetime | None = None,
) -> BudgetState:
    """The current hour's spend for the Settings page, without spending anything."""
    window = _window_start(now or utc_now())
    table: Any = ApiBudget.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        calls = conn.execute(
            sa.select(table.c.calls).where(
                table.c.connection_id == connection_id, table.c.window_start == window
            )
        ).scalar()
    used = int(calls or 0)
    return BudgetState(
        connection_id=connection_id,
        window_start=window,
        calls=used,
        limit=limit,
        granted=False,
        exhausted=used >= limit,
        resets_at=window + BUDGET_WINDOW,
    )
