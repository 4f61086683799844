"""Vendor-neutral EHR models: people, scheduling, paging and data quality.

Frozen, slotted dataclasses in snake_case that every backend maps into and every service
reads. Clinical records live in ``ehr.models_clinical``, billing in ``ehr.models_billing``.

Conventions:

* Ids are integers, except appointment ids, which are strings (DrChrono's virtual recurring
  instances have non-numeric ids).
* Timestamps are timezone-aware (see ``ehr.timeutil``); dates are ``date``; money is
  ``Decimal``.
* A field whose upstream value could not be read is None and counted in ``DataQuality``; the
  record is still returned.
* Enumerations hold a known member or ``Other(raw)``: unknown values (a practice's custom
  appointment status) are kept, never dropped, so a data-quality panel can show them.
* Sequences are tuples, so records stay immutable and hashable.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypedDict, TypeVar

__all__ = [
    "Appointment",
    "AppointmentBillingStatus",
    "AppointmentChanges",
    "AppointmentDraft",
    "AppointmentProfile",
    "AppointmentStatus",
    "ClaimStatus",
    "DataQuality",
    "Doctor",
    "EHRUser",
    "ExamRoom",
    "Gender",
    "Office",
    "Other",
    "Page",
    "Patient",
    "PatientChanges",
    "PatientDraft",
    "PatientStatus",
    "QualityIssue",
    "StatusTransition",
]

# Distinct unknown raw values remembered per field: enough for a panel, bounded in memory.
MAX_UNKNOWN_VALUES_PER_FIELD = 50
# Unknown raw values are enum-like labels; anything longer is cut for display.
MAX_UNKNOWN_VALUE_CHARS = 64

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Other:
    """An enumeration value the app does not know, kept verbatim (e.g. ``"Waiting Room 2"``)."""

    raw: str


class QualityIssue(StrEnum):
    """Kinds of upstream data problems that are tolerated, counted and shown."""

    UNKNOWN_VALUE = "unknown_value"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_DATE = "bad_date"
    BAD_MONEY = "bad_money"
    BAD_NUMBER = "bad_number"
    SHIFTED_LOCAL_TIME = "shifted_local_time"
    DUPLICATE_RECORD = "duplicate_record"


@dataclass(slots=True)
class DataQuality:
    """A mutable tally of tolerated upstream problems, per kind and field.

    Mapping functions add to it as they read records; the data-quality panel reads
    ``counts`` (keyed ``(issue, "resource.field")``) and ``unknown_values`` (raw enum values
    seen per field, e.g. custom appointment statuses). Values are never PHI: only enum labels
    are remembered.
    """

    counts: Counter[tuple[QualityIssue, str]] = field(default_factory=Counter)
    unknown_values: dict[str, Counter[str]] = field(default_factory=dict)

    def note(self, issue: QualityIssue, field_name: str) -> None:
        """Count one occurrence of ``issue`` on ``field_name`` (``"appointment.status"``)."""
        self.counts[(issue, field_name)] += 1

    def note_unknown(self, field_name: str, raw: str) -> None:
        """Count an unknown enumeration value and remember it (bounded) for the panel."""
        self.note(QualityIssue.UNKNOWN_VALUE, field_name)
        seen = self.unknown_values.setdefault(field_name, Counter())
        label = raw[:MAX_UNKNOWN_VALUE_CHARS]
        if label in seen or len(seen) < MAX_UNKNOWN_VALUES_PER_FIELD:
            seen[label] += 1

    def total(self, issue: QualityIssue | None = None) -> int:
        """How many problems were counted, of one kind or of all kinds."""
        return sum(n for (kind, _), n in self.counts.items() if issue is None or kind == issue)

    def merge(self, other: DataQuality) -> None:
        """Add another tally into this one (e.g. one page's tally into a whole sync's)."""
        self.counts.update(other.counts)
        for field_name, values in other.unknown_values.items():
            for raw, n in values.items():
                seen = self.unknown_values.setdefault(field_name, Counter())
                if raw in seen or len(seen) < MAX_UNKNOWN_VALUES_PER_FIELD:
                    seen[raw] += n

    def __bool__(self) -> bool:
        return bool(self.counts)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Records from one listing call (or one upstream page when iterating a sync).

    ``next_cursor`` is opaque: pass it back to continue. ``truncated`` is True when the
    client's page cap stopped the listing with more data upstream, so the UI must say the
    result is partial. ``quality`` tallies the tolerated data problems in these records.
    """

    items: tuple[T, ...]
    next_cursor: str | None = None
    truncated: bool = False
    quality: DataQuality = field(default_factory=DataQuality, compare=False)


class Gender(StrEnum):
    """Administrative gender as recorded on the chart."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"
    ASKED_DECLINED = "asked_declined"


class PatientStatus(StrEnum):
    """Whether the chart is active."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    DECEASED = "deceased"


@dataclass(frozen=True, slots=True)
class Patient:
    """A patient's demographics (the social security number is deliberately not mapped)."""

    id: int
    chart_id: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None
    preferred_name: str | None = None
    date_of_birth: date | None = None
    gender: Gender | Other | None = None
    email: str | None = None
    home_phone: str | None = None
    cell_phone: str | None = None
    office_phone: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    doctor_id: int | None = None
    status: PatientStatus | Other | None = None
    preferred_language: str | None = None
    copay: Decimal | None = None
    payment_profile: str | None = None
    office_ids: tuple[int, ...] = ()
    date_of_first_appointment: date | None = None
    date_of_last_appointment: date | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PatientDraft:
    """A new patient to register; ``doctor_id`` and ``gender`` are required upstream."""

    first_name: str
    last_name: str
    date_of_birth: date
    gender: Gender
    doctor_id: int
    chart_id: str | None = None
    middle_name: str | None = None
    email: str | None = None
    home_phone: str | None = None
    cell_phone: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None


class PatientChanges(TypedDict, total=False):
    """Demographic fields to change on an existing patient; only the keys present are sent."""

    first_name: str
    middle_name: str
    last_name: str
    preferred_name: str
    date_of_birth: date
    gender: Gender
    email: str
    home_phone: str
    cell_phone: str
    office_phone: str
    address: str
    city: str
    state: str
    zip_code: str
    doctor_id: int
    chart_id: str


class AppointmentStatus(StrEnum):
    """The standard appointment statuses (practices may add custom ones: ``Other``)."""

    BOOKED = "booked"
    CONFIRMED = "confirmed"
    NOT_CONFIRMED = "not_confirmed"
    ARRIVED = "arrived"
    CHECKED_IN = "checked_in"
    CHECKED_IN_ONLINE = "checked_in_online"
    IN_ROOM = "in_room"
    IN_SESSION = "in_session"
    COMPLETE = "complete"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


class AppointmentBillingStatus(StrEnum):
    """The appointment-level billing workflow status (practices may add custom ones)."""

    AUTO_ACCIDENT_CLAIM = "auto_accident_claim"
    BALANCE_DUE = "balance_due"
    BILL_INSURANCE = "bill_insurance"
    BILL_SECONDARY_INSURANCE = "bill_secondary_insurance"
    DURABLE_MEDICAL_EQUIPMENT_CLAIM = "durable_medical_equipment_claim"
    INTERNAL_REVIEW = "internal_review"
    PAID_IN_FULL = "paid_in_full"
    SETTLED = "settled"
    WORKERS_COMP_CLAIM = "workers_comp_claim"


class ClaimStatus(StrEnum):
    """Where an insurance claim stands, for a line item or per insurer on an appointment.

    Clearinghouse-specific upstream labels ("In Process Emdeon", "Rejected Waystar
    Professional", ...) fold into one neutral member each; a blank status means "not billed"
    and maps to None.
    """

    INCOMPLETE_INFORMATION = "incomplete_information"
    IN_PROCESS_CLEARINGHOUSE = "in_process_clearinghouse"
    REJECTED_CLEARINGHOUSE = "rejected_clearinghouse"
    FORM_SENT = "form_sent"
    IN_PROCESS_PAYER = "in_process_payer"
    PAYER_ACKNOWLEDGED = "payer_acknowledged"
    REJECTED_PAYER = "rejected_payer"
    PAID_IN_FULL = "paid_in_full"
    PARTIALLY_PAID = "partially_paid"
    COORDINATION_OF_BENEFITS = "coordination_of_benefits"
    ERA_RECEIVED = "era_received"
    ERA_DENIED = "era_denied"


@dataclass(frozen=True, slots=True)
class StatusTransition:
    """One recorded status change of an appointment (for visit-cycle times)."""

    from_status: AppointmentStatus | Other | None
    to_status: AppointmentStatus | Other | None
    at: datetime | None


@dataclass(frozen=True, slots=True)
class Appointment:
    """A scheduled visit (or a break, with no patient), with its claim status per insurer."""

    id: str
    doctor_id: int
    office_id: int | None
    scheduled_time: datetime | None
    patient_id: int | None = None
    exam_room: int | None = None
    duration_minutes: int | None = None
    status: AppointmentStatus | Other = AppointmentStatus.BOOKED
    reason: str | None = None
    profile_id: int | None = None
    is_walk_in: bool = False
    is_break: bool = False
    is_deleted: bool = False
    billing_status: AppointmentBillingStatus | Other | None = None
    claim_status_primary: ClaimStatus | Other | None = None
    claim_status_secondary: ClaimStatus | Other | None = None
    primary_insurer_name: str | None = None
    primary_insurer_payer_id: str | None = None
    secondary_insurer_name: str | None = None
    first_billed_date: date | None = None
    icd10_codes: tuple[str, ...] = ()
    status_transitions: tuple[StatusTransition, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def ends_at(self) -> datetime | None:
        """The scheduled end, when both start and duration are known."""
        if self.scheduled_time is None or self.duration_minutes is None:
            return None
        return self.scheduled_time + timedelta(minutes=self.duration_minutes)


@dataclass(frozen=True, slots=True)
class AppointmentDraft:
    """A new appointment; ``duration_minutes`` may be omitted when ``profile_id`` supplies it."""

    patient_id: int
    doctor_id: int
    office_id: int
    exam_room: int
    scheduled_time: datetime
    duration_minutes: int | None = None
    profile_id: int | None = None
    reason: str | None = None
    is_walk_in: bool = False


class AppointmentChanges(TypedDict, total=False):
    """Appointment fields to change; only the keys present are sent."""

    doctor_id: int
    office_id: int
    exam_room: int
    scheduled_time: datetime
    duration_minutes: int
    profile_id: int
    reason: str
    status: AppointmentStatus | Other


@dataclass(frozen=True, slots=True)
class Doctor:
    """A provider in the practice."""

    id: int
    first_name: str | None = None
    last_name: str | None = None
    suffix: str | None = None
    specialty: str | None = None
    npi_number: str | None = None
    practice_group_id: int | None = None
    timezone: str | None = None
    is_suspended: bool = False

    @property
    def display_name(self) -> str:
        """Name for pickers and chart labels (a provider's name is not patient data)."""
        name = " ".join(p for p in (self.first_name, self.last_name, self.suffix) if p)
        return name or f"Doctor {self.id}"


@dataclass(frozen=True, slots=True)
class ExamRoom:
    """A room in an office; appointments refer to it by ``index``."""

    index: int
    name: str | None = None
    online_scheduling: bool = False


@dataclass(frozen=True, slots=True)
class Office:
    """A practice location with its exam rooms."""

    id: int
    name: str | None = None
    doctor_id: int | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    phone_number: str | None = None
    exam_rooms: tuple[ExamRoom, ...] = ()
    archived: bool = False


@dataclass(frozen=True, slots=True)
class AppointmentProfile:
    """A visit type: default duration, reason and colour for new appointments."""

    id: int
    name: str | None = None
    doctor_id: int | None = None
    duration_minutes: int | None = None
    reason: str | None = None
    color: str | None = None
    online_scheduling: bool = False
    archived: bool = False


@dataclass(frozen=True, slots=True)
class EHRUser:
    """The EHR user the practice connected with, and their practice."""

    id: int
    username: str | None = None
    doctor_id: int | None = None
    practice_group_id: int | None = None
    is_doctor: bool = False
    is_staff: bool = False
    permissions: tuple[str, ...] = ()
