"""The Billing page's own services: the mirror version it keys its session data on, and the
purpose-stated export of line items (authorize_export semantics, one EXPORT row each call)."""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from ehr.analytics.billing_data import BillingFilters
from ehr.errors import ConfigurationError, ValidationFailedError
from ehr.policy import PermissionDenied, Principal
from ehr.services import Caller, Gateway
from ehr.services import billing_export as export
from ehr.services import mirror as mirror_service
from storage import mirror
from storage.audit import AuditEvent
from storage.crypto import Cipher

KEY = b"k" * 32
FILTERS = BillingFilters(dt.date(2026, 1, 1), dt.date(2026, 1, 31), payers=frozenset({"Aetna"}))
STATEMENT = "Reconcile January remittances from Aetna"
NOW = dt.datetime(2026, 2, 1, 12, tzinfo=dt.UTC)


def _gateway(engine: Engine, role: str, cipher: Cipher | None = None) -> Gateway:
    principal = Principal(user_id=7, username=f"{role}-user", role=role, is_active=True)

    def no_backend():  # these services never reach the EHR
        raise AssertionError("no EHR call expected")

    return Gateway(Caller(principal), engine, KEY, backend=no_backend, cipher=cipher)


def _rows(engine: Engine) -> list[dict[str, object]]:
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        found = conn.execute(sa.select(table).order_by(table.c.seq)).mappings().all()
    return [dict(r) for r in found]


def _detail(rows: int = 2) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "line_item_id": [1, 2],
            "visit_id": ["A1", None],
            "service_date": pd.to_datetime(["2026-01-03", "2026-01-04"]),
            "provider_id": pd.array([120001, None], dtype="Int64"),
            "office_id": pd.array([10, 10], dtype="Int64"),
            "payer": ["Aetna", "Aetna"],
            "cpt_code": ["99213", "36415"],
            "units": [1.0, 2.0],
            "billed": pd.array([15000, None], dtype="Int64"),
            "paid": pd.array([9000, 0], dtype="Int64"),
            "insurer_balance": pd.array([-500, 2000], dtype="Int64"),
            "patient_balance": pd.array([2000, 0], dtype="Int64"),
            "claim_status": ["paid_in_full", "era_denied"],
            "denied": [False, True],
            "ar_bucket": ["31-60", None],
        }
    )
    return frame.head(rows)


def _purpose(statement: str = STATEMENT) -> export.BillingExportPurpose:
    return export.BillingExportPurpose(
        export.BillingPurposeCategory.PAYMENT_RECONCILIATION, statement
    )


# --- export ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "billing"])
def test_an_export_is_csv_of_the_allowed_columns_and_an_audited_disclosure(
    sqlite_engine: Engine, role: str
) -> None:
    csv = export.export_billing_detail(
        _gateway(sqlite_engine, role), _detail(), FILTERS, _purpose()
    )

    table = pd.read_csv(io.StringIO(csv.text), dtype=str, keep_default_na=False)
    assert list(table.columns) == list(export.EXPORT_COLUMNS)
    assert table.loc[0, "billed"] == "150.00"  # cents become dollars
    assert table.loc[1, "billed"] == ""  # a missing amount stays missing, never 0
    assert table.loc[0, "insurer_balance"] == "-5.00"
    assert table.loc[0, "service_date"] == "2026-01-03"
    assert csv.rows == 2
    assert csv.file_name == "billing-detail_20260101_20260131.csv"
    (row,) = _rows(sqlite_engine)
    details = json.loads(str(row["details"]))
    assert (row["action"], row["outcome"], row["resource_type"], row["role"]) == (
        "EXPORT",
        "SUCCESS",
        "billing_detail",
        role,
    )
    assert details["rows"] == 2
    assert details["purpose_category"] == "payment_reconciliation"
    assert details["filters"] == ["payer"]
    assert (details["since"], details["until"]) == ("2026-01-01", "2026-01-31")
    assert details["purpose_digest"] == _purpose().digest(KEY)
    assert details["purpose_chars"] == len(STATEMENT)
    assert STATEMENT not in str(row["details"])
    assert "Aetna" not in str(row["details"])  # filter names, not values


@pytest.mark.parametrize("role", ["clinician", "front_desk"])
def test_roles_that_cannot_read_billing_cannot_export_it(sqlite_engine: Engine, role: str) -> None:
    with pytest.raises(PermissionDenied):
        export.export_billing_detail(_gateway(sqlite_engine, role), _detail(), FILTERS, _purpose())
    (row,) = _rows(sqlite_engine)
    assert (row["action"], row["outcome"]) == ("EXPORT", "DENIED")


@pytest.mark.parametrize(
    ("purpose", "detail", "fields"),
    [
        (export.BillingExportPurpose(None, STATEMENT), _detail(), ["category"]),
        (_purpose("too short"), _detail(), ["statement"]),
        (_purpose("x" * 501), _detail(), ["statement"]),
        (_purpose("Reconcile\u202e remittances"), _detail(), ["statement"]),
        (_purpose(), _detail().assign(patient_name="Jane Roe"), ["detail"]),
        (_purpose(), _detail().drop(columns=["payer"]), ["detail"]),
    ],
)
def test_a_bad_purpose_or_frame_exports_nothing_and_is_recorded(
    sqlite_engine: Engine, purpose, detail, fields
) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        export.export_billing_detail(_gateway(sqlite_engine, "billing"), detail, FILTERS, purpose)
    assert sorted(raised.value.details["fields"]) == fields
    (row,) = _rows(sqlite_engine)
    assert (row["action"], row["outcome"]) == ("EXPORT", "ERROR")
    assert "Jane" not in str(row["details"])


def test_the_digest_ignores_spacing_but_not_words() -> None:
    spaced = _purpose("  Reconcile   January remittances\nfrom Aetna ")
    assert spaced.digest(KEY) == _purpose().digest(KEY)
    assert _purpose("Reconcile February remittances from Aetna").digest(KEY) != spaced.digest(KEY)


# --- mirror version -------------------------------------------------------------------------


def test_the_version_is_empty_then_moves_with_each_stored_batch(sqlite_engine: Engine) -> None:
    cipher = Cipher([Fernet.generate_key()])
    gw = _gateway(sqlite_engine, "billing", cipher)
    empty = mirror_service.billing_mirror_version(gw)
    assert empty.is_empty()
    assert empty.synced_at is None

    for kind in mirror.KINDS:
        state = mirror.load_state(sqlite_engine, cipher, kind)
        mirror.commit_page(sqlite_engine, cipher, state, rows=[{"id": 1}], now=NOW)
    first = mirror_service.billing_mirror_version(gw)
    again = mirror_service.billing_mirror_version(gw)
    state = mirror.load_state(sqlite_engine, cipher, "line_item")
    mirror.commit_page(sqlite_engine, cipher, state, rows=[{"id": 2}], now=NOW)
    moved = mirror_service.billing_mirror_version(gw)

    assert not first.is_empty()
    assert first.synced_at == NOW
    assert first.key == again.key != moved.key
    assert [r["resource_type"] for r in _rows(sqlite_engine)] == ["billing_mirror_version"] * 4


def test_the_version_is_for_billing_roles_and_needs_the_cipher(sqlite_engine: Engine) -> None:
    with pytest.raises(PermissionDenied):
        mirror_service.billing_mirror_version(_gateway(sqlite_engine, "front_desk", None))
    with pytest.raises(ConfigurationError):
        mirror_service.billing_mirror_version(_gateway(sqlite_engine, "billing", None))
    assert [r["outcome"] for r in _rows(sqlite_engine)] == ["DENIED", "ERROR"]
