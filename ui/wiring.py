"""The composition root: the one place that reads configuration and builds shared resources.

It reads the environment and ``st.secrets`` (the UI edge), builds the ``Settings``, the database
engine (schema upgraded through Alembic once per process) and hands them inward. Resources here
are process-wide and user-independent, so ``st.cache_resource`` is safe for them; nothing that
holds a user's data or token is cached here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine

from storage.database import make_engine, upgrade_schema
from storage.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["Settings", "SettingsError", "app_engine", "app_settings"]


def _secrets() -> dict[str, Any]:
    try:
        return {key: st.secrets[key] for key in st.secrets}
    except FileNotFoundError:  # no secrets.toml: the environment and defaults apply
        return {}


@st.cache_resource(show_spinner=False)
def app_settings() -> Settings:
    """Validated settings for this process (raises ``SettingsError`` naming a bad setting)."""
    return load_settings(os.environ, _secrets(), root=ROOT)


@st.cache_resource(show_spinner="Preparing the database…")
def app_engine() -> Engine:
    """The database engine, with the schema upgraded to the latest migration."""
    engine = make_engine(app_settings().database_url)
    upgrade_schema(engine)
    return engine
