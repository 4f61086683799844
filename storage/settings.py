"""The one settings registry.

Every setting is declared once in ``SETTINGS`` with its key, default and help text. Values are
read only at the edges (``ui/wiring.py`` for the app, ``python -m storage`` for the admin
command line), from the environment first and then ``.streamlit/secrets.toml``, and passed inward
as one frozen ``Settings`` object. This module sits in the lowest layer so that every layer can
accept a ``Settings`` without importing Streamlit.

Demo mode (no DrChrono client id configured) runs against the embedded sandbox and generates its
own keys under ``<data dir>/keys`` (mode 0600). With a real EHR configured, a missing, empty or
example-valued secret refuses to start with a message naming the setting.
"""

from __future__ import annotations

import os
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.fernet import Fernet


@dataclass(frozen=True)
class Setting:
    """One configuration value: its key (environment variable and secrets key), default, help."""

    key: str
    default: str
    help: str
    secret: bool = False


# Scopes the dashboard needs (drchrono.md section 1.4); always sent explicitly.
_DEFAULT_SCOPES = (
    "user:read patients:read patients:write calendar:read calendar:write "
    "clinical:read clinical:write labs:read billing:read billing:patient-payment:read "
    "billing:patient-payment:write"
)

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "",
        "SQLAlchemy URL of the app database. Empty: SQLite at "
        "<DATA_DIR>/dashboard.db. PostgreSQL: postgresql+psycopg://user:pw@host/db.",
    ),
    Setting("DATA_DIR", "data", "Folder for the SQLite database and generated demo keys."),
    Setting(
        "DRCHRONO_CLIENT_ID",
        "",
        "OAuth client id of the DrChrono app. Empty: demo mode against the embedded sandbox EHR.",
    ),
    Setting("DRCHRONO_CLIENT_SECRET", "", "OAuth client secret of the DrChrono app.", secret=True),
    Setting(
        "DRCHRONO_REDIRECT_URI",
        "",
        "Redirect URI registered with DrChrono; must point at "
        "this app's /ehr-auth/callback route. Empty in demo mode: derived from APP_BASE_URL.",
    ),
    Setting("DRCHRONO_BASE_URL", "https://app.drchrono.com", "Base URL of the DrChrono API."),
    Setting("DRCHRONO_SCOPES", _DEFAULT_SCOPES, "Space-separated OAuth scopes requested."),
    Setting(
        "TOKEN_KEYS",
        "",
        "Comma-separated Fernet keys encrypting stored tokens and the "
        "mirror; the first encrypts, all decrypt (rotation). Demo: generated.",
        secret=True,
    ),
    Setting(
        "AUDIT_HMAC_KEY",
        "",
        "Key of the audit log's hash chain (at least 32 characters), "
        "separate from TOKEN_KEYS. Demo: generated.",
        secret=True,
    ),
    Setting("APP_BASE_URL", "http://localhost:8501", "Public URL of the app (for redirects)."),
    Setting(
        "PRACTICE_TIMEZONE",
        "America/New_York",
        "IANA timezone of the practice; DrChrono timestamps carry no zone and are read in it.",
    ),
    Setting("SESSION_IDLE_MINUTES", "15", "Sign-in session idle timeout, minutes."),
    Setting("SESSION_ABSOLUTE_HOURS", "12", "Sign-in session absolute lifetime, hours."),
    Setting("API_CALLS_PER_HOUR", "500", "DrChrono's hourly call budget per application."),
    Setting("SYNC_BUDGET_SHARE", "0.6", "Share of the hourly budget the mirror backfill may use."),
    Setting(
        "SYNC_INTERVAL_MINUTES",
        "15",
        "Minutes between background refreshes of the analytics mirror; 0 turns them off.",
    ),
    Setting("SANDBOX_SEED", "7", "Demo mode: seed of the synthetic clinic."),
    Setting("SANDBOX_PATIENTS", "1500", "Demo mode: number of synthetic patients."),
    Setting("LOG_LEVEL", "INFO", "Log level of the app's own loggers."),
)

_BY_KEY = {s.key: s for s in SETTINGS}

# Values copied from documentation or the example secrets file; never accepted for real use.
_EXAMPLE_MARKERS = ("changeme", "change-me", "example", "your-", "xxxx", "<", "replace")


class SettingsError(ValueError):
    """Configuration is missing or invalid; the message names the setting, never its value."""


@dataclass(frozen=True)
class Settings:
    """Typed, validated configuration passed inward from the edge."""

    database_url: str = field(repr=False)  # may embed a password
    data_dir: Path
    demo_mode: bool
    drchrono_client_id: str
    drchrono_client_secret: str = field(repr=False)
    drchrono_redirect_uri: str
    drchrono_base_url: str
    scopes: tuple[str, ...]
    token_keys: tuple[bytes, ...] = field(repr=False)
    audit_hmac_key: bytes = field(repr=False)
    app_base_url: str
    practice_timezone: ZoneInfo
    session_idle_minutes: int
    session_absolute_hours: int
    api_calls_per_hour: int
    sync_budget_share: float
    sync_interval_minutes: int
    sandbox_seed: int
    sandbox_patients: int
    log_level: str
    demo_keys_generated: bool = False

    def masked(self) -> dict[str, str]:
        """Every setting by key, with secret values masked, for display."""
        shown: dict[str, str] = {}
        for s in SETTINGS:
            raw = _display_value(self, s.key)
            shown[s.key] = ("••••••" if raw else "(not set)") if s.secret else raw
        return shown


def _display_value(st: Settings, key: str) -> str:
    values: dict[str, Any] = {
        "DATABASE_URL": _mask_url_password(st.database_url),
        "DATA_DIR": str(st.data_dir),
        "DRCHRONO_CLIENT_ID": st.drchrono_client_id,
        "DRCHRONO_CLIENT_SECRET": st.drchrono_client_secret,
        "DRCHRONO_REDIRECT_URI": st.drchrono_redirect_uri,
        "DRCHRONO_BASE_URL": st.drchrono_base_url,
        "DRCHRONO_SCOPES": " ".join(st.scopes),
        "TOKEN_KEYS": ",".join(k.decode() for k in st.token_keys),
        "AUDIT_HMAC_KEY": st.audit_hmac_key.decode(errors="replace"),
        "APP_BASE_URL": st.app_base_url,
        "PRACTICE_TIMEZONE": st.practice_timezone.key,
        "SESSION_IDLE_MINUTES": st.session_idle_minutes,
        "SESSION_ABSOLUTE_HOURS": st.session_absolute_hours,
        "API_CALLS_PER_HOUR": st.api_calls_per_hour,
        "SYNC_BUDGET_SHARE": st.sync_budget_share,
        "SYNC_INTERVAL_MINUTES": st.sync_interval_minutes,
        "SANDBOX_SEED": st.sandbox_seed,
        "SANDBOX_PATIENTS": st.sandbox_patients,
        "LOG_LEVEL": st.log_level,
    }
    return str(values[key])


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as a placeholder, never raw
        return "(invalid URL)"


def _raw(key: str, env: Mapping[str, str], secrets: Mapping[str, Any]) -> str:
    if key in env:
        return env[key].strip()
    if key in secrets:
        return str(secrets[key]).strip()
    return _BY_KEY[key].default


def _int(key: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{key} must be a whole number") from None
    if number < minimum:
        raise SettingsError(f"{key} must be at least {minimum}")
    return number


def _looks_like_example(value: str) -> bool:
    lowered = value.lower()
    return any(marker in lowered for marker in _EXAMPLE_MARKERS)


def _require_real(key: str, value: str) -> str:
    if not value:
        raise SettingsError(f"{key} is required when a real EHR is configured")
    if _looks_like_example(value):
        raise SettingsError(f"{key} still holds an example value; set a real one")
    return value


def _parse_fernet_keys(key: str, value: str) -> tuple[bytes, ...]:
    keys = tuple(k.strip().encode() for k in value.split(",") if k.strip())
    if not keys:
        raise SettingsError(f"{key} is empty")
    for k in keys:
        try:
            Fernet(k)
        except (ValueError, TypeError):
            raise SettingsError(f"{key} holds a value that is not a Fernet key") from None
    return keys


def _demo_key(path: Path, make: Any) -> tuple[str, bool]:
    """Read a generated demo key, creating it (mode 0600) on first use.

    Several processes may start at once: the key is written to a private temporary file and
    published with ``os.link``, which fails if another process won, so nobody reads a half-written
    key and every process ends up with the same one.
    """
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(make())
    try:
        os.link(tmp, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        tmp.unlink()
    return path.read_text().strip(), created


def demo_key_dir(data_dir: Path) -> Path:
    """Where demo mode keeps its generated keys."""
    return data_dir / "keys"


def load_settings(
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, Any] | None = None,
    *,
    root: Path | None = None,
) -> Settings:
    """Build validated settings from the environment and a secrets mapping.

    ``root`` anchors relative paths (the repository root in the app). Raises ``SettingsError``
    naming the first bad setting; demo mode creates missing keys instead of failing.
    """
    env = os.environ if env is None else env
    secrets = secrets or {}
    base = root or Path.cwd()

    def get(key: str) -> str:
        return _raw(key, env, secrets)

    data_dir = Path(get("DATA_DIR") or "data")
    if not data_dir.is_absolute():
        data_dir = base / data_dir
    demo = not get("DRCHRONO_CLIENT_ID")

    database_url = get("DATABASE_URL") or f"sqlite:///{data_dir / 'dashboard.db'}"
    generated = False
    token_value, audit_value = get("TOKEN_KEYS"), get("AUDIT_HMAC_KEY")
    if demo:
        keys = demo_key_dir(data_dir)
        if not token_value:
            token_value, new = _demo_key(
                keys / "token_keys", lambda: Fernet.generate_key().decode()
            )
            generated |= new
        if not audit_value:
            audit_value, new = _demo_key(
                keys / "audit_hmac_key", lambda: _secrets.token_urlsafe(48)
            )
            generated |= new
        client_id, client_secret, redirect = "", "", get("DRCHRONO_REDIRECT_URI")
    else:
        client_id = _require_real("DRCHRONO_CLIENT_ID", get("DRCHRONO_CLIENT_ID"))
        client_secret = _require_real("DRCHRONO_CLIENT_SECRET", get("DRCHRONO_CLIENT_SECRET"))
        redirect = _require_real("DRCHRONO_REDIRECT_URI", get("DRCHRONO_REDIRECT_URI"))
        _require_real("TOKEN_KEYS", token_value)
        _require_real("AUDIT_HMAC_KEY", audit_value)
        if not get("DRCHRONO_BASE_URL").startswith("https://"):
            raise SettingsError("DRCHRONO_BASE_URL must use https:// for a real EHR")

    if len(audit_value) < 32:
        raise SettingsError("AUDIT_HMAC_KEY must be at least 32 characters")
    scopes = tuple(get("DRCHRONO_SCOPES").split())
    if not scopes:
        raise SettingsError("DRCHRONO_SCOPES is empty; the dashboard always requests scopes")
    try:
        tz = ZoneInfo(get("PRACTICE_TIMEZONE"))
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError("PRACTICE_TIMEZONE is not a known IANA timezone") from None
    try:
        share = float(get("SYNC_BUDGET_SHARE"))
    except ValueError:
        raise SettingsError("SYNC_BUDGET_SHARE must be a number between 0 and 1") from None
    if not 0 < share <= 1:
        raise SettingsError("SYNC_BUDGET_SHARE must be a number between 0 and 1")
    app_base_url = get("APP_BASE_URL").rstrip("/")

    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        demo_mode=demo,
        drchrono_client_id=client_id,
        drchrono_client_secret=client_secret,
        drchrono_redirect_uri=redirect or f"{app_base_url}/ehr-auth/callback",
        drchrono_base_url=get("DRCHRONO_BASE_URL").rstrip("/"),
        scopes=scopes,
        token_keys=_parse_fernet_keys("TOKEN_KEYS", token_value),
        audit_hmac_key=audit_value.encode(),
        app_base_url=app_base_url,
        practice_timezone=tz,
        session_idle_minutes=_int("SESSION_IDLE_MINUTES", get("SESSION_IDLE_MINUTES"), 1),
        session_absolute_hours=_int("SESSION_ABSOLUTE_HOURS", get("SESSION_ABSOLUTE_HOURS"), 1),
        api_calls_per_hour=_int("API_CALLS_PER_HOUR", get("API_CALLS_PER_HOUR"), 1),
        sync_budget_share=share,
        sync_interval_minutes=_int("SYNC_INTERVAL_MINUTES", get("SYNC_INTERVAL_MINUTES"), 0),
        sandbox_seed=_int("SANDBOX_SEED", get("SANDBOX_SEED"), 0),
        sandbox_patients=_int("SANDBOX_PATIENTS", get("SANDBOX_PATIENTS"), 1),
        log_level=get("LOG_LEVEL").upper() or "INFO",
        demo_keys_generated=generated,
    )
