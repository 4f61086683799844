"""Imports every table module so that ``SQLModel.metadata`` knows the whole schema.

Each table lives with the code that owns it (``storage/identity.py``, ``storage/audit.py``,
``storage/tokens.py``, ...); Alembic and ``create_schema`` import this module.
"""
