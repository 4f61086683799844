"""The audit log as Settings shows it: search, integrity check and CSV export (admins only).

Reading the log is itself audited (AU-05): ``search_audit_log`` is a ``@service`` READ of
``audit_log`` (the row names which filters were used, and the patient id when the search was
for one patient's access history); ``verify_audit_chain`` writes ``AUDIT_VERIFY`` with the
result; ``export_audit_csv`` writes ``EXPORT``. Rows are never returned or exported before
their own audit row is written (fail closed).

**Export purpose.** An export needs a stated purpose: a category from ``PURPOSE_CATEGORIES``
and a sentence of at least ``MIN_PURPOSE_CHARS`` characters. The sentence is *not* stored: an
admin answering "patient Jane Roe asked who opened her chart" would put PHI into the one
table that cannot be edited or purged. The audit row keeps the category, the sentence's length
and a keyed digest of it (HMAC with the audit key), so an investigator shown the sentence
later can confirm it is the one given, while the log itself holds no free text.

The CSV covers every row of the chosen date range in ``seq`` order, every column and MAC
included (``storage.audit_report.export_csv``), so an auditor holding the key can re-check the
slice; the viewer's other filters narrow the screen, not the export.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from ehr.disclosure import (
    MAX_PURPOSE_CHARS,
    MIN_PURPOSE_CHARS,
    has_control,
    statement_digest,
    statement_problem,
)
from ehr.errors import AuditWriteError, ValidationFailedError
from ehr.policy import Action, PermissionDenied, authorize
from ehr.services.gateway import Gateway, self_audited, service
from ehr.transport import new_correlation_id
from storage import audit_chain, audit_report
from storage.audit import AuditAction, AuditEvent, AuditOutcome, AuditRecord

__all__ = [
    "ACTIONS",
    "MAX_PURPOSE_CHARS",
    "MAX_RANGE_DAYS",
    "MIN_PURPOSE_CHARS",
    "OUTCOMES",
    "PAGE_ROWS",
    "PURPOSE_CATEGORIES",
    "SORT_COLUMNS",
    "AuditCsv",
    "AuditEntry",
    "AuditFilter",
    "AuditPage",
    "ChainCheck",
    "ExportPurpose",
    "PurposeCategory",
    "export_audit_csv",
    "search_audit_log",
    "verify_audit_chain",
]

log = logging.getLogger(__name__)

RESOURCE_TYPE: Final = "audit_log"
DATA_CATEGORY: Final = "audit"
ACTIONS: Final = tuple(a.value for a in AuditAction)
OUTCOMES: Final = tuple(o.value for o in AuditOutcome)
SORT_COLUMNS: Final = audit_report.SORTABLE_COLUMNS
# One screenful that a person can scan; narrow the filters for more (the page says so).
PAGE_ROWS: Final = 500
# A report or export spans at most a year (SECURITY.md 3.1): bounded work for the server.
MAX_RANGE_DAYS: Final = 366
# Filter text fields are ids and usernames, never prose.
MAX_FILTER_CHARS: Final = 64


class PurposeCategory(StrEnum):
    """Why an audit export is made; the category is what the audit row records."""

    COMPLIANCE_REVIEW = "compliance_review"
    SECURITY_INCIDENT = "security_incident"
    ACCESS_REPORT_REQUEST = "access_report_request"  # a patient's accounting of disclosures
    LEGAL_REQUEST = "legal_request"
    EXTERNAL_AUDIT = "external_audit"


PURPOSE_CATEGORIES: Final[Mapping[PurposeCategory, str]] = {
    PurposeCategory.COMPLIANCE_REVIEW: "Routine compliance review",
    PurposeCategory.SECURITY_INCIDENT: "Security incident investigation",
    PurposeCategory.ACCESS_REPORT_REQUEST: "Patient request for an access report",
    PurposeCategory.LEGAL_REQUEST: "Legal or regulatory request",
    PurposeCategory.EXTERNAL_AUDIT: "External audit",
}


@dataclass(frozen=True)
class AuditFilter:
    """What to look for: a half-open ``[since, until)`` UTC range plus exact-match fields."""

    since: datetime | None = None
    until: datetime | None = None
    username: str | None = None
    action: str | None = None
    outcome: str | None = None
    resource_id: str | None = None
    patient_id: str | None = None

    def problems(self) -> dict[str, str]:
        """Field name -> message for anything unusable (empty when the filter is valid)."""
        found: dict[str, str] = {}
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                found[name] = "Dates must carry a time zone."
        if not found and self.since and self.until:
            if self.until <= self.since:
                found["until"] = "The end date must not be before the start date."
            elif self.until - self.since > timedelta(days=MAX_RANGE_DAYS):
                found["until"] = f"Choose a range of at most {MAX_RANGE_DAYS} days."
        if self.action is not None and self.action not in ACTIONS:
            found["action"] = "Unknown action."
        if self.outcome is not None and self.outcome not in OUTCOMES:
            found["outcome"] = "Unknown outcome."
        for name in ("username", "resource_id", "patient_id"):
            value = getattr(self, name)
            if value is None:
                continue
            if not value or len(value) > MAX_FILTER_CHARS or has_control(value):
                found[name] = f"Use 1 to {MAX_FILTER_CHARS} characters, no control characters."
        return found

    def used(self) -> list[str]:
        """The names of the filters that are set (for the audit row: names, not values)."""
        return sorted(name for name, value in vars(self).items() if value is not None)


@dataclass(frozen=True)
class AuditEntry:
    """One audit row for the viewer (no MACs: they mean nothing on screen)."""

    seq: int
    ts_utc: datetime
    username: str | None
    role: str | None
    action: str
    outcome: str
    resource_type: str | None
    resource_id: str | None
    patient_id: str | None
    data_category: str | None
    client_ip: str | None
    correlation_id: str | None
    break_glass: bool
    details: str

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEntry:
        """The viewer's copy of a stored row."""
        return cls(
            seq=row.seq,
            ts_utc=row.ts_utc,
            username=row.username,
            role=row.role,
            action=row.action,
            outcome=row.outcome,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            patient_id=row.patient_id,
            data_category=row.data_category,
            client_ip=row.client_ip,
            correlation_id=row.correlation_id,
            break_glass=row.break_glass,
            details=row.details,
        )


@dataclass(frozen=True)
class AuditPage:
    """One page of search results; ``truncated`` when more rows matched than were returned."""

    items: tuple[AuditEntry, ...]
    truncated: bool


def _invalid(problems: Mapping[str, str]) -> ValidationFailedError:
    return ValidationFailedError(
        "Check the highlighted filters.",
        details={"fields": {name: [message] for name, message in problems.items()}},
    )


def _describe_search(arguments: Mapping[str, Any]) -> dict[str, Any]:
    filters = arguments.get("filters")
    used = filters.used() if isinstance(filters, AuditFilter) else []
    return {"filters": used, "order_by": str(arguments.get("order_by"))}


@service(
    Action.ADMIN,
    AuditAction.READ,
    RESOURCE_TYPE,
    DATA_CATEGORY,
    patient_arg="filters.patient_id",
    describe=_describe_search,
)
def search_audit_log(
    gw: Gateway,
    filters: AuditFilter,
    *,
    order_by: str = "seq",
    descending: bool = True,
    limit: int = PAGE_ROWS,
) -> AuditPage:
    """Audit rows matching ``filters``, sorted by ``order_by`` (one of ``SORT_COLUMNS``).

    Returns at most ``limit`` rows, ``truncated`` when there were more. Raises
    ``ValidationFailedError`` (``details["fields"]``) for a filter failing
    ``AuditFilter.problems`` or an unknown sort column.
    """
    problems = filters.problems()
    if order_by not in SORT_COLUMNS:
        problems["order_by"] = "Unknown column."
    if problems:
        raise _invalid(problems)
    wanted = max(0, min(limit, PAGE_ROWS))
    rows = audit_report.query(
        gw.engine,
        since=filters.since,
        until=filters.until,
        user=filters.username,
        action=filters.action,
        outcome=filters.outcome,
        resource_id=filters.resource_id,
        patient_id=filters.patient_id,
        order_by=order_by,
        descending=descending,
        limit=wanted + 1,  # one more than shown tells whether the page is complete
    )
    return AuditPage(tuple(AuditEntry.of(r) for r in rows[:wanted]), truncated=len(rows) > wanted)


# ----------------------------------------------------------------------------- self-audited


def _record(
    gw: Gateway, action: AuditAction, outcome: AuditOutcome, cid: str, **details: Any
) -> None:
    principal = gw.caller.principal
    gw.record(
        AuditRecord(
            action=action,
            outcome=outcome,
            user_id=principal.user_id,
            username=principal.username,
            role=principal.role,
            resource_type=RESOURCE_TYPE,
            data_category=DATA_CATEGORY,
            client_ip=gw.caller.client_ip,
            correlation_id=cid,
            details=details,
        )
    )


def _admin_only(gw: Gateway, action: AuditAction) -> str:
    """Refuse non-admins with a DENIED row; returns this call's correlation id."""
    cid = new_correlation_id()
    try:
        authorize(gw.caller.principal, Action.ADMIN, RESOURCE_TYPE)
    except PermissionDenied as denied:
        denied.correlation_id = cid
        _record(gw, action, AuditOutcome.DENIED, cid, permission=Action.ADMIN.value)
        raise
    return cid


@dataclass(frozen=True)
class ChainCheck:
    """The integrity check as Settings shows it: ok, or the first bad row and what is wrong."""

    ok: bool
    checked: int
    head_seq: int
    first_bad_seq: int | None
    kind: str | None
    message: str
    problem_count: int
    anchored: bool
    checked_at: datetime


@self_audited
def verify_audit_chain(gw: Gateway, anchor_dir: Path, *, now: datetime | None = None) -> ChainCheck:
    """Walk the whole chain (``storage.audit_chain.verify``) against the latest anchor.

    ``anchor_dir`` is the data directory holding the anchor file; after a clean check a new
    anchor is appended there, so a later cut-off of the newest rows is caught. A damaged
    anchor file is reported as a failed check (kind ``anchor``), never skipped. Writes
    ``AUDIT_VERIFY`` with the result; raises ``PermissionDenied`` for non-admins.
    """
    cid = _admin_only(gw, AuditAction.AUDIT_VERIFY)
    checked_at = now or datetime.now(UTC)
    path = audit_chain.default_anchor_path(anchor_dir)
    try:
        anchor = audit_chain.read_latest_anchor(path)
        result = audit_chain.verify(gw.engine, gw.audit_key, anchor=anchor)
    except audit_chain.AuditChainError as exc:
        check = ChainCheck(False, 0, 0, None, "anchor", str(exc), 1, False, checked_at)
    else:
        check = ChainCheck(
            ok=result.ok,
            checked=result.checked,
            head_seq=result.head_seq,
            first_bad_seq=result.first_bad_seq,
            kind=result.kind,
            message=result.message,
            problem_count=result.problem_count,
            anchored=anchor is not None,
            checked_at=checked_at,
        )
    _record(
        gw,
        AuditAction.AUDIT_VERIFY,
        AuditOutcome.SUCCESS if check.ok else AuditOutcome.ERROR,
        cid,
        ok=check.ok,
        checked=check.checked,
        first_bad_seq=check.first_bad_seq,
        kind=check.kind,
    )
    if check.ok:
        try:
            audit_chain.write_anchor(path, audit_chain.anchor(gw.engine, gw.audit_key))
        except (OSError, audit_chain.AuditChainError) as exc:  # the check stands; log the gap
            log.warning("audit anchor not written after a clean check (%s)", type(exc).__name__)
    return check


@dataclass(frozen=True)
class ExportPurpose:
    """Why an export is made: a category and a sentence (the sentence is never stored)."""

    category: PurposeCategory
    statement: str

    def problems(self) -> dict[str, str]:
        """Field name -> message (empty when the purpose is acceptable)."""
        found: dict[str, str] = {}
        if self.category not in PURPOSE_CATEGORIES:
            found["category"] = "Choose a purpose."
        problem = statement_problem(self.statement)
        if problem is not None:
            found["statement"] = problem
        return found

    def digest(self, key: bytes) -> str:
        """A keyed digest of the statement, to match a sentence shown later against the log."""
        return statement_digest(self.statement, key)


@dataclass(frozen=True)
class AuditCsv:
    """An export ready for download."""

    text: str
    rows: int
    file_name: str


@self_audited
def export_audit_csv(
    gw: Gateway, since: datetime, until: datetime, purpose: ExportPurpose
) -> AuditCsv:
    """Every audit row in ``[since, until)`` as CSV, with a stated purpose.

    The ``EXPORT`` row (category, statement length and digest, row count, range) is written
    before the CSV is returned; if it cannot be written, nothing is returned. Raises
    ``ValidationFailedError`` for a missing or short purpose or a bad range (an ERROR row is
    written), ``PermissionDenied`` for non-admins.
    """
    cid = _admin_only(gw, AuditAction.EXPORT)
    problems = {**AuditFilter(since=since, until=until).problems(), **purpose.problems()}
    if problems:
        _record(gw, AuditAction.EXPORT, AuditOutcome.ERROR, cid, error="validation_failed")
        raise _invalid(problems)
    buffer = io.StringIO()
    rows = audit_report.export_csv(gw.engine, buffer, since, until)
    try:
        _record(
            gw,
            AuditAction.EXPORT,
            AuditOutcome.SUCCESS,
            cid,
            rows=rows,
            since=since.astimezone(UTC).isoformat(),
            until=until.astimezone(UTC).isoformat(),
            purpose_category=purpose.category.value,
            purpose_chars=len(purpose.statement.strip()),
            purpose_digest=purpose.digest(gw.audit_key),
        )
    except AuditWriteError:
        buffer.close()  # fail closed: no audit row, no export
        raise
    name = (
        f"audit-log_{since.astimezone(UTC):%Y%m%dT%H%MZ}_{until.astimezone(UTC):%Y%m%dT%H%MZ}.csv"
    )
    return AuditCsv(buffer.getvalue(), rows, name)
