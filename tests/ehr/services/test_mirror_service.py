"""Mirror services against the real sandbox: admins sync, analytics roles load frames, others are
refused, every call is audited, and a gateway without the cipher cannot read the mirror."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from ehr.drchrono.backend import DrChronoBackend
from ehr.errors import ConfigurationError
from ehr.policy import PermissionDenied, Principal
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.services import Caller, Gateway
from ehr.services import mirror as mirror_service
from ehr.transport import EHRTransport
from storage.audit import AuditEvent
from storage.crypto import Cipher, Secret
from storage.tokens import ConnectionProfile, TokenGrant, save_connection_tokens

KEY = b"k" * 32
TZ = ZoneInfo("America/New_York")
CLINIC = ClinicConfig(
    seed=5, patients=30, months_back=2, months_ahead=1, doctors=1, offices=1,
    today=dt.date(2025, 6, 11),
)  # fmt: skip


class _StaticTokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self.token


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(clinic=CLINIC, rate_limit_per_hour=0, burst_per_second=0)
    started = SandboxServer(config).start()
    yield started
    started.stop()


@pytest.fixture
def transport(server: SandboxServer) -> Iterator[EHRTransport]:
    token = str(server.provider.issue_token(server.client_id, [])["access_token"])
    http = EHRTransport(server.base_url, _StaticTokens(token), sleep=lambda _s: None)
    yield http
    http.close()


@pytest.fixture
def cipher(sqlite_engine: Engine) -> Cipher:
    cipher = Cipher([Fernet.generate_key()])
    now = dt.datetime.now(dt.UTC)
    grant = TokenGrant(Secret("a"), Secret("r"), "Bearer", ("billing:read",), None, now)
    save_connection_tokens(sqlite_engine, cipher, grant, ConnectionProfile("drchrono", "x", ()))
    return cipher


def _gateway(engine: Engine, transport: EHRTransport, role: str, cipher: Cipher | None) -> Gateway:
    backend = DrChronoBackend(transport, practice_tz=TZ)
    principal = Principal(user_id=7, username=f"{role}-user", role=role, is_active=True)
    return Gateway(Caller(principal), engine, KEY, backend=lambda: backend, cipher=cipher)


def _audit_rows(engine: Engine) -> list[tuple[str, str, str]]:
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.resource_type, table.c.outcome, table.c.role).order_by(table.c.seq)
        )
        return [(r.resource_type, r.outcome, r.role) for r in rows]


def test_admin_syncs_and_analytics_roles_load_frames(
    server: SandboxServer, sqlite_engine: Engine, transport: EHRTransport, cipher: Cipher
) -> None:
    admin = _gateway(sqlite_engine, transport, "admin", cipher)

    step = mirror_service.run_sync_step(admin, 500)
    status = mirror_service.sync_status(admin)

    assert step.stopped == "done"
    assert status.phase == "incremental"
    assert status.records == step.records > 0
    billing = mirror_service.load_billing_frames(
        _gateway(sqlite_engine, transport, "billing", cipher)
    )
    line_items = {key for key, _rec, _stamp in server.store.scan("line_items")}
    assert set(billing.line_items["id"]) == line_items
    assert len(billing.patient_payments) == len(list(server.store.scan("patient_payments")))
    front_desk = _gateway(sqlite_engine, transport, "front_desk", cipher)
    schedule = mirror_service.load_schedule_frame(front_desk)
    assert len(schedule) > 0
    assert "reason" not in schedule.columns  # free text never reaches the mirror
    with pytest.raises(PermissionDenied):
        mirror_service.load_billing_frames(front_desk)
    with pytest.raises(PermissionDenied):
        mirror_service.run_sync_step(_gateway(sqlite_engine, transport, "billing", cipher), 5)

    assert _audit_rows(sqlite_engine) == [
        ("mirror_sync", "SUCCESS", "admin"),
        ("mirror_sync", "SUCCESS", "admin"),
        ("billing_mirror", "SUCCESS", "billing"),
        ("schedule_mirror", "SUCCESS", "front_desk"),
        ("billing_mirror", "DENIED", "front_desk"),
        ("mirror_sync", "DENIED", "billing"),
    ]


def test_without_the_cipher_the_mirror_cannot_be_read(
    sqlite_engine: Engine, transport: EHRTransport, cipher: Cipher
) -> None:
    gw = _gateway(sqlite_engine, transport, "billing", None)
    with pytest.raises(ConfigurationError):
        mirror_service.load_billing_frames(gw)
    assert _audit_rows(sqlite_engine) == [("billing_mirror", "ERROR", "billing")]
