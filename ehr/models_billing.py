"""Vendor-neutral billing models: line items, insurance transactions, patient payments, payers.

Same conventions as ``ehr.models``. All money is ``Decimal`` (None when upstream sent an
unreadable amount, which is counted); negative amounts are valid adjustments and refunds.
Claim status lives in ``ehr.models.ClaimStatus`` because appointments carry it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from ehr.models import ClaimStatus, Other

__all__ = ["Insurance", "LineItem", "PatientPayment", "Transaction"]


@dataclass(frozen=True, slots=True)
class LineItem:
    """One billed service (a CPT/HCPCS code on a visit) with its charges, payments and balances."""

    id: int
    appointment_id: str | None
    patient_id: int | None = None
    doctor_id: int | None = None
    code: str | None = None
    procedure_type: str | None = None
    description: str | None = None
    quantity: Decimal | None = None
    modifiers: tuple[str, ...] = ()
    diagnosis_pointers: tuple[str, ...] = ()
    price: Decimal | None = None
    billed: Decimal | None = None
    allowed: Decimal | None = None
    expected_reimbursement: Decimal | None = None
    adjustment: Decimal | None = None
    ins1_paid: Decimal | None = None
    ins2_paid: Decimal | None = None
    ins3_paid: Decimal | None = None
    ins_total: Decimal | None = None
    pt_paid: Decimal | None = None
    paid_total: Decimal | None = None
    balance_ins: Decimal | None = None
    balance_pt: Decimal | None = None
    balance_total: Decimal | None = None
    claim_status: ClaimStatus | Other | None = None
    insurance_status: str | None = None
    denied: bool = False
    posted_date: date | None = None
    service_date: date | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transaction:
    """An insurance payment or adjustment posted against a line item (from an ERA/EOB)."""

    id: int
    line_item_id: int | None
    appointment_id: str | None = None
    patient_id: int | None = None
    doctor_id: int | None = None
    insurer_rank: int | None = None
    ins_paid: Decimal | None = None
    adjustment: Decimal | None = None
    adjustment_reason: str | None = None
    adjustment_group_code: str | None = None
    claim_status_code: str | None = None
    payer_name: str | None = None
    trace_number: str | None = None
    check_date: date | None = None
    posted_date: date | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PatientPayment:
    """A payment (or refund, when negative) made by the patient."""

    id: int
    patient_id: int | None
    amount: Decimal | None
    doctor_id: int | None = None
    appointment_id: str | None = None
    line_item_id: int | None = None
    payment_method: str | None = None
    transaction_type: str | None = None
    received_date: date | None = None
    posted_date: date | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Insurance:
    """A payer from the payer directory."""

    payer_id: str
    payer_name: str | None = None
    state: str | None = None
