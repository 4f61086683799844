"""Export of billing line items (the Billing page's filtered detail) with a stated purpose.

An export is a disclosure: it leaves the app's access controls. So, like the audit-log export
(``ehr.services.audit_log``), it needs a stated purpose, a category and a sentence of at least
``MIN_PURPOSE_CHARS``, and writes an ``EXPORT`` audit row before the file is handed over; if
that row cannot be written, nothing is returned. The row keeps the category, the row count,
the date range and the names of the filters used, the sentence's length and a keyed digest of
it (HMAC with the audit key), never the sentence itself, which could hold PHI.

Permission follows ``authorize_export``: the caller needs ``EXPORT`` and ``BILLING_READ``
(a role exports only what it may read). The file holds the columns of ``EXPORT_COLUMNS``
only: ids, dates, codes, statuses and amounts, no names; a frame with any other column is
refused, so a page cannot widen an export by accident.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Final

import pandas as pd

from ehr.analytics.billing_data import BillingFilters
from ehr.disclosure import (
    MAX_PURPOSE_CHARS,
    MIN_PURPOSE_CHARS,
    statement_digest,
    statement_problem,
)
from ehr.errors import ValidationFailedError
from ehr.policy import Action, PermissionDenied, authorize_export
from ehr.services.gateway import Gateway, self_audited
from ehr.transport import new_correlation_id
from storage.audit import AuditAction, AuditOutcome, AuditRecord

__all__ = [
    "BILLING_PURPOSE_CATEGORIES",
    "EXPORT_COLUMNS",
    "MAX_EXPORT_ROWS",
    "MAX_PURPOSE_CHARS",
    "MIN_PURPOSE_CHARS",
    "MONEY_COLUMNS",
    "BillingCsv",
    "BillingExportPurpose",
    "BillingPurposeCategory",
    "export_billing_detail",
]

RESOURCE_TYPE: Final = "billing_detail"
DATA_CATEGORY: Final = "billing"
# A year of a busy practice's line items fits; more is a data-warehouse job, not a download.
MAX_EXPORT_ROWS: Final = 200_000

# What a billing export may contain, in file order. Money columns are integer cents in the
# frame and dollars with two decimals in the file.
EXPORT_COLUMNS: Final = (
    "line_item_id",
    "visit_id",
    "service_date",
    "provider_id",
    "office_id",
    "payer",
    "cpt_code",
    "units",
    "billed",
    "paid",
    "insurer_balance",
    "patient_balance",
    "claim_status",
    "denied",
    "ar_bucket",
)
MONEY_COLUMNS: Final = frozenset({"billed", "paid", "insurer_balance", "patient_balance"})
_CENTS: Final = 100


class BillingPurposeCategory(StrEnum):
    """Why billing detail is exported; the category is what the audit row records."""

    CLAIM_FOLLOW_UP = "claim_follow_up"
    PAYMENT_RECONCILIATION = "payment_reconciliation"
    PRACTICE_REPORTING = "practice_reporting"
    COMPLIANCE_REVIEW = "compliance_review"
    EXTERNAL_AUDIT = "external_audit"


BILLING_PURPOSE_CATEGORIES: Final[Mapping[BillingPurposeCategory, str]] = {
    BillingPurposeCategory.CLAIM_FOLLOW_UP: "Claim follow-up or payer appeal",
    BillingPurposeCategory.PAYMENT_RECONCILIATION: "Payment reconciliation",
    BillingPurposeCategory.PRACTICE_REPORTING: "Internal practice reporting",
    BillingPurposeCategory.COMPLIANCE_REVIEW: "Compliance review",
    BillingPurposeCategory.EXTERNAL_AUDIT: "External audit",
}


@dataclass(frozen=True)
class BillingExportPurpose:
    """Why an export is made: a category and a sentence (the sentence is never stored)."""

    category: BillingPurposeCategory | None
    statement: str

    def problems(self) -> dict[str, str]:
        """Field name -> message (empty when the purpose is acceptable)."""
        found: dict[str, str] = {}
        if self.category not in BILLING_PURPOSE_CATEGORIES:
            found["category"] = "Choose a purpose."
        problem = statement_problem(self.statement)
        if problem is not None:
            found["statement"] = problem
        return found

    def digest(self, key: bytes) -> str:
        """A keyed digest of the statement, to match a sentence shown later against the log."""
        return statement_digest(self.statement, key)


@dataclass(frozen=True)
class BillingCsv:
    """An export ready for download."""

    text: str
    rows: int
    file_name: str


def _record(gw: Gateway, outcome: AuditOutcome, cid: str, **details: Any) -> None:
    principal = gw.caller.principal
    gw.record(
        AuditRecord(
            action=AuditAction.EXPORT,
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


def _frame_problems(detail: pd.DataFrame) -> dict[str, str]:
    extra = sorted(set(map(str, detail.columns)) - set(EXPORT_COLUMNS))
    missing = [c for c in EXPORT_COLUMNS if c not in detail.columns]
    if extra or missing:
        return {"detail": "The export holds only the billing detail columns."}
    if len(detail) > MAX_EXPORT_ROWS:
        return {"detail": f"Narrow the filters: an export holds at most {MAX_EXPORT_ROWS} rows."}
    return {}


def _csv(detail: pd.DataFrame) -> str:
    out = detail.loc[:, list(EXPORT_COLUMNS)].copy()
    for column in MONEY_COLUMNS:
        cents = pd.to_numeric(out[column], errors="coerce").astype("Float64")
        out[column] = (cents / _CENTS).map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    out["service_date"] = pd.to_datetime(out["service_date"]).dt.strftime("%Y-%m-%d")
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    return buffer.getvalue()


def _filters_used(filters: BillingFilters) -> list[str]:
    return sorted(column for column, wanted in filters.dimensions() if wanted)


@self_audited
def export_billing_detail(
    gw: Gateway, detail: pd.DataFrame, filters: BillingFilters, purpose: BillingExportPurpose
) -> BillingCsv:
    """The billing detail ``detail`` (columns ``EXPORT_COLUMNS``) as CSV, with a purpose.

    ``filters`` are those the detail was selected with (recorded by name and date range).
    Writes one ``EXPORT`` row: DENIED (then ``PermissionDenied``) without ``EXPORT`` and
    ``BILLING_READ``; ERROR (then ``ValidationFailedError`` with ``details["fields"]``) for a
    missing or short purpose or a frame with other columns or too many rows; SUCCESS with the
    category, row count, range, filter names and the statement's length and digest before
    the CSV is returned (``AuditWriteError`` and no CSV when it cannot be written).
    """
    cid = new_correlation_id()
    try:
        authorize_export(gw.caller.principal, Action.BILLING_READ, RESOURCE_TYPE)
    except PermissionDenied as denied:
        denied.correlation_id = cid
        _record(gw, AuditOutcome.DENIED, cid, permission=Action.EXPORT.value)
        raise
    problems = {**purpose.problems(), **_frame_problems(detail)}
    if problems:
        _record(gw, AuditOutcome.ERROR, cid, error="validation_failed", fields=sorted(problems))
        raise ValidationFailedError(
            "Check the export form.",
            details={"fields": {name: [message] for name, message in problems.items()}},
        )
    text = _csv(detail)
    # Raises AuditWriteError before the CSV leaves when the row cannot be written: fail closed.
    _record(
        gw,
        AuditOutcome.SUCCESS,
        cid,
        rows=len(detail),
        since=filters.start.isoformat(),
        until=filters.end.isoformat(),
        filters=_filters_used(filters),
        purpose_category=str(purpose.category),
        purpose_chars=len(purpose.statement.strip()),
        purpose_digest=purpose.digest(gw.audit_key),
    )
    return BillingCsv(text, len(detail), _file_name(filters.start, filters.end))


def _file_name(start: date, end: date) -> str:
    return f"billing-detail_{start:%Y%m%d}_{end:%Y%m%d}.csv"
