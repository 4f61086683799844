"""Shared fixtures.

Storage tests run on SQLite and on PostgreSQL: ``db_url`` is parametrised over both. Each test
gets a fresh database (a temp file for SQLite, a uniquely named database on the server for
PostgreSQL) so parallel runs and helpers never see each other's rows.

PostgreSQL comes from ``TEST_POSTGRES_URL`` (default: the local server at 127.0.0.1:5432, trust
auth, database ``test``). When it cannot be reached the PostgreSQL cases skip with the reason, but
with ``CI`` set (as ``.ci/run`` does) that is a failure: CI must exercise both databases.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from storage.database import create_schema, make_engine

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _restore_main_module() -> Iterator[None]:
    """AppTest leaves the page script installed as ``__main__``; spawned processes would re-run it."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


def _postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _require_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI requires this: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the PostgreSQL server, for creating per-test databases."""
    engine = create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # any connection failure means "no server here"
        engine.dispose()
        _require_or_skip(f"PostgreSQL not reachable at TEST_POSTGRES_URL ({type(exc).__name__})")
    yield engine
    engine.dispose()


def _new_postgres_db(admin: Engine) -> tuple[str, str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_postgres_admin_url()).set(database=name)
    return name, url.render_as_string(hide_password=False)


def _drop_postgres_db(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    name, url = _new_postgres_db(admin)
    try:
        yield url
    finally:
        _drop_postgres_db(admin, name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a fresh database with the whole schema created."""
    eng = make_engine(db_url)
    create_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only, for tests about the file on disk."""
    eng = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    create_schema(eng)
    yield eng
    eng.dispose()
