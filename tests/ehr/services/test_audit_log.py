"""Audit-log services: search, integrity check and export, each itself audited (AU-05)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from ehr.errors import AuditWriteError, ValidationFailedError
from ehr.policy import PermissionDenied, Principal
from ehr.services import audit_log
from ehr.services.audit_log import AuditFilter, ExportPurpose, PurposeCategory
from ehr.services.gateway import Caller, Gateway
from storage import audit, audit_report
from storage.audit import AuditAction, AuditRecord

KEY = b"k" * 32
START = datetime(2026, 11, 1, 9, tzinfo=UTC)
STATEMENT = "Quarterly review requested by the compliance officer"


def gateway(engine: Engine, role: str = "admin") -> Gateway:
    principal = Principal(user_id=1, username=f"{role}-user", role=role, is_active=True)
    caller = Caller(principal, session_ref="s1", client_ip="10.0.0.9")
    return Gateway(caller, engine, KEY, backend=lambda: None)  # type: ignore[arg-type,return-value]


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    """Ten rows a day apart: reads of patients 1 and 2 by two users, and one export."""
    for day in range(10):
        record = AuditRecord(
            action=AuditAction.EXPORT if day == 9 else AuditAction.READ,
            username="ann" if day % 2 else "bob",
            resource_type="patient",
            resource_id=str(day % 2 + 1),
            patient_id=str(day % 2 + 1),
        )
        audit.append(sqlite_engine, KEY, record, clock=lambda d=day: START + timedelta(days=d))
    return sqlite_engine


def viewer_rows(engine: Engine) -> list[audit.AuditEvent]:
    return [r for r in audit_report.query(engine) if r.resource_type == "audit_log"]


def test_search_filters_sort_and_is_itself_audited(engine: Engine) -> None:
    gw = gateway(engine)
    found = audit_log.search_audit_log(
        gw, AuditFilter(username="ann", patient_id="2"), order_by="ts_utc", descending=False
    )
    assert [e.username for e in found.items] == ["ann"] * 5
    assert [e.seq for e in found.items] == sorted(e.seq for e in found.items)
    assert not found.truncated
    (row,) = viewer_rows(engine)
    assert (row.action, row.outcome, row.username) == ("READ", "SUCCESS", "admin-user")
    assert row.patient_id == "2"  # whose access history was looked at
    details = json.loads(row.details)
    assert details["filters"] == ["patient_id", "username"]
    assert details["count"] == 5


def test_a_date_range_is_half_open_and_a_short_page_says_truncated(engine: Engine) -> None:
    gw = gateway(engine)
    span = AuditFilter(since=START + timedelta(days=2), until=START + timedelta(days=5))
    page = audit_log.search_audit_log(gw, span)
    assert len(page.items) == 3
    page = audit_log.search_audit_log(gw, span, limit=2)
    assert len(page.items) == 2
    assert page.truncated


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        (AuditFilter(since=START, until=START - timedelta(days=1)), "until"),
        (AuditFilter(since=START, until=START + timedelta(days=400)), "until"),
        (AuditFilter(since=datetime(2026, 1, 1)), "since"),  # naive
        (AuditFilter(action="SELECT"), "action"),
        (AuditFilter(patient_id="1\u202e2"), "patient_id"),
        (AuditFilter(username="x" * 65), "username"),
    ],
)
def test_bad_filters_are_refused_with_the_field_named(engine, filters, field) -> None:
    gw = gateway(engine)
    with pytest.raises(ValidationFailedError) as refused:
        audit_log.search_audit_log(gw, filters)
    assert field in refused.value.field_errors
    (row,) = viewer_rows(engine)
    assert row.outcome == "ERROR"


@pytest.mark.parametrize("role", ["clinician", "front_desk", "billing"])
def test_only_admins_may_read_check_or_export_the_log(engine, tmp_path, role) -> None:
    gw = gateway(engine, role)
    with pytest.raises(PermissionDenied):
        audit_log.search_audit_log(gw, AuditFilter())
    with pytest.raises(PermissionDenied):
        audit_log.verify_audit_chain(gw, tmp_path)
    with pytest.raises(PermissionDenied):
        audit_log.export_audit_csv(
            gw,
            START,
            START + timedelta(days=1),
            ExportPurpose(PurposeCategory.LEGAL_REQUEST, STATEMENT),
        )
    denied = [(r.action, r.outcome) for r in viewer_rows(engine)]
    assert denied == [("READ", "DENIED"), ("AUDIT_VERIFY", "DENIED"), ("EXPORT", "DENIED")]
    assert not (tmp_path / "audit-anchors.jsonl").exists()


def test_verify_reports_ok_writes_an_anchor_and_is_audited(engine: Engine, tmp_path: Path) -> None:
    check = audit_log.verify_audit_chain(gateway(engine), tmp_path)
    assert check.ok
    assert (check.checked, check.head_seq, check.first_bad_seq) == (10, 10, None)
    assert (tmp_path / "audit-anchors.jsonl").exists()
    (row,) = [r for r in viewer_rows(engine) if r.action == "AUDIT_VERIFY"]
    assert json.loads(row.details)["ok"] is True
    assert audit_log.verify_audit_chain(gateway(engine), tmp_path).anchored


def test_verify_names_the_first_edited_row(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:  # what someone holding the database file could do
        conn.execute(text("DROP TRIGGER audit_no_update"))
        conn.execute(text("UPDATE audit_event SET username = 'eve' WHERE seq = 4"))
    check = audit_log.verify_audit_chain(gateway(engine), tmp_path)
    assert not check.ok
    assert (check.first_bad_seq, check.kind) == (4, "edited")
    row = [r for r in viewer_rows(engine) if r.action == "AUDIT_VERIFY"][-1]
    assert (row.outcome, json.loads(row.details)["first_bad_seq"]) == ("ERROR", 4)
    assert not (tmp_path / "audit-anchors.jsonl").exists()  # a broken chain is never anchored


def test_a_damaged_anchor_file_fails_the_check(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "audit-anchors.jsonl").write_text("not json\n")
    check = audit_log.verify_audit_chain(gateway(engine), tmp_path)
    assert not check.ok
    assert check.kind == "anchor"


def test_export_needs_a_purpose_of_ten_characters(engine: Engine) -> None:
    gw = gateway(engine)
    with pytest.raises(ValidationFailedError) as refused:
        audit_log.export_audit_csv(
            gw,
            START,
            START + timedelta(days=30),
            ExportPurpose(PurposeCategory.LEGAL_REQUEST, " short   "),
        )
    assert "statement" in refused.value.field_errors
    (row,) = viewer_rows(engine)
    assert (row.action, row.outcome) == ("EXPORT", "ERROR")


def test_export_writes_the_range_as_csv_and_records_category_not_text(engine: Engine) -> None:
    gw = gateway(engine)
    purpose = ExportPurpose(PurposeCategory.COMPLIANCE_REVIEW, STATEMENT)
    export = audit_log.export_audit_csv(gw, START, START + timedelta(days=3), purpose)
    parsed = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["seq"] for r in parsed] == ["1", "2", "3"]
    assert "row_mac" in parsed[0]
    assert export.rows == 3
    assert export.file_name.endswith(".csv")
    (row,) = viewer_rows(engine)
    details = json.loads(row.details)
    assert (row.action, row.outcome) == ("EXPORT", "SUCCESS")
    assert details["purpose_category"] == "compliance_review"
    assert details["purpose_chars"] == len(STATEMENT)
    assert details["purpose_digest"] == purpose.digest(KEY)
    assert details["rows"] == 3
    assert "compliance officer" not in row.details


def test_export_returns_nothing_when_its_audit_row_cannot_be_written(engine: Engine) -> None:
    gw = gateway(engine)

    def unwritable(record: AuditRecord) -> None:
        raise AuditWriteError()

    gw.record = unwritable  # type: ignore[method-assign]
    purpose = ExportPurpose(PurposeCategory.SECURITY_INCIDENT, STATEMENT)
    with pytest.raises(AuditWriteError):
        audit_log.export_audit_csv(gw, START, START + timedelta(days=3), purpose)
