"""Billing: line items per completed visit, insurance transactions (ERAs), patient payments and
the claim status fields of appointments.

The claim timeline comes from ``clinic_claims``; this module turns it into money. Steps dated
after ``today`` have not happened yet, which is what leaves open balances in every A/R aging
bucket; patients pay copays at check-in and other balances after a statement (or never).

Money is computed in integer cents, so these identities hold exactly for every line item:

- ``billed = price * quantity``
- ``billed = allowed + adjustment`` (adjustment = contractual write-off, CARC 45)
- ``allowed = ins1_paid + ins2_paid + ins3_paid + pt_paid + balance_ins + balance_pt``
- ``ins_total = ins1_paid + ins2_paid + ins3_paid``; ``paid_total = ins_total + pt_paid``;
  ``balance_total = balance_ins + balance_pt``
- the line's transactions sum to ``ins1_paid`` / ``ins2_paid`` (by ``ins_name``) and to
  ``adjustment``; its patient payments sum to ``pt_paid``.

Before adjudication (and for denied or rejected claims) ``allowed = billed`` and the unpaid
amount sits in ``balance_ins``; self-pay visits have ``allowed = billed`` owed by the patient.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools

from ehr.sandbox import codes
from ehr.sandbox.clinic_claims import POST_LAG_DAYS, Claim, adjudicate, claim_lines
from ehr.sandbox.clinic_context import GenContext, Record, money, pick
from ehr.sandbox.clinic_schedule import Visit

POS_COPAY_RATE = 0.85  # copays collected at check-in
STATEMENT_PAY_RATE = 0.7  # patient balances paid after a statement
SELF_PAY_POS_RATE = 0.5  # self-pay visits paid in full at checkout
_METHODS = [m for m, _ in codes.PAYMENT_METHODS]
_METHOD_CUM = list(itertools.accumulate(w for _, w in codes.PAYMENT_METHODS))


class _Biller:
    """Stateful builder of the billing tables (one per generation run)."""

    def __init__(self, ctx: GenContext, staff_user: int) -> None:
        self.ctx = ctx
        self.rng = ctx.rng("billing")
        self.staff_user = staff_user
        self.line_items: dict[int | str, Record] = {}
        self.transactions: dict[int | str, Record] = {}
        self.payments: dict[int | str, Record] = {}

    def stamp(self, day: dt.date, hour: int = 9) -> dt.datetime:
        """A business-hours moment on ``day`` that is never after the clinic clock."""
        moment = dt.datetime.combine(
            day, dt.time(hour + pick(self.rng, 0, 6), pick(self.rng, 0, 59))
        )
        return min(moment, self.ctx.now)

    def bill(self, visit: Visit) -> None:
        ctx, rng = self.ctx, self.rng
        patient, payer = visit.patient, visit.patient.payer
        service = visit.start.date()
        posted = min(ctx.today, service + dt.timedelta(days=rng.choice(POST_LAG_DAYS)))
        claim = adjudicate(ctx, rng, patient, posted)
        appt = visit.appt
        appt_id = int(appt["id"])
        pos_copay = (
            payer.copay_cents > 0
            and visit.kind not in ("telehealth", "nurse")
            and rng.random() < POS_COPAY_RATE
        )
        self_pay_pos = claim.stage == "self_pay" and rng.random() < SELF_PAY_POS_RATE
        checkout = min(ctx.now, visit.end)
        latest = self.stamp(posted)
        patient_owes = False
        for number, (procedure, quantity, modifiers, pointers) in enumerate(
            claim_lines(rng, visit)
        ):
            billed = procedure.fee_cents * quantity
            allowed, adjustment, ins1, ins2, balance_ins, pt_resp = billed, 0, 0, 0, 0, 0
            line_id = ctx.next_id("line_items")
            paid: list[tuple[int, str, dt.datetime]] = []  # patient payments (amount, type, when)
            if self_pay_pos:
                paid.append((billed, "", checkout))
            elif pos_copay and number == 0:
                paid.append((payer.copay_cents, "COPAY", checkout))
            pt_paid = sum(p[0] for p in paid)
            if claim.stage == "self_pay":
                pt_resp = billed
            elif claim.stage != "paid":
                balance_ins = billed - pt_paid
            else:
                permille = payer.allowed_permille - pick(rng, 0, 15)
                allowed = billed * permille // 1000
                adjustment = billed - allowed
                if payer.copay_cents and number == 0:
                    pt_resp = min(payer.copay_cents, allowed)
                elif payer.coinsurance_permille:
                    pt_resp = allowed * payer.coinsurance_permille // 1000
                ins1 = allowed - pt_resp
                if claim.secondary_on is not None:
                    ins2, pt_resp = pt_resp, 0
                elif claim.secondary_pending:
                    balance_ins, pt_resp = pt_resp, 0
                assert claim.paid_on is not None
                if claim.denied_on is not None and claim.denial is not None:
                    self._denial(visit, line_id, appt_id, claim)
                forwarded = claim.secondary_on is not None or claim.secondary_pending
                self._transaction(
                    visit,
                    line_id,
                    appt_id,
                    claim,
                    1,
                    ins1,
                    adjustment,
                    codes.CONTRACTUAL_ADJUSTMENT_REASON,
                    codes.CLAIM_FORWARDED if forwarded else codes.CLAIM_PROCESSED_PRIMARY,
                    claim.paid_on,
                    "",
                )
                if claim.secondary_on is not None:
                    self._transaction(
                        visit,
                        line_id,
                        appt_id,
                        claim,
                        2,
                        ins2,
                        0,
                        "",
                        codes.CLAIM_PROCESSED_SECONDARY,
                        claim.secondary_on,
                        "",
                    )
            if claim.stage == "denied" and claim.denial is not None and claim.denied_on:
                self._denial(visit, line_id, appt_id, claim)
                if claim.written_off_on is not None:
                    # The unrecoverable charge is adjusted off; what the patient paid stays.
                    adjustment = billed - pt_paid
                    allowed, balance_ins = pt_paid, 0
                    self._transaction(
                        visit,
                        line_id,
                        appt_id,
                        claim,
                        1,
                        0,
                        adjustment,
                        claim.denial[0],
                        codes.CLAIM_DENIED,
                        claim.written_off_on,
                        claim.denial[1],
                    )
            owed = pt_resp - pt_paid
            if owed > 0:
                statement = (claim.secondary_on or claim.paid_on or posted) + dt.timedelta(days=7)
                when = statement + dt.timedelta(days=pick(rng, 10, 75))
                rate = STATEMENT_PAY_RATE if claim.stage == "paid" else STATEMENT_PAY_RATE * 0.8
                if when <= ctx.today and rng.random() < rate:
                    kind = (
                        "COINSR"
                        if payer.coinsurance_permille
                        else ("COPAY" if payer.copay_cents else "")
                    )
                    paid.append((owed, kind, self.stamp(when)))
                    pt_paid += owed
            balance_pt = pt_resp - pt_paid if claim.stage in ("paid", "self_pay") else 0
            updated = latest
            for amount, kind, when in paid:
                self._payment(visit, line_id, appt_id, amount, kind, when)
                updated = max(updated, when)
            for event in claim.events:
                updated = max(updated, event)
            status = claim.status
            if claim.stage == "paid" and not claim.secondary_pending:
                status = codes.STATUS_PAID if balance_pt == 0 else codes.STATUS_PARTIAL
            expected = billed * payer.allowed_permille // 1000
            ins_total = ins1 + ins2
            self.line_items[line_id] = {
                "id": line_id,
                "appointment": appt_id,
                "patient": patient.id,
                "doctor": visit.doctor.id,
                "code": procedure.code,
                "procedure_type": procedure.procedure_type,
                "description": procedure.description,
                "quantity": quantity,
                "units": "UN",
                "modifiers": modifiers,
                "diagnosis_pointers": pointers,
                "price": money(procedure.fee_cents),
                "billed": money(billed),
                "allowed": money(allowed),
                "expected_reimbursement": money(expected),
                "adjustment": money(adjustment),
                "ins1_paid": money(ins1),
                "ins2_paid": money(ins2),
                "ins3_paid": money(0),
                "ins_total": money(ins_total),
                "pt_paid": money(pt_paid),
                "paid_total": money(ins_total + pt_paid),
                "balance_ins": money(balance_ins),
                "balance_pt": money(balance_pt),
                "balance_total": money(balance_ins + balance_pt),
                "billing_status": status,
                "insurance_status": (
                    f"CO-{claim.denial[0]}"
                    if claim.stage in ("denied", "rejected") and claim.denial
                    else "CO-45"
                    if adjustment
                    else ""
                ),
                "denied_flag": claim.stage == "denied",
                "posted_date": ctx.date(posted),
                "service_date": ctx.date(service),
                "updated_at": ctx.ts(updated),
            }
            latest = max(latest, updated)
            patient_owes = patient_owes or balance_pt > 0
        self._appointment_billing(visit, claim, latest, patient_owes)

    def _denial(self, visit: Visit, line_id: int, appt_id: int, claim: Claim) -> None:
        """The primary payer's zero-paid denial transaction, posted on the denial date."""
        assert claim.denial is not None
        assert claim.denied_on is not None
        self._transaction(
            visit,
            line_id,
            appt_id,
            claim,
            1,
            0,
            0,
            claim.denial[0],
            codes.CLAIM_DENIED,
            claim.denied_on,
            claim.denial[1],
        )

    def _transaction(
        self,
        visit: Visit,
        line_id: int,
        appt_id: int,
        claim: Claim,
        ins_name: int,
        paid: int,
        adjustment: int,
        reason: str,
        claim_status: str,
        posted: dt.date,
        message: str,
    ) -> None:
        ctx = self.ctx
        secondary = ins_name == 2 and visit.patient.secondary is not None
        payer = (
            visit.patient.secondary
            if secondary and visit.patient.secondary
            else visit.patient.payer
        )
        moment = self.stamp(posted, hour=7)
        claim.events.append(moment)
        transaction_id = ctx.next_id("transactions")
        group = "CO" if reason else ""
        if reason in ("27", "96"):
            group = "PR" if reason == "96" else "CO"
        self.transactions[transaction_id] = {
            "id": transaction_id,
            "line_item": line_id,
            "appointment": appt_id,
            "patient": visit.patient.id,
            "doctor": visit.doctor.id,
            "ins_name": ins_name,
            "ins_paid": money(paid),
            "adjustment": money(adjustment),
            "adjustment_reason": reason,
            "adjustment_group_code": group,
            "claim_status": claim_status,
            "trace_number": f"{claim.trace}{ins_name}",
            "check_date": ctx.date(posted - dt.timedelta(days=2)),
            "insurance": {
                "name": payer.name,
                "id_number": visit.patient.member_id,
                "message": message,
            },
            "posted_date": ctx.date(posted),
            "created_at": ctx.ts(moment),
            "updated_at": ctx.ts(moment),
        }

    def _payment(
        self, visit: Visit, line_id: int, appt_id: int, amount: int, kind: str, when: dt.datetime
    ) -> None:
        ctx, rng = self.ctx, self.rng
        payment_id = ctx.next_id("patient_payments")
        method = _METHODS[bisect.bisect(_METHOD_CUM, rng.random() * _METHOD_CUM[-1])]
        self.payments[payment_id] = {
            "id": payment_id,
            "patient": visit.patient.id,
            "doctor": visit.doctor.id,
            "appointment": appt_id,
            "line_item": line_id,
            "amount": money(amount),
            "payment_method": method,
            "payment_transaction_type": kind,
            "received_date": ctx.date(when.date()),
            "trace_number": f"{method}-{payment_id}" if method in ("CHCK", "ONPT") else "",
            "notes": "",
            "posted_date": ctx.date(when.date()),
            "created_by": self.staff_user,
            "created_at": ctx.ts(when),
            "updated_at": ctx.ts(when),
        }

    def _appointment_billing(
        self, visit: Visit, claim: Claim, latest: dt.datetime, patient_owes: bool
    ) -> None:
        ctx = self.ctx
        appt = visit.appt
        payer = visit.patient.payer
        if claim.billed_on is not None:
            appt["first_billed_date"] = appt["first_edi_date"] = ctx.date(claim.billed_on)
            last = claim.last_billed_on or claim.billed_on
            appt["last_billed_date"] = appt["last_edi_date"] = ctx.date(last)
        appt["ins1_status"] = {"self_pay": "", "unbilled": ""}.get(claim.stage, claim.status)
        if claim.stage == "paid" and claim.status == codes.STATUS_COB:
            appt["ins1_status"] = codes.STATUS_PAID
        if visit.patient.secondary is not None and claim.stage == "paid":
            appt["ins2_status"] = codes.STATUS_PAID if claim.secondary_on else "In Process Payer"
        if payer.key == codes.WORKERS_COMP:
            appt["billing_status"] = "Worker's Comp Claim"
        elif claim.stage in ("denied", "rejected", "incomplete"):
            appt["billing_status"] = "Internal Review"
        elif claim.stage in ("unbilled", "pending"):
            appt["billing_status"] = "Bill Insurance"
        else:
            appt["billing_status"] = "Balance Due" if patient_owes else "Paid In Full"
        stamp = ctx.ts(latest)
        if stamp > appt["updated_at"]:
            appt["updated_at"] = appt["extended_updated_at"] = stamp


def build_billing(
    ctx: GenContext, completed: list[Visit], staff_user: int
) -> dict[str, dict[int | str, Record]]:
    """Line items, transactions and patient payments for ``completed`` visits."""
    biller = _Biller(ctx, staff_user)
    for visit in completed:
        biller.bill(visit)
    return {
        "line_items": biller.line_items,
        "transactions": biller.transactions,
        "patient_payments": biller.payments,
    }
