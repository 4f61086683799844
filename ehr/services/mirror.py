"""The analytics mirror as pages see it: sync status and steps for admins, frames for analytics.

Billing and scheduling analytics never call the EHR per page view (DESIGN.md §4): they load the
encrypted local mirror that ``ehr.sync.MirrorSync`` fills. Admins see the sync's progress and
run a bounded step of it (Settings' "sync now", or a background job acting as an admin); both
are audited like any service. Loading decrypts the mirror and builds typed frames with
``ehr.analytics.frames``; the rows hold ids, codes, amounts and dates only.

The sync spends from the connection's shared hourly budget (``storage.tokens.budget_state``),
found here as the newest connected EHR connection, with DrChrono's default limit: the gateway
does not carry the deployment's configured limit, so a lower ``API_CALLS_PER_HOUR`` is still
enforced by the transport's budget gate, and the sync's share is taken of the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from ehr.analytics import frames
from ehr.errors import ConfigurationError, NotConnectedError
from ehr.policy import Action
from ehr.services.gateway import Gateway, service
from ehr.sync import BudgetProbe, MirrorSync, StepResult, SyncProgress
from storage import mirror, tokens
from storage.audit import AuditAction
from storage.crypto import Cipher

__all__ = [
    "BillingFrames",
    "MirrorVersion",
    "ScheduleFrames",
    "billing_mirror_version",
    "load_billing_frames",
    "load_schedule_analytics",
    "load_schedule_frame",
    "run_sync_step",
    "schedule_mirror_version",
    "sync_status",
]


@dataclass(frozen=True)
class BillingFrames:
    """The billing mirror as typed frames (see ``ehr.analytics.frames`` for the columns)."""

    line_items: pd.DataFrame
    transactions: pd.DataFrame
    patient_payments: pd.DataFrame


def _cipher(gw: Gateway) -> Cipher:
    if gw.cipher is None:  # the composition root always sets it; a bare gateway cannot decrypt
        raise ConfigurationError(details={"missing": "cipher"})
    return gw.cipher


def _budget_probe(gw: Gateway) -> BudgetProbe:
    connected = [c for c in tokens.list_connections(gw.engine) if c.connected]
    if not connected:
        raise NotConnectedError()
    connection_id = connected[-1].connection_id
    limit = gw.calls_per_hour

    def probe() -> tuple[int, int]:
        return tokens.budget_state(gw.engine, connection_id, limit).calls, limit

    return probe


def _sync(gw: Gateway) -> MirrorSync:
    return MirrorSync(
        gw.backend(),
        gw.engine,
        _cipher(gw),
        _budget_probe(gw),
        share=gw.sync_budget_share,
        calls_per_hour=gw.calls_per_hour,
    )


@service(Action.ADMIN, AuditAction.READ, "mirror_sync", "metadata")
def sync_status(gw: Gateway) -> SyncProgress:
    """Records, requests, phase and estimated time left of the mirror sync, per kind.

    Raises ``NotConnectedError`` when no EHR is connected and ``ConfigurationError`` when the
    gateway has no cipher.
    """
    return _sync(gw).progress()


@service(
    Action.ADMIN,
    AuditAction.READ,
    "mirror_sync",
    "billing",
    describe=lambda args: {"max_requests": args["max_requests"]},
)
def run_sync_step(gw: Gateway, max_requests: int) -> StepResult:
    """Sync the mirror with at most ``max_requests`` EHR calls (and the sync's budget share).

    Returns why it stopped (``paused_until`` when the budget share is used). Transient
    upstream failures end the step cleanly; other ``EHRError``s (reconnect needed, forbidden)
    are raised after being recorded in the sync state.
    """
    return _sync(gw).step(max_requests)


@service(Action.BILLING_READ, AuditAction.READ, "billing_mirror", "billing")
def load_billing_frames(gw: Gateway) -> BillingFrames:
    """Line items, insurance transactions and patient payments from the mirror, as frames.

    No EHR call. Raises ``ConfigurationError`` when the gateway has no cipher.
    """
    cipher = _cipher(gw)
    return BillingFrames(
        line_items=frames.line_items_frame(mirror.load_columns(gw.engine, cipher, "line_item")),
        transactions=frames.transactions_frame(
            mirror.load_columns(gw.engine, cipher, "transaction")
        ),
        patient_payments=frames.patient_payments_frame(
            mirror.load_columns(gw.engine, cipher, "patient_payment")
        ),
    )


@dataclass(frozen=True)
class MirrorVersion:
    """What the mirror holds, read from clear metadata only (nothing decrypted but sync state).

    ``key`` changes whenever a sync stores a batch or the mirror is compacted, so a page can
    keep data it built from the mirror until the key moves. ``synced_at`` is when the least
    recently synced kind last finished a sync write (UTC; None until every kind has synced):
    the analytics are at least that fresh. ``batches`` counts stored batches per kind.
    """

    key: tuple[tuple[str, int, int], ...]
    synced_at: datetime | None
    batches: tuple[tuple[str, int], ...]

    def is_empty(self, kind: str = "line_item") -> bool:
        """True when nothing of ``kind`` was ever stored."""
        return dict(self.batches).get(kind, 0) == 0


@service(Action.BILLING_READ, AuditAction.READ, "billing_mirror_version", "billing")
def billing_mirror_version(gw: Gateway) -> MirrorVersion:
    """The billing mirror's version and freshness (no EHR call, no record decrypted).

    The Billing page calls it on every view, before deciding whether the analytics it keeps
    for the session are still current, so each view is audited even when nothing is reloaded.
    Raises ``ConfigurationError`` when the gateway has no cipher.
    """
    return _version(gw, mirror.KINDS)


@service(Action.SCHEDULE_ANALYTICS, AuditAction.READ, "schedule_mirror_version", "scheduling")
def schedule_mirror_version(gw: Gateway) -> MirrorVersion:
    """The appointment mirror's version and freshness (no EHR call, no record decrypted).

    Scheduling analytics call it on every view of their section to decide whether the frames
    and figures kept for the session are still current, so each view is audited.
    """
    return _version(gw, ("appointment",))


def _version(gw: Gateway, kinds: tuple[str, ...]) -> MirrorVersion:
    cipher = _cipher(gw)
    key: list[tuple[str, int, int]] = []
    synced: list[datetime | None] = []
    for kind in kinds:
        infos = mirror.batch_infos(gw.engine, kind)
        key.append((kind, len(infos), infos[-1].seq if infos else 0))
        synced.append(mirror.load_state(gw.engine, cipher, kind).updated_at)
    oldest = None if any(s is None for s in synced) else min(s for s in synced if s is not None)
    return MirrorVersion(tuple(key), oldest, tuple((k, n) for k, n, _seq in key))


@service(Action.APPOINTMENT_READ, AuditAction.READ, "schedule_mirror", "scheduling")
def load_schedule_frame(gw: Gateway) -> pd.DataFrame:
    """Mirrored appointments (deleted ones left out) as a frame. No EHR call."""
    rows = mirror.load_rows(gw.engine, _cipher(gw), "appointment")
    return frames.appointments_frame(rows)


@dataclass(frozen=True)
class ScheduleFrames:
    """Mirrored appointments and their status history, for scheduling analytics."""

    appointments: pd.DataFrame
    transitions: pd.DataFrame


@service(Action.SCHEDULE_ANALYTICS, AuditAction.READ, "schedule_mirror", "scheduling")
def load_schedule_analytics(gw: Gateway) -> ScheduleFrames:
    """Appointments and status transitions from the mirror (admin and front desk). No EHR call."""
    rows = mirror.load_rows(gw.engine, _cipher(gw), "appointment")
    return ScheduleFrames(frames.appointments_frame(rows), frames.status_transitions_frame(rows))
