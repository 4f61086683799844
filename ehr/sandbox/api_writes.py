"""Resource-specific write rules of the sandbox REST API.

The generic handlers validate the body, build the new record and then call one hook per
resource: patients refuse likely duplicates (409 unless ``allow_duplicates=true``), appointments
refuse overlaps (409 unless ``allow_overlapping``) and record status transitions, line items and
patient payments derive their read-only fields from the appointment, labs link results to
orders. Hooks run under the store lock, raise ``ApiError`` to refuse, and never write partially:
the single ``store.put`` happens after they return.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ehr.sandbox import codes
from ehr.sandbox.api_fields import ApiError, detail, parse_bool
from ehr.sandbox.store import Key, Record, Store, format_timestamp, parse_local

DUPLICATE_PATIENT = "Potential duplicate patient(s) found."
OVERLAP = "Scheduled time overlaps with an existing appointment."
# Statuses that free their slot: a cancelled or rescheduled visit no longer blocks the room.
_NON_BLOCKING = frozenset({"Cancelled", "Rescheduled"})
# Longest appointment accepted (minutes): a day; longer is a data-entry error.
MAX_DURATION_MIN = 24 * 60
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class WriteContext:
    """What a write hook may use: the store, the query string, validated values, the user."""

    store: Store
    resource: str
    query: Mapping[str, str]
    clean: Mapping[str, Any]
    user_id: int
    now: dt.datetime


CreateHook = Callable[[WriteContext, Record], Record]
UpdateHook = Callable[[WriteContext, Record, Record], Record]
DeleteHook = Callable[[WriteContext, Key, Record], None]


def plain_create(_ctx: WriteContext, record: Record) -> Record:
    """No resource-specific rule on create."""
    return record


def plain_update(_ctx: WriteContext, _old: Record, new: Record) -> Record:
    """No resource-specific rule on update."""
    return new


def hard_delete(ctx: WriteContext, key: Key, _record: Record) -> None:
    """Remove the record (a tombstone remembers it)."""
    ctx.store.delete(ctx.resource, key)


def archive(ctx: WriteContext, key: Key, record: Record) -> None:
    """Soft delete: DrChrono keeps appointment profiles with ``archived: true``."""
    ctx.store.put(ctx.resource, key, {**record, "archived": True})


def _stamp(ctx: WriteContext) -> str:
    return format_timestamp(ctx.now)


def _field_error(name: str, message: str) -> ApiError:
    return ApiError(400, {name: [message]})


# --- patients ------------------------------------------------------------------------------


def create_patient(ctx: WriteContext, record: Record) -> Record:
    """Refuse a likely duplicate (same names ignoring case and same birth date) with 409."""
    if not parse_bool(ctx.query.get("allow_duplicates", "false")):
        first = str(record.get("first_name") or "").casefold()
        last = str(record.get("last_name") or "").casefold()
        dob = record.get("date_of_birth")
        if first and last and dob:
            for _key, other, _stamp in ctx.store.scan("patients"):
                if (
                    other.get("date_of_birth") == dob
                    and str(other.get("first_name") or "").casefold() == first
                    and str(other.get("last_name") or "").casefold() == last
                ):
                    raise detail(409, DUPLICATE_PATIENT)
    if not record.get("chart_id"):
        # DrChrono builds chart ids from the name when none is given.
        letters = str(record.get("last_name") or "")[:2] + str(record.get("first_name") or "")[:2]
        prefix = "".join(c for c in letters.upper() if c.isalpha()).ljust(4, "X")
        record["chart_id"] = f"{prefix}{int(record['id']) % 1_000_000:06d}"
    return record


# --- appointments --------------------------------------------------------------------------


def required_fields(
    resource: str, required: tuple[str, ...], data: Mapping[str, Any]
) -> tuple[str, ...]:
    """Fields required on create; a break (``appt_is_break``) has no patient."""
    if resource == "appointments" and parse_bool(data.get("appt_is_break", False)):
        return tuple(name for name in required if name != "patient")
    return required


def _check_exam_room(store: Store, record: Record) -> None:
    office = store.peek("offices", record.get("office"))
    rooms = office.get("exam_rooms") if office else None
    if isinstance(rooms, list) and rooms:
        indices = {room.get("index") for room in rooms if isinstance(room, dict)}
        if record.get("exam_room") not in indices:
            raise _field_error("exam_room", "Invalid exam room for this office.")


def _interval(record: Record) -> tuple[dt.datetime, dt.datetime] | None:
    start = parse_local(record.get("scheduled_time"))
    if start is None:
        return None
    minutes = record.get("duration")
    length = minutes if isinstance(minutes, int) and minutes > 0 else 0
    return start, start + dt.timedelta(minutes=length)


def _blocks(record: Record) -> bool:
    return not record.get("deleted_flag") and record.get("status") not in _NON_BLOCKING


def _check_overlap(ctx: WriteContext, record: Record, own_key: Key | None) -> None:
    allowed = parse_bool(ctx.clean.get("allow_overlapping", False)) or parse_bool(
        ctx.query.get("allow_overlapping", "false")
    )
    span = _interval(record)
    if allowed or span is None or not _blocks(record) or span[0] == span[1]:
        return
    start, end = span
    for key, other, _stamp in ctx.store.scan("appointments"):
        if key == own_key or not _blocks(other):
            continue
        same_doctor = other.get("doctor") == record.get("doctor")
        same_room = other.get("office") == record.get("office") and other.get(
            "exam_room"
        ) == record.get("exam_room")
        if not (same_doctor or same_room):
            continue
        other_span = _interval(other)
        if other_span and other_span[0] < end and start < other_span[1]:
            raise detail(409, OVERLAP)


def _check_duration(record: Record) -> None:
    duration = record.get("duration")
    if not isinstance(duration, int) or not 0 < duration <= MAX_DURATION_MIN:
        raise _field_error(
            "duration", f"Ensure this value is between 1 and {MAX_DURATION_MIN} minutes."
        )


def _transition(ctx: WriteContext, record: Record, old_status: str) -> None:
    new_status = str(record.get("status") or "")
    if new_status == old_status:
        return
    transitions = list(record.get("status_transitions") or [])
    transitions.append(
        {
            "appointment": record["id"],
            "from_status": old_status,
            "to_status": new_status,
            "datetime": _stamp(ctx),
        }
    )
    record["status_transitions"] = transitions


def create_appointment(ctx: WriteContext, record: Record) -> Record:
    """Fill duration from the profile, check the room and overlaps, start the status history."""
    if record.get("duration") is None:
        profile = ctx.store.peek("appointment_profiles", record.get("profile"))
        if profile is None or not profile.get("duration"):
            raise _field_error("duration", "This field is required.")
        record["duration"] = profile["duration"]
        for name in ("color", "reason"):
            if not record.get(name) and profile.get(name):
                record[name] = profile[name]
    _check_duration(record)
    _check_exam_room(ctx.store, record)
    _check_overlap(ctx, record, None)
    record["status_transitions"] = []
    _transition(ctx, record, "")
    record.update(created_by=ctx.user_id, deleted_flag=False, is_virtual_base=False)
    record["extended_updated_at"] = _stamp(ctx)
    return record


_SCHEDULE_FIELDS = ("scheduled_time", "duration", "doctor", "office", "exam_room", "status")


def update_appointment(ctx: WriteContext, old: Record, new: Record) -> Record:
    """Re-check room and overlaps when the slot changes; append a status transition."""
    _check_duration(new)
    if any(new.get(f) != old.get(f) for f in _SCHEDULE_FIELDS):
        if new.get("office") != old.get("office") or new.get("exam_room") != old.get("exam_room"):
            _check_exam_room(ctx.store, new)
        _check_overlap(ctx, new, old["id"])
    _transition(ctx, new, str(old.get("status") or ""))
    new["extended_updated_at"] = _stamp(ctx)
    return new


def delete_appointment(ctx: WriteContext, key: Key, record: Record) -> None:
    """DrChrono keeps deleted appointments (``deleted_flag``), listed with ``show_archived``."""
    ctx.store.put("appointments", key, {**record, "deleted_flag": True})


# --- labs ----------------------------------------------------------------------------------


def create_lab_order(ctx: WriteContext, record: Record) -> Record:
    """Stamp the order time and give it a requisition id."""
    record.update(timestamp=_stamp(ctx), requisition_id=f"R{record['id']}", documents=[])
    return record


def link_lab_result(ctx: WriteContext, record: Record) -> Record:
    """A result's (read-only) ``lab_order`` is its test's order."""
    test = ctx.store.peek("lab_tests", record.get("lab_test"))
    record["lab_order"] = test.get("lab_order") if test else None
    return record


def relink_lab_result(ctx: WriteContext, _old: Record, new: Record) -> Record:
    """Keep ``lab_order`` in step when a result moves to another test."""
    return link_lab_result(ctx, new)


def create_vaccine_record(ctx: WriteContext, record: Record) -> Record:
    """Record who entered it."""
    record["entered_by"] = ctx.user_id
    return record


# --- billing -------------------------------------------------------------------------------


def _cents(value: object) -> int:
    try:
        return int((Decimal(str(value)) * 100).to_integral_value(ROUND_HALF_UP))
    except ArithmeticError:
        return 0


def _money(cents: int) -> str:
    return f"{(Decimal(cents) / 100).quantize(_CENT):f}"


def _derive_from_appointment(ctx: WriteContext, record: Record) -> None:
    appointment = ctx.store.peek("appointments", str(record.get("appointment")))
    if appointment is None:
        raise _field_error("appointment", "This field is required.")
    record["patient"] = appointment.get("patient")
    record["doctor"] = appointment.get("doctor")
    record["service_date"] = str(appointment.get("scheduled_time") or "")[:10] or None


def _recompute_money(record: Record) -> None:
    """Keep DrChrono's totals consistent: billed = price x quantity, totals add up."""
    quantity = record.get("quantity")
    qty = Decimal(str(quantity)) if isinstance(quantity, int | float) else Decimal(1)
    billed = int((Decimal(_cents(record.get("price"))) * qty).to_integral_value(ROUND_HALF_UP))
    ins_total = sum(_cents(record.get(f)) for f in ("ins1_paid", "ins2_paid", "ins3_paid"))
    pt_paid = _cents(record.get("pt_paid"))
    adjustment = _cents(record.get("adjustment"))
    balance_ins = _cents(record.get("balance_ins"))
    balance_pt = max(0, billed - adjustment - ins_total - pt_paid - balance_ins)
    record.update(
        billed=_money(billed),
        ins_total=_money(ins_total),
        pt_paid=_money(pt_paid),
        paid_total=_money(ins_total + pt_paid),
        balance_ins=_money(balance_ins),
        balance_pt=_money(balance_pt),
        balance_total=_money(balance_ins + balance_pt),
    )


def create_line_item(ctx: WriteContext, record: Record) -> Record:
    """Derive patient/doctor/service date from the appointment and the money totals."""
    _derive_from_appointment(ctx, record)
    procedure = codes.PROCEDURES.get(str(record.get("code")))
    if record.get("price") is None:
        record["price"] = _money(procedure.fee_cents) if procedure else "0.00"
    record["description"] = procedure.description if procedure else ""
    for name in ("adjustment", "ins1_paid", "ins2_paid", "ins3_paid"):
        record[name] = "0.00"
    record.update(posted_date=ctx.now.date().isoformat(), billing_status="", denied_flag=False)
    record["insurance_status"] = ""
    _recompute_money(record)
    record["allowed"] = record["expected_reimbursement"] = record["billed"]
    return record


def update_line_item(ctx: WriteContext, old: Record, new: Record) -> Record:
    """Re-derive from a changed appointment and recompute the totals."""
    if new.get("appointment") != old.get("appointment"):
        _derive_from_appointment(ctx, new)
    if new.get("code") != old.get("code"):
        procedure = codes.PROCEDURES.get(str(new.get("code")))
        new["description"] = procedure.description if procedure else ""
    _recompute_money(new)
    return new


def create_patient_payment(ctx: WriteContext, record: Record) -> Record:
    """Refuse a zero amount; infer appointment and doctor; stamp posting and creator."""
    if _cents(record.get("amount")) == 0:
        raise _field_error("amount", "Ensure this value is not zero.")
    if record.get("line_item") is not None and record.get("appointment") is None:
        line = ctx.store.peek("line_items", record["line_item"])
        record["appointment"] = line.get("appointment") if line else None
    if record.get("doctor") is None:
        appointment = ctx.store.peek("appointments", str(record.get("appointment")))
        patient = ctx.store.peek("patients", record["patient"])
        source = appointment or patient or {}
        record["doctor"] = source.get("doctor")
    today = ctx.now.date().isoformat()
    record.update(posted_date=today, created_by=ctx.user_id)
    if not record.get("received_date"):
        record["received_date"] = today
    return record
