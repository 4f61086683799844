"""Engine factory and schema creation.

SQLite (the embedded default) runs in WAL mode with foreign keys and ``secure_delete`` on, so
deleted token ciphertext is overwritten rather than left in free pages. PostgreSQL is the same
code through ``postgresql+psycopg://`` URLs. One session per unit of work: callers open
``Session(engine)`` in a ``with`` block and never keep it across Streamlit reruns.

Schema changes go through Alembic (``alembic.ini`` and ``migrations/`` at the repository root):
the app calls ``upgrade_schema(engine)``; ``schema_matches_models(engine)`` lists any difference
between the database and the SQLModel tables (empty when migrations and models agree), which is
what ``alembic check`` reports from the command line.

Regenerating the initial revision once every table module is registered in ``storage/models.py``
(one command, from the repository root; an empty SQLite database makes every table "new")::

    rm -f migrations/versions/0001_initial.py /tmp/ehr-empty.db && \
    DATABASE_URL=sqlite:////tmp/ehr-empty.db alembic revision --autogenerate -m initial --rev-id 0001

DDL that autogenerate cannot see (``after_create`` hooks such as the audit triggers) is copied
into the new revision by ``migrations/env.py``. Later schema changes get their own revision with
``alembic revision --autogenerate -m "<change>"`` against a database at head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel, create_engine

# Seconds SQLite waits on a locked database before raising "database is locked"; long enough
# for a concurrent audit append, short enough that a stuck writer surfaces as an error.
SQLITE_BUSY_TIMEOUT_MS = 5000
# Pool bound for PostgreSQL per process: Streamlit reruns are short, many sessions share it.
POSTGRES_POOL_SIZE = 5
POSTGRES_MAX_OVERFLOW = 10
# Alembic's script directory (env.py, versions/) at the repository root.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
# Key of the PostgreSQL advisory lock that serialises schema upgrades of several replicas
# starting at once; any constant the app uses nowhere else ("ehrmigr" in ASCII).
_MIGRATION_LOCK_KEY = 0x6568726D696772

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection


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


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _lock_for_migration(connection: Connection) -> None:
    # Two replicas starting together must not both create the tables: SQLite takes the write
    # lock first (BEGIN IMMEDIATE), PostgreSQL an advisory lock held until commit.
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest) with Alembic, in one transaction.

    Equivalent to ``alembic upgrade head`` on ``engine``, including the DDL autogenerate cannot
    see (audit triggers). Safe to call at every start-up: at head it does nothing.
    """
    from alembic import command

    with engine.begin() as connection:
        _lock_for_migration(connection)
        command.upgrade(_alembic_config(connection), revision)


def downgrade_schema(engine: Engine, revision: str = "base") -> None:
    """Step the database back to ``revision`` (default: empty) with Alembic; for tests and ops."""
    from alembic import command

    with engine.begin() as connection:
        _lock_for_migration(connection)
        command.downgrade(_alembic_config(connection), revision)


def schema_matches_models(engine: Engine) -> list[Any]:
    """Differences between the database schema and the SQLModel tables; empty when they agree.

    Runs Alembic autogenerate's comparison (``alembic.autogenerate.compare_metadata``, types
    included). Each item is an Alembic diff tuple such as ``("add_table", Table)``.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import storage.models  # noqa: F401  registers every table on SQLModel.metadata

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))
