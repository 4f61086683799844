"""The composition root: the one place that reads configuration and builds shared resources.

It reads the environment and ``st.secrets`` (the UI edge) into ``Settings`` and builds, once per
process, the database engine (schema upgraded through Alembic), the cipher, the account store,
in demo mode the embedded DrChrono sandbox, the EHR connector and one HTTP transport per EHR
connection. Scripts and the ``st.App`` routes share these through plain process-wide caches
(routes run outside any script, where Streamlit's caches are not meant to be used). Nothing
here holds a user's data: each browser session gets its own ``Gateway`` from ``new_gateway``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import streamlit as st
from sqlalchemy import text
from sqlalchemy.engine import Engine

from ehr.backend import EHRBackend
from ehr.budget import StoredBudget
from ehr.drchrono.backend import DrChronoBackend
from ehr.errors import NotConnectedError
from ehr.oauth import OAuthClientConfig
from ehr.redaction import install_logging
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.services.accounts import AccountStore
from ehr.services.admin import SandboxAdmin
from ehr.services.connection import Connector, connection_summary, current_connection
from ehr.services.gateway import Caller, Gateway
from ehr.sync_scheduler import SyncScheduler, run_background_step
from ehr.tokens import ConnectionTokens
from ehr.transport import EHRTransport
from storage import audit, audit_chain
from storage.crypto import Cipher, Secret
from storage.database import make_engine, upgrade_schema
from storage.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "Settings",
    "SettingsError",
    "account_store",
    "app_engine",
    "app_settings",
    "connector",
    "health_report",
    "new_gateway",
    "reset",
]

log = logging.getLogger(__name__)

_lock = threading.RLock()
_stop_anchoring: list[Callable[[], None]] = []
_transports: dict[int, tuple[EHRTransport, DrChronoBackend]] = {}


def _secrets() -> dict[str, Any]:
    try:
        return {key: st.secrets[key] for key in st.secrets}
    except FileNotFoundError:  # no secrets.toml: the environment and defaults apply
        return {}


@functools.cache
def app_settings() -> Settings:
    """Validated settings for this process (raises ``SettingsError`` naming a bad setting)."""
    settings = load_settings(os.environ, _secrets(), root=ROOT)
    install_logging(settings.log_level)
    return settings


@functools.cache
def app_engine() -> Engine:
    """The database engine, with the schema upgraded to the latest migration.

    Also starts keeping the audit anchor file (AU-04) for every audit row this process writes.
    """
    engine = make_engine(app_settings().database_url)
    upgrade_schema(engine)
    anchor = audit_chain.default_anchor_path(app_settings().data_dir)
    _stop_anchoring.append(
        audit.on_append(lambda row: audit_chain.record_anchor_if_due(anchor, row))
    )
    return engine


@functools.cache
def cipher() -> Cipher:
    """The token cipher (first key encrypts, all keys decrypt)."""
    return Cipher.from_settings(app_settings())


@functools.cache
def account_store() -> AccountStore:
    """Sign-in and session operations with this deployment's limits."""
    settings = app_settings()
    return AccountStore(
        app_engine(),
        settings.audit_hmac_key,
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
    )


@functools.cache
def demo_sandbox() -> SandboxServer | None:
    """In demo mode, the embedded DrChrono sandbox, started once for this process."""
    settings = app_settings()
    if not settings.demo_mode:
        return None
    config = SandboxConfig(
        clinic=ClinicConfig(seed=settings.sandbox_seed, patients=settings.sandbox_patients),
        redirect_uris=(settings.drchrono_redirect_uri,),
        faults_admin_enabled=True,  # Settings offers fault toggles for training in demo mode
    )
    # requests-oauthlib refuses plain http; the sandbox is http on loopback only, and in demo
    # mode it is the only OAuth server this process talks to.
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    server = SandboxServer(config).start()
    log.info("demo sandbox EHR listening on %s", server.base_url)
    return server


@functools.cache
def connector() -> Connector:
    """The configured EHR: real DrChrono, or the embedded sandbox in demo mode."""
    settings = app_settings()
    sandbox = demo_sandbox()
    if sandbox is not None:
        client = OAuthClientConfig(
            base_url=sandbox.base_url,
            client_id=sandbox.client_id,
            client_secret=Secret(sandbox.client_secret),
            redirect_uri=settings.drchrono_redirect_uri,
            scopes=settings.scopes,
        )
    else:
        client = OAuthClientConfig(
            base_url=settings.drchrono_base_url,
            client_id=settings.drchrono_client_id,
            client_secret=Secret(settings.drchrono_client_secret),
            redirect_uri=settings.drchrono_redirect_uri,
            scopes=settings.scopes,
        )
    return Connector(
        engine=app_engine(),
        cipher=cipher(),
        audit_key=settings.audit_hmac_key,
        oauth=client,
        calls_per_hour=settings.api_calls_per_hour,
        demo=settings.demo_mode,
    )


def ehr_backend() -> EHRBackend:
    """The backend of the current connection (one pooled transport per connection).

    Raises ``NotConnectedError`` when no EHR is connected; a connection that needs
    reauthorisation raises on first use, from its token source.
    """
    conn = connector()
    status = current_connection(conn)
    if status is None:
        raise NotConnectedError()
    with _lock:
        cached = _transports.get(status.connection_id)
        if cached is None:
            tokens = ConnectionTokens(
                conn.engine, conn.cipher, conn.oauth, status.connection_id, audit_key=conn.audit_key
            )
            budget = StoredBudget(conn.engine, status.connection_id, limit=conn.calls_per_hour)
            transport = EHRTransport(conn.oauth.base_url, tokens, budget=budget)
            backend = DrChronoBackend(transport, practice_tz=app_settings().practice_timezone)
            cached = _transports[status.connection_id] = (transport, backend)
        return cached[1]


def _background_sync_step() -> None:
    conn = connector()
    status = current_connection(conn)
    if status is None or not status.connected or status.needs_reauth:
        return
    settings = app_settings()
    run_background_step(
        ehr_backend(),
        conn.engine,
        conn.cipher,
        conn.audit_key,
        connection_id=status.connection_id,
        calls_per_hour=settings.api_calls_per_hour,
        share=settings.sync_budget_share,
    )


@functools.cache
def background_sync() -> SyncScheduler | None:
    """Start, once per process, the scheduler that keeps the analytics mirror fresh."""
    minutes = app_settings().sync_interval_minutes
    if minutes <= 0:
        return None
    return SyncScheduler(_background_sync_step, interval_s=minutes * 60.0).start()


def new_gateway(caller: Caller) -> Gateway:
    """A gateway for one browser session (its own cache), bound to ``caller``."""
    settings = app_settings()
    return Gateway(
        caller,
        app_engine(),
        settings.audit_hmac_key,
        backend=ehr_backend,
        cipher=cipher(),
        calls_per_hour=settings.api_calls_per_hour,
        sync_budget_share=settings.sync_budget_share,
    )


def _warm_up() -> None:
    try:
        connector()  # in demo mode this generates the synthetic clinic: seconds, not instant
    except Exception as exc:  # the first page will show the problem; warm-up only logs it
        log.error("warm-up failed: %s", type(exc).__name__)


@contextlib.asynccontextmanager
async def lifespan(_app: object) -> AsyncIterator[None]:
    """``st.App`` lifespan: prepare the EHR connector in the background at server start.

    So ``/api/health`` and the sign-in page answer at once while the demo clinic is generated.
    """
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
    yield None


def health_report() -> dict[str, Any]:
    """``/api/health``: database reachable, EHR connection state. No PHI, no secrets.

    Never waits for the EHR connector to be built: while it is (demo clinic generation at
    start-up), the EHR state is reported as ``starting``.
    """
    report: dict[str, Any] = {"time": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        with app_engine().connect() as db:
            db.execute(text("SELECT 1"))
        report["database"] = "ok"
    except Exception as exc:  # report, do not raise: health must always answer
        log.warning("health check: database unavailable (%s)", type(exc).__name__)
        report["database"] = "unavailable"
    try:
        report["demo_mode"] = app_settings().demo_mode
        ready = connector.cache_info().currsize > 0
        report["ehr"] = connection_summary(connector()).state if ready else "starting"
    except Exception as exc:
        log.warning("health check: EHR state unknown (%s)", type(exc).__name__)
        report["ehr"] = "unknown"
    report["status"] = "ok" if report["database"] == "ok" else "degraded"
    return report


def reset() -> None:
    """Forget every process resource (tests start each app as a fresh process)."""
    with _lock:
        for transport, _backend in _transports.values():
            transport.close()
        _transports.clear()
    scheduler = background_sync() if background_sync.cache_info().currsize else None
    if scheduler is not None:
        scheduler.stop()
    sandbox = demo_sandbox() if demo_sandbox.cache_info().currsize else None
    if sandbox is not None:
        sandbox.stop()
    engine = app_engine() if app_engine.cache_info().currsize else None
    if engine is not None:
        engine.dispose()
    while _stop_anchoring:
        _stop_anchoring.pop()()
    for cached in (
        app_settings,
        app_engine,
        cipher,
        account_store,
        demo_sandbox,
        connector,
        background_sync,
    ):
        cached.cache_clear()


def sandbox_admin() -> SandboxAdmin | None:
    """In demo mode, how Settings reaches the sandbox's training controls (its admin API)."""
    sandbox = demo_sandbox()
    if sandbox is None:
        return None
    return SandboxAdmin(base_url=sandbox.base_url, admin_key=sandbox.admin_key)
