"""Home.py starts on an empty data directory and is honest about what is built."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_process_resources():
    # Settings and the engine are per-process resources; each test is a fresh "process".
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def test_home_starts_in_demo_mode_with_demo_keys_notice(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DRCHRONO_CLIENT_ID", raising=False)
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert any("Demo keys" in info.value for info in at.info)
    assert any("Not built yet" in h.value for h in at.subheader)
    assert (tmp_path / "data" / "dashboard.db").exists()


def test_home_refuses_to_start_with_example_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRCHRONO_CLIENT_ID", "real-client-id")
    monkeypatch.setenv("DRCHRONO_CLIENT_SECRET", "your-drchrono-client-secret")
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert any("DRCHRONO" in err.value for err in at.error)
