"""The settings registry: defaults, demo keys, refusal to start with example secrets, masking."""

import os
import stat
import tomllib
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from storage.settings import SETTINGS, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
REAL_FERNET = Fernet.generate_key().decode()
REAL_AUDIT = "k" * 20 + "Qz81-real-audit-key-material"


def _real_env(**overrides):
    env = {
        "DRCHRONO_CLIENT_ID": "abc123clientid",
        "DRCHRONO_CLIENT_SECRET": "s3cr3t-value-from-drchrono",
        "DRCHRONO_REDIRECT_URI": "https://dash.clinic.test/ehr-auth/callback",
        "TOKEN_KEYS": REAL_FERNET,
        "AUDIT_HMAC_KEY": REAL_AUDIT,
    }
    env.update(overrides)
    return env


def test_demo_mode_defaults_generate_private_keys(tmp_path):
    settings = load_settings({}, {}, root=tmp_path)
    assert settings.demo_mode
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'dashboard.db'}"
    assert settings.demo_keys_generated
    for name in ("token_keys", "audit_hmac_key"):
        mode = stat.S_IMODE(os.stat(tmp_path / "data" / "keys" / name).st_mode)
        assert mode == 0o600
    again = load_settings({}, {}, root=tmp_path)
    assert again.token_keys == settings.token_keys
    assert not again.demo_keys_generated


def test_environment_wins_over_secrets(tmp_path):
    settings = load_settings(
        {"PRACTICE_TIMEZONE": "America/Chicago"},
        {"PRACTICE_TIMEZONE": "Europe/Paris"},
        root=tmp_path,
    )
    assert settings.practice_timezone.key == "America/Chicago"


def test_real_ehr_configuration_loads(tmp_path):
    settings = load_settings(_real_env(), {}, root=tmp_path)
    assert not settings.demo_mode
    assert settings.drchrono_client_secret == "s3cr3t-value-from-drchrono"


@pytest.mark.parametrize(
    "key", ["DRCHRONO_CLIENT_SECRET", "DRCHRONO_REDIRECT_URI", "TOKEN_KEYS", "AUDIT_HMAC_KEY"]
)
def test_real_ehr_refuses_missing_secret_naming_it(tmp_path, key):
    with pytest.raises(SettingsError, match=key):
        load_settings(_real_env(**{key: ""}), {}, root=tmp_path)


def test_real_ehr_refuses_every_example_value(tmp_path):
    example = tomllib.loads((ROOT / ".streamlit" / "secrets.toml.example").read_text())
    for key, value in example.items():
        if key in {
            "DRCHRONO_CLIENT_SECRET",
            "DRCHRONO_REDIRECT_URI",
            "TOKEN_KEYS",
            "AUDIT_HMAC_KEY",
        }:
            with pytest.raises(SettingsError, match=key):
                load_settings(_real_env(**{key: value}), {}, root=tmp_path)


def test_real_ehr_requires_https(tmp_path):
    with pytest.raises(SettingsError, match="DRCHRONO_BASE_URL"):
        load_settings(_real_env(DRCHRONO_BASE_URL="http://app.drchrono.com"), {}, root=tmp_path)


def test_empty_scopes_refuse_to_start(tmp_path):
    with pytest.raises(SettingsError, match="DRCHRONO_SCOPES"):
        load_settings({"DRCHRONO_SCOPES": "  "}, {}, root=tmp_path)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PRACTICE_TIMEZONE", "Mars/Olympus"),
        ("SESSION_IDLE_MINUTES", "soon"),
        ("SESSION_IDLE_MINUTES", "0"),
        ("SYNC_BUDGET_SHARE", "1.5"),
        ("TOKEN_KEYS", "not-a-fernet-key"),
        ("AUDIT_HMAC_KEY", "short"),
    ],
)
def test_invalid_values_name_the_setting_not_the_value(tmp_path, key, value):
    with pytest.raises(SettingsError, match=key) as info:
        load_settings({key: value}, {}, root=tmp_path)
    if key in {"TOKEN_KEYS", "AUDIT_HMAC_KEY"}:
        assert value not in str(info.value)


def test_masked_hides_every_secret_and_repr_has_none(tmp_path):
    settings = load_settings(
        _real_env(DATABASE_URL="postgresql+psycopg://app:pgpass123@db/clinic"), {}, root=tmp_path
    )
    shown = settings.masked()
    assert set(shown) == {s.key for s in SETTINGS}
    text = repr(shown) + repr(settings)
    for secret in ("s3cr3t-value-from-drchrono", REAL_FERNET, REAL_AUDIT, "pgpass123"):
        assert secret not in text
    assert shown["DRCHRONO_CLIENT_ID"] == "abc123clientid"


def test_no_setting_can_switch_auditing_off():
    # AU-02: auditing is not configurable.
    assert not [s.key for s in SETTINGS if "AUDIT" in s.key and s.key != "AUDIT_HMAC_KEY"]


def test_every_setting_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text()
    table_rows = [line for line in readme.splitlines() if line.startswith("| `")]
    documented = {row.split("`")[1] for row in table_rows}
    missing = [s.key for s in SETTINGS if s.key not in documented]
    assert not missing, f"settings missing from the README configuration table: {missing}"


def test_concurrent_first_starts_agree_on_one_demo_key(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: load_settings({}, {}, root=tmp_path), range(8)))
    assert len({r.token_keys for r in results}) == 1
    assert len({r.audit_hmac_key for r in results}) == 1
    assert sum(r.demo_keys_generated for r in results) >= 1
    assert sorted(p.name for p in (tmp_path / "data" / "keys").iterdir()) == [
        "audit_hmac_key",
        "token_keys",
    ]
