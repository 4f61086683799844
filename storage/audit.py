"""The audit log: one append-only, tamper-evident table of who did what to which record.

Every row carries a gap-free ``seq`` and ``row_mac = HMAC-SHA256(k_audit, canonical_json(row) ||
prev_mac)``, where ``prev_mac`` is the previous row's ``row_mac`` (64 zeros for seq 1). The key
lives outside the database, so someone holding only the database can neither edit a row nor
delete one without ``storage.audit_chain.verify`` noticing; an anchor exported outside the
database also exposes a cut-off tail.

``append`` is the only write path. It serialises appenders across threads *and* processes: on
PostgreSQL with a transaction-scoped advisory lock (``LOCK TABLE ... EXCLUSIVE`` would need
UPDATE/DELETE privilege, which the hardened app role does not have), on SQLite with ``BEGIN
IMMEDIATE`` (the write lock is taken before the head is read). A failed append raises
``AuditWriteError`` and callers fail closed. The database refuses UPDATE, DELETE and (PostgreSQL)
TRUNCATE through the triggers in ``SQLITE_TRIGGERS`` / ``POSTGRES_TRIGGERS``; the ORM refuses
them too. Input is an ``AuditRecord``, which rejects PHI- or secret-looking ``details`` keys:
audit rows carry ids, never names, dates of birth or credentials.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import DDL, BigInteger, Column, Table, Text, event, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime

log = logging.getLogger(__name__)

# The previous-MAC of seq 1: there is no previous row.
GENESIS_MAC: Final = "0" * 64
# Shortest accepted audit key; matches the AUDIT_HMAC_KEY rule in storage.settings (HMAC-SHA256
# keys shorter than the hash's output weaken it).
MIN_KEY_BYTES: Final = 32
# Bounds on short text columns: app usernames, role and category names, vendor ids, request ids.
MAX_USERNAME_CHARS: Final = 150
MAX_LABEL_CHARS: Final = 64
MAX_ID_CHARS: Final = 64
MAX_IP_CHARS: Final = 45  # the longest textual IPv6 address (IPv4-mapped form)
# Audit rows stay small and fast to write; details are ids and codes, not documents.
MAX_DETAILS_CHARS: Final = 4000
MAX_DETAILS_DEPTH: Final = 5
# How long an appender waits for the PostgreSQL append lock before failing closed; the same
# order as SQLite's busy timeout in storage.database.
APPEND_LOCK_TIMEOUT_MS = 5000
# Key of the transaction-scoped PostgreSQL advisory lock that serialises appends ("audit").
POSTGRES_APPEND_LOCK_KEY: Final = 0x6175646974

# Fields covered by row_mac, in the canonical JSON (sorted there anyway; listed for readers).
MAC_FIELDS: Final = (
    "seq",
    "ts_utc",
    "user_id",
    "username",
    "role",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "data_category",
    "outcome",
    "client_ip",
    "correlation_id",
    "break_glass",
    "details",
)


class AuditAction(enum.StrEnum):
    """What happened. Stored as text, so a new member needs no migration."""

    READ = "READ"
    SEARCH = "SEARCH"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    EXPORT = "EXPORT"
    PRINT = "PRINT"
    LOGIN = "LOGIN"
    LOGOUT = "LOGOUT"
    LOGIN_FAILED = "LOGIN_FAILED"
    SESSION_TIMEOUT = "SESSION_TIMEOUT"
    PRIVILEGE_CHANGE = "PRIVILEGE_CHANGE"
    BREAK_GLASS = "BREAK_GLASS"
    EHR_CONNECT = "EHR_CONNECT"
    EHR_DISCONNECT = "EHR_DISCONNECT"
    TOKEN_REFRESHED = "TOKEN_REFRESHED"  # noqa: S105  an event name, not a credential
    TOKEN_REFRESH_FAILED = "TOKEN_REFRESH_FAILED"  # noqa: S105  an event name, not a credential
    TOKEN_DECRYPT_FAILED = "TOKEN_DECRYPT_FAILED"  # noqa: S105  an event name, not a credential
    OAUTH_CALLBACK_REJECTED = "OAUTH_CALLBACK_REJECTED"
    KEY_ROTATION = "KEY_ROTATION"
    AUDIT_VERIFY = "AUDIT_VERIFY"
    AUDIT_STATUS_CHANGED = "AUDIT_STATUS_CHANGED"
    ERROR_SHOWN = "ERROR_SHOWN"


class AuditOutcome(enum.StrEnum):
    """How it ended. Stored as text."""

    SUCCESS = "SUCCESS"
    DENIED = "DENIED"
    ERROR = "ERROR"


class AuditWriteError(RuntimeError):
    """The audit row could not be written; the caller must not return the data (fail closed)."""


class AuditKeyError(ValueError):
    """The audit key is missing or too short; the chain can neither be extended nor checked."""


class AuditAppendOnlyError(RuntimeError):
    """Something tried to change or remove an audit row through the ORM."""


class AuditEvent(SQLModel, table=True):
    """One audit row. Written only by ``append``; never updated or deleted."""

    __tablename__ = "audit_event"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    ts_utc: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    user_id: int | None = Field(default=None, index=True)
    username: str | None = Field(default=None, max_length=MAX_USERNAME_CHARS)
    role: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)
    action: str = Field(max_length=MAX_LABEL_CHARS)
    resource_type: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)
    resource_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    patient_id: str | None = Field(default=None, max_length=MAX_ID_CHARS, index=True)
    data_category: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)
    outcome: str = Field(max_length=MAX_LABEL_CHARS)
    client_ip: str | None = Field(default=None, max_length=MAX_IP_CHARS)
    correlation_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    break_glass: bool = False
    details: str = Field(default="{}", sa_type=Text)
    prev_mac: str = Field(max_length=64)
    row_mac: str = Field(max_length=64)


AUDIT_TABLE: Final[Table] = AuditEvent.__table__  # type: ignore[attr-defined]

# Append-only at the database (SECURITY.md AU-03). One executable statement per element; the
# migration replays these verbatim, so they must stay stable. No '%' and no ':word' in them, so
# they pass unchanged through DDL(), text() and op.execute().
SQLITE_TRIGGERS: Final[tuple[str, ...]] = (
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
)
POSTGRES_TRIGGERS: Final[tuple[str, ...]] = (
    "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION USING MESSAGE = 'audit_event is append-only (' || TG_OP || "
    "' rejected)', ERRCODE = 'insufficient_privilege'; END $$",
    "CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
)


def _attach_triggers(statements: tuple[str, ...], dialect: str) -> None:
    """Let ``create_all`` install the triggers right after it creates the table."""
    for statement in statements:
        ddl = DDL(statement)  # type: ignore[no-untyped-call]
        event.listen(AUDIT_TABLE, "after_create", ddl.execute_if(dialect=dialect))


_attach_triggers(SQLITE_TRIGGERS, "sqlite")
_attach_triggers(POSTGRES_TRIGGERS, "postgresql")


def _refuse_change(_mapper: Any, _connection: Any, _target: Any) -> None:
    raise AuditAppendOnlyError("audit_event is append-only")


event.listen(AuditEvent, "before_update", _refuse_change)
event.listen(AuditEvent, "before_delete", _refuse_change)


# --- details: ids and codes only -------------------------------------------------------------

_DETAILS_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# Whole words (after splitting snake_case and camelCase) that mark PHI or a credential.
_FORBIDDEN_WORDS: Final = frozenset(
    {
        "name", "names", "firstname", "lastname", "fullname", "surname", "dob", "birth",
        "birthday", "birthdate", "address", "street", "city", "zip", "zipcode", "postcode",
        "phone", "mobile", "fax", "email", "ssn", "mrn", "token", "tokens", "password",
        "passwd", "pwd", "secret", "secrets", "code", "state", "verifier", "cookie",
        "authorization",
    }
)  # fmt: skip
# Fragments caught even inside one word ("accesstoken", "clientSecret", "dateOfBirth").
_FORBIDDEN_FRAGMENTS: Final = (
    "token", "password", "passwd", "secret", "birth", "address", "phone", "email", "ssn",
    "firstname", "lastname", "fullname", "apikey", "privatekey", "cookie", "authorization",
)  # fmt: skip
# Codes that describe the failure, not a credential.
_ALLOWED_KEYS: Final = frozenset({"error_code", "status_code", "http_status_code"})
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_details_key(key: object) -> None:
    if not isinstance(key, str) or not _DETAILS_KEY.match(key):
        raise ValueError("audit details keys must be identifiers (letters, digits, _)")
    if key in _ALLOWED_KEYS:
        return
    words = {w.lower() for w in _WORD.findall(key)}
    squashed = key.replace("_", "").lower()
    if words & _FORBIDDEN_WORDS or any(f in squashed for f in _FORBIDDEN_FRAGMENTS):
        raise ValueError(
            f"audit details key {key!r} looks like PHI or a secret; audit rows carry ids only"
        )


def _check_details_value(value: object, depth: int) -> None:
    if depth > MAX_DETAILS_DEPTH:
        raise ValueError(f"audit details nest deeper than {MAX_DETAILS_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _check_details_key(key)
            _check_details_value(inner, depth + 1)
    elif isinstance(value, list | tuple):
        for inner in value:
            _check_details_value(inner, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("audit details numbers must be finite")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError("audit details values must be JSON scalars, lists or objects")


def canonical_json(value: Any) -> str:
    """Serialise ``value`` the one way the MAC is computed: sorted keys, fixed separators, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def details_json(details: Mapping[str, Any]) -> str:
    """Validate audit ``details`` and return them as canonical JSON text.

    Raises ``ValueError`` for keys that look like PHI or secrets (names, dob, address, phone,
    email, ssn, token, password, code, state, secret, ...), for non-JSON values and for oversize
    payloads, so that no caller can write such data by accident.
    """
    _check_details_value(details, 0)
    encoded = canonical_json(dict(details))
    if len(encoded) > MAX_DETAILS_CHARS:
        raise ValueError(f"audit details exceed {MAX_DETAILS_CHARS} characters")
    return encoded


def _short_text(name: str, value: object, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"audit field {name} must be text")
    value = str(value)
    if not value or len(value) > limit:
        raise ValueError(f"audit field {name} must be 1 to {limit} characters")
    if _CONTROL.search(value):
        raise ValueError(f"audit field {name} must not contain control characters")
    return value


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """What a caller wants recorded; ``append`` adds seq, time and the MACs.

    Fields are validated and normalised on construction: ``action``/``outcome`` accept the enum
    or its value, ids become text (DrChrono ints and FHIR strings alike), ``client_ip`` is parsed
    as an IP address, and ``details`` must pass ``details_json`` (no PHI or secret keys).
    """

    action: AuditAction
    outcome: AuditOutcome = AuditOutcome.SUCCESS
    user_id: int | None = None
    username: str | None = None
    role: str | None = None
    resource_type: str | None = None
    resource_id: str | int | None = None
    patient_id: str | int | None = None
    data_category: str | None = None
    client_ip: str | None = None
    correlation_id: str | None = None
    break_glass: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    details_text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Validate and normalise every field (raises ``ValueError``)."""
        put = object.__setattr__
        put(self, "action", AuditAction(self.action))
        put(self, "outcome", AuditOutcome(self.outcome))
        if self.user_id is not None and (
            isinstance(self.user_id, bool) or not isinstance(self.user_id, int)
        ):
            raise ValueError("audit field user_id must be an int")
        put(self, "username", _short_text("username", self.username, MAX_USERNAME_CHARS))
        for name in ("role", "resource_type", "data_category"):
            put(self, name, _short_text(name, getattr(self, name), MAX_LABEL_CHARS))
        for name in ("resource_id", "patient_id", "correlation_id"):
            put(self, name, _short_text(name, getattr(self, name), MAX_ID_CHARS))
        if self.client_ip is not None:
            try:
                put(self, "client_ip", str(ipaddress.ip_address(self.client_ip)))
            except ValueError:
                raise ValueError("audit field client_ip must be an IP address") from None
        if not isinstance(self.break_glass, bool):
            raise ValueError("audit field break_glass must be a bool")
        put(self, "details_text", details_json(self.details))


# --- the MAC chain ---------------------------------------------------------------------------


def format_ts(ts: datetime) -> str:
    """The fixed ISO-8601 form of a timestamp inside the MAC: UTC, microseconds, ``+00:00``."""
    return _as_utc(ts).isoformat(timespec="microseconds")


def require_key(key: bytes) -> None:
    """Raise ``AuditKeyError`` unless ``key`` is usable for the chain."""
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise AuditKeyError(
            f"the audit key (AUDIT_HMAC_KEY) is missing or shorter than {MIN_KEY_BYTES} bytes"
        )


def compute_row_mac(key: bytes, row: Mapping[str, Any], prev_mac: str) -> str:
    """``HMAC-SHA256(key, canonical_json(row's MAC_FIELDS) || prev_mac)`` as hex."""
    payload = {name: row[name] for name in MAC_FIELDS}
    payload["ts_utc"] = format_ts(row["ts_utc"])
    message = canonical_json(payload).encode("ascii") + prev_mac.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(ts: datetime) -> datetime:
    if ts.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return ts.astimezone(UTC)


@contextmanager
def _append_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction in which this process alone may read the head and add a row."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            # Driver autocommit, so that our own BEGIN IMMEDIATE is the transaction: it takes
            # the write lock (waiting up to busy_timeout) before the head is read.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                with suppress(SQLAlchemyError):  # already rolled back if COMMIT itself failed
                    conn.exec_driver_sql("ROLLBACK")
                raise
        return
    with engine.begin() as conn:
        conn.execute(
            text("SELECT set_config('lock_timeout', :timeout, true)"),
            {"timeout": f"{APPEND_LOCK_TIMEOUT_MS}ms"},
        )
        conn.execute(select(func.pg_advisory_xact_lock(POSTGRES_APPEND_LOCK_KEY)))
        yield conn


def append(
    engine: Engine,
    key: bytes,
    record: AuditRecord,
    *,
    clock: Callable[[], datetime] = _utc_now,
) -> AuditEvent:
    """Append ``record`` as the next row of the chain and return the stored row.

    The head is read and the row inserted under one lock (see the module docstring), so appends
    from any number of threads and processes form one gap-free chain; ``clock`` is read inside
    the lock, so ``ts_utc`` never runs backwards along ``seq`` on one host. Raises
    ``AuditWriteError`` when the key is unusable or the database is busy or unavailable; the
    caller must then fail closed.
    """
    try:
        require_key(key)
    except AuditKeyError as exc:
        raise AuditWriteError(str(exc)) from None
    table = AUDIT_TABLE
    try:
        with _append_transaction(engine) as conn:
            head = conn.execute(
                select(table.c.seq, table.c.row_mac).order_by(table.c.seq.desc()).limit(1)
            ).first()
            seq, prev_mac = (head.seq + 1, head.row_mac) if head else (1, GENESIS_MAC)
            values: dict[str, Any] = {
                "seq": seq,
                "ts_utc": _as_utc(clock()),
                "user_id": record.user_id,
                "username": record.username,
                "role": record.role,
                "action": record.action.value,
                "resource_type": record.resource_type,
                "resource_id": record.resource_id,
                "patient_id": record.patient_id,
                "data_category": record.data_category,
                "outcome": record.outcome.value,
                "client_ip": record.client_ip,
                "correlation_id": record.correlation_id,
                "break_glass": record.break_glass,
                "details": record.details_text,
                "prev_mac": prev_mac,
            }
            values["row_mac"] = compute_row_mac(key, values, prev_mac)
            conn.execute(table.insert().values(**values))
    except SQLAlchemyError as exc:
        raise AuditWriteError(
            "the audit log could not be written (database busy or unavailable)"
        ) from exc
    row = AuditEvent(**values)
    for callback in tuple(_after_append):
        try:
            callback(row)
        except Exception as exc:  # the row is committed; a failed observer must not undo that
            log.warning("audit after-append hook failed: %s", type(exc).__name__)
    return row


# Observers of committed rows (the app's anchor file writer); see ``on_append``.
_after_append: list[Callable[[AuditEvent], object]] = []


def on_append(callback: Callable[[AuditEvent], object]) -> Callable[[], None]:
    """Call ``callback(row)`` after every committed append in this process; returns a remover.

    The composition root uses it to keep the external anchor file up to date (AU-04), so every
    append site gets anchoring without knowing where the file lives. A failing callback is
    logged and ignored: the row is already committed.
    """
    _after_append.append(callback)

    def remove() -> None:
        if callback in _after_append:
            _after_append.remove(callback)

    return remove
