"""Alembic environment for the app's schema (every table registered through ``storage.models``).

Two ways in:

- Programmatic, from ``storage.database.upgrade_schema(engine)``: the caller puts an open
  SQLAlchemy ``Connection`` in ``config.attributes["connection"]`` and owns its transaction.
  Logging configuration is left alone (the app's and pytest's handlers stay in place).
- Command line (``alembic upgrade head``, ``alembic revision --autogenerate``): the database is
  ``DATABASE_URL``, else SQLite at ``<DATA_DIR>/dashboard.db`` exactly as the app defaults.

SQLite migrations render in batch mode (SQLite cannot ``ALTER`` most things in place).

Autogenerate cannot see DDL attached to tables with ``event.listen(table, "after_create",
DDL(...))`` (the audit table's append-only triggers). ``_freeze_ddl_hooks`` adds it to any new
revision that creates such a table: the statements are copied verbatim, per dialect, into the
migration as ``op.execute(sa.DDL(...))``, so ``upgrade_schema`` and ``create_schema`` install
the same triggers and the migration stays fixed if the code later changes (that needs a new
revision, which the trigger test in tests/storage/test_migrations.py will demand).
"""

from __future__ import annotations

import os
import re
from logging.config import fileConfig
from pathlib import Path
from typing import Any, Literal

from alembic import context
from alembic.autogenerate import renderers
from alembic.operations import ops
from sqlalchemy import DDL, Table
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

import storage.models  # noqa: F401  registers every table on SQLModel.metadata
from storage.database import make_engine

ROOT = Path(__file__).resolve().parents[1]

config = context.config
target_metadata = SQLModel.metadata

# The one PostgreSQL object a DDL hook creates that dropping its table does not remove.
_CREATE_FUNCTION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+([\w.\"]+)\s*\(", re.IGNORECASE
)


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    data_dir = Path(os.environ.get("DATA_DIR", "").strip() or "data")
    if not data_dir.is_absolute():
        data_dir = ROOT / data_dir
    return f"sqlite:///{data_dir / 'dashboard.db'}"


# --------------------------------------------------------------------------- DDL hooks


class ExecuteDialectDDLOp(ops.MigrateOperation):
    """Render-only operation: DDL statements per dialect (None = every dialect)."""

    def __init__(self, table: str, by_dialect: dict[str | None, list[str]], drop: bool) -> None:
        self.table = table
        self.by_dialect = by_dialect
        self.drop = drop


@renderers.dispatch_for(ExecuteDialectDDLOp)
def _render_dialect_ddl(_autogen_context: Any, op: ExecuteDialectDDLOp) -> str:
    verb = "Objects left behind by" if op.drop else "DDL hooks (after_create) of"
    lines = [f"# {verb} {op.table}; autogenerate cannot see them."]
    for dialect, statements in op.by_dialect.items():
        indent = ""
        if dialect is not None:
            lines.append(f"if op.get_bind().dialect.name == {dialect!r}:")
            indent = "    "
        for statement in statements:
            lines.append(f"{indent}op.execute(sa.DDL({statement!r}))")
    return "\n".join(lines)


def _ddl_hooks(table: Table) -> dict[str | None, list[str]]:
    """The after_create DDL of ``table`` as final SQL, grouped by the dialect it runs on."""
    by_dialect: dict[str | None, list[str]] = {}
    for listener in table.dispatch.after_create:
        if not isinstance(listener, DDL):
            raise RuntimeError(
                f"{table.name}: an after_create hook is not a DDL statement; autogenerate cannot "
                "copy it into the migration. Attach DDL(...).execute_if(dialect=...) instead."
            )
        condition = listener._ddl_if
        if condition is not None and (condition.callable_ is not None or condition.state):
            raise RuntimeError(f"{table.name}: conditional DDL hooks cannot be frozen")
        dialect = None if condition is None else condition.dialect
        if dialect is not None and not isinstance(dialect, str):
            raise RuntimeError(f"{table.name}: a DDL hook names several dialects")
        context_values = {"table": table.name, "schema": table.schema or "", "fullname": table.name}
        sql = listener.statement % {**context_values, **listener.context}
        # DDL() applies %-formatting again when it runs: escape what is now literal.
        by_dialect.setdefault(dialect, []).append(sql.replace("%", "%%"))
    return by_dialect


def _leftovers(by_dialect: dict[str | None, list[str]]) -> dict[str | None, list[str]]:
    drops: dict[str | None, list[str]] = {}
    for dialect, statements in by_dialect.items():
        for statement in statements:
            for name in _CREATE_FUNCTION.findall(statement):
                drops.setdefault(dialect, []).append(f"DROP FUNCTION IF EXISTS {name}")
    return drops


def _freeze_ddl_hooks(_context: Any, _revision: Any, directives: list[Any]) -> None:
    """process_revision_directives: copy DDL hooks of newly created tables into the revision."""
    script = directives[0]
    for upgrade_ops, downgrade_ops in zip(
        script.upgrade_ops_list, script.downgrade_ops_list, strict=True
    ):
        created = [op for op in upgrade_ops.ops if isinstance(op, ops.CreateTableOp)]
        for create in created:
            table = target_metadata.tables.get(create.table_name)
            if table is None:
                continue
            hooks = _ddl_hooks(table)
            if not hooks:
                continue
            upgrade_ops.ops.append(ExecuteDialectDDLOp(table.name, hooks, drop=False))
            drops = _leftovers(hooks)
            if drops:
                downgrade_ops.ops.append(ExecuteDialectDDLOp(table.name, drops, drop=True))


def _render_item(type_: str, obj: Any, _autogen_context: Any) -> str | Literal[False]:
    """Render app-defined column types as their SQLAlchemy base, so migrations import no app code.

    ``sa`` is imported by every revision (``script.py.mako``).
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl_instance
        if type(impl).__module__.startswith("sqlalchemy."):
            return f"sa.{impl!r}"
    return False


# --------------------------------------------------------------------------- runners


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        process_revision_directives=_freeze_ddl_hooks,
    )


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL instead of running it."""
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=_database_url().startswith("sqlite"),
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run on the caller's connection, or on a new engine for ``DATABASE_URL``."""
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if config.attributes.get("connection") is None and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
