"""Alembic migrations: they build the same schema as the models, triggers included, and undo it.

When a table module changes without a new revision, ``test_upgrade_matches_models`` fails with the
list of differences; the recipe to regenerate is in ``storage/database.py``.
"""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import DDL, inspect, text
from sqlmodel import SQLModel

import storage.models  # noqa: F401  registers every table
from storage.database import (
    downgrade_schema,
    make_engine,
    schema_matches_models,
    upgrade_schema,
)

ROOT = Path(__file__).resolve().parents[2]
_TRIGGER = re.compile(r"CREATE\s+TRIGGER\s+(\w+)", re.IGNORECASE)
_FUNCTION = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)", re.IGNORECASE)


def _hook_names(dialect: str, pattern: re.Pattern[str]) -> set[str]:
    """Names the tables' after_create DDL hooks create on ``dialect`` (what create_all installs)."""
    names: set[str] = set()
    for table in SQLModel.metadata.tables.values():
        for listener in table.dispatch.after_create:
            assert isinstance(listener, DDL)
            condition = listener._ddl_if
            if condition is None or condition.dialect in (None, dialect):
                names.update(pattern.findall(listener.statement))
    return names


def _installed(engine) -> tuple[set[str], set[str]]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
            return {r[0] for r in rows}, set()
        triggers = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        functions = conn.execute(
            text(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public'"
            )
        )
        return {r[0] for r in triggers}, {r[0] for r in functions}


def _app_tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_matches_models(db_url):
    engine = make_engine(db_url)
    try:
        upgrade_schema(engine)
        assert schema_matches_models(engine) == []
        assert _app_tables(engine) == set(SQLModel.metadata.tables)
        upgrade_schema(engine)  # at head: nothing to do
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
    finally:
        engine.dispose()


def test_upgrade_installs_the_ddl_that_create_schema_installs(db_url):
    engine = make_engine(db_url)
    try:
        upgrade_schema(engine)
        triggers, functions = _installed(engine)
        expected_triggers = _hook_names(engine.dialect.name, _TRIGGER)
        assert expected_triggers  # the audit table's append-only triggers exist
        assert triggers == expected_triggers
        assert functions == _hook_names(engine.dialect.name, _FUNCTION)
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_everything_and_upgrade_again_works(db_url):
    engine = make_engine(db_url)
    try:
        upgrade_schema(engine)
        downgrade_schema(engine, "base")
        assert _app_tables(engine) == set()
        assert _installed(engine) == (set(), set())
        diffs = schema_matches_models(engine)
        assert {d[1].name for d in diffs if d[0] == "add_table"} == set(SQLModel.metadata.tables)
        upgrade_schema(engine)
        assert schema_matches_models(engine) == []
    finally:
        engine.dispose()


def test_schema_matches_models_reports_a_drifted_column(db_url):
    engine = make_engine(db_url)
    try:
        upgrade_schema(engine)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE api_budget ADD COLUMN stray INTEGER"))
        diffs = schema_matches_models(engine)
        assert [(d[0], d[3].name) for d in diffs] == [("remove_column", "stray")]
    finally:
        engine.dispose()


def test_upgrade_leaves_application_logging_alone(tmp_path, caplog):
    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    upgrade_schema(engine)
    engine.dispose()
    assert not logging.getLogger("storage.tokens").disabled
    with caplog.at_level(logging.INFO, logger="storage.tokens"):
        logging.getLogger("storage.tokens").info("still here")
    assert "still here" in caplog.text


def test_command_line_upgrade_and_check_use_database_url(db_url):
    env = {**os.environ, "DATABASE_URL": db_url}
    alembic = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini")]
    for args in (["upgrade", "head"], ["check"]):
        done = subprocess.run(
            [*alembic, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
    engine = make_engine(db_url)
    try:
        assert schema_matches_models(engine) == []
    finally:
        engine.dispose()
