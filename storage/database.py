"""Engine factory and schema creation.

SQLite (the embedded default) runs in WAL mode with foreign keys and ``secure_delete`` on, so
deleted token ciphertext is overwritten rather than left in free pages. PostgreSQL is the same
code through ``postgresql+psycopg://`` URLs. One session per unit of work: callers open
``Session(engine)`` in a ``with`` block and never keep it across Streamlit reruns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel, create_engine

# Seconds SQLite waits on a locked database before raising "database is locked"; long enough
# for a concurrent audit append, short enough that a stuck writer surfaces as an error.
SQLITE_BUSY_TIMEOUT_MS = 5000
# Pool bound for PostgreSQL per process: Streamlit reruns are short, many sessions share it.
POSTGRES_POOL_SIZE = 5
POSTGRES_MAX_OVERFLOW = 10


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the pragmas and pool settings this app relies on."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_MAX_OVERFLOW,
        pool_pre_ping=True,
    )


def create_schema(engine: Engine) -> None:
    """Create every table (and the DDL hooks attached to them, such as audit triggers).

    Tests and throw-away databases use this; the app upgrades through Alembic migrations.
    """
    import storage.models  # noqa: F401  registers every table on SQLModel.metadata

    SQLModel.metadata.create_all(engine)
