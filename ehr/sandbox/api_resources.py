"""What each sandbox REST resource is: methods, scopes, writable fields, filters, ordering.

One ``ResourceSpec`` per DrChrono resource, taken from drchrono.md §3 and the OAS component
schemas (``drchrono-openapi-v4.yml``): the method matrix (others answer 405), the OAS scope
pair(s) (any one grants reads; writes need a ``:write`` one), the writable fields with their
types (read-only and unknown fields are ignored like DRF), the fields required on create, the
list filters, and the list order. Resource-specific write rules live in ``api_writes``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ehr.sandbox import api_writes as writes
from ehr.sandbox.api_fields import (
    ANY,
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    INT,
    LIST_INT,
    LIST_OBJ,
    LIST_STR,
    NUMBER,
    OBJ,
    STR,
    TIME,
    Field,
    choice,
    fk,
)
from ehr.sandbox.api_filters import (
    MAX_DATE_RANGE_DAYS,
    FilterParser,
    appointment_date_is,
    appointment_date_within,
    choice_of,
    contains_any,
    date_is,
    date_on_or_after,
    date_within,
    equals,
    own_id,
    since,
    text_equals,
    text_field,
    via_appointment,
    via_lab_order,
)
from ehr.sandbox.api_writes import CreateHook, DeleteHook, UpdateHook
from ehr.sandbox.paging import (
    APPOINTMENTS_PAGE_SIZE,
    APPOINTMENTS_VERBOSE_PAGE_SIZE,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    SortKey,
)
from ehr.sandbox.store import Key, Record

LIST, RETRIEVE, CREATE, UPDATE, PARTIAL, DESTROY = "L", "R", "C", "U", "P", "D"
READ_ONLY = frozenset({LIST, RETRIEVE})
ALL_METHODS = frozenset({LIST, RETRIEVE, CREATE, UPDATE, PARTIAL, DESTROY})
NO_DELETE = ALL_METHODS - {DESTROY}


def by_id(key: Key, _record: Record) -> SortKey:
    """Default list order: by id."""
    return (key,)


def by_schedule(key: Key, record: Record) -> SortKey:
    """Appointments: by scheduled time, then numeric id, then the raw id."""
    text = str(key)
    return (str(record.get("scheduled_time") or ""), int(text) if text.isdigit() else 0, text)


@dataclass(frozen=True)
class ResourceSpec:
    """Everything the generic handlers need to serve one DrChrono resource."""

    name: str
    scopes: tuple[str, ...]
    methods: frozenset[str]
    fields: Mapping[str, Field] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    filters: Mapping[str, FilterParser] = field(default_factory=dict)
    sort_key: Callable[[Key, Record], SortKey] = by_id
    default_page_size: int = DEFAULT_PAGE_SIZE
    max_page_size: int = MAX_PAGE_SIZE
    verbose_page_size: int | None = None
    # A list request must carry at least one of these filters (appointments), else 400.
    list_requires: tuple[str, ...] = ()
    # Query parameters that must be present on every list/retrieve (insurances: payer_type).
    query_required: tuple[str, ...] = ()
    # Records hidden from lists unless ``show_archived=true`` (soft-deleted appointments).
    hidden: Callable[[Record], bool] | None = None
    string_ids: bool = False
    create_defaults: Mapping[str, Any] = field(default_factory=dict)
    on_create: CreateHook = writes.plain_create
    on_update: UpdateHook = writes.plain_update
    on_delete: DeleteHook = writes.hard_delete

    @property
    def read_scopes(self) -> tuple[str, ...]:
        """Scopes any one of which allows reading."""
        return self.scopes

    @property
    def write_scopes(self) -> tuple[str, ...]:
        """Scopes any one of which allows writing (the ``:write`` half of each pair)."""
        return tuple(s for s in self.scopes if s.endswith(":write"))

    def key_from_path(self, raw: str) -> Key | None:
        """The table key for a path id, or None when it cannot name a record."""
        if self.string_ids:
            return raw if 0 < len(raw) <= 64 else None
        return int(raw) if raw.isdigit() and len(raw) <= 18 else None

    def page_sizes(self, verbose: bool) -> tuple[int, int]:
        """(default, maximum) page size, honouring the lower verbose limit."""
        if verbose and self.verbose_page_size is not None:
            return self.verbose_page_size, self.verbose_page_size
        return self.default_page_size, self.max_page_size


def _pair(*areas: str) -> tuple[str, ...]:
    return tuple(f"{area}:{access}" for area in areas for access in ("read", "write"))


_GENDERS = choice("", "Male", "Female", "Other", "UNK", "ASKU")
_PATIENT_FIELDS: dict[str, Field] = {
    "doctor": fk("doctors"),
    "first_name": STR, "middle_name": STR, "last_name": STR, "nick_name": STR,
    "date_of_birth": DATE, "gender": _GENDERS, "chart_id": STR,
    "email": STR, "home_phone": STR, "cell_phone": STR, "office_phone": STR,
    "address": STR, "city": STR, "state": STR, "zip_code": STR,
    "emergency_contact_name": STR, "emergency_contact_phone": STR,
    "emergency_contact_relation": STR,
    "responsible_party_name": STR, "responsible_party_relation": STR,
    "responsible_party_phone": STR, "responsible_party_email": STR,
    "employer": STR, "employer_address": STR, "employer_city": STR, "employer_state": STR,
    "employer_zip_code": STR, "social_security_number": STR,
    "race": choice("blank", "indian", "asian", "black", "hawaiian", "white", "other", "declined"),
    "race_subcategories": LIST_OBJ,
    "ethnicity": choice("blank", "hispanic", "not_hispanic", "declined"),
    "preferred_language": choice(
        "blank", "eng", "zho", "fra", "ita", "jpn", "por", "rus", "spa", "other", "unknown",
        "declined",
    ),
    "pronouns": choice(
        "", "LA29518-0", "LA29519-8", "LA29520-6", "LA29523-0", "LA29521-4", "LA29515-6",
        "LA29516-4", "LA29517-2", "LA29522-2", "LA29524-8",
    ),
    "patient_status": choice("A", "I", "D"),
    "date_of_death": DATE,
    "patient_payment_profile": choice(
        "", "Cash", "Insurance", "Insurance Out of Network", "Auto Accident", "Worker's Comp"
    ),
    "copay": DECIMAL, "primary_care_physician": STR, "referring_source": STR,
    "referring_doctor": OBJ, "date_of_first_appointment": DATE, "date_of_last_appointment": DATE,
    "default_pharmacy": STR, "preferred_pharmacies": LIST_STR, "disable_sms_messages": BOOL,
    "offices": LIST_INT, "patient_photo": STR, "patient_photo_date": DATE,
    "medication_history_consent": STR, "custom_demographics": LIST_OBJ,
    "patient_flags_attached": LIST_OBJ,
    "primary_insurance": OBJ, "secondary_insurance": OBJ, "tertiary_insurance": OBJ,
    "auto_accident_insurance": OBJ, "workers_comp_insurance": OBJ,
}  # fmt: skip

APPOINTMENT_STATUSES = (
    "", "Arrived", "Checked In", "Checked In Online", "In Room", "In Session", "Complete",
    "Confirmed", "Not Confirmed", "Rescheduled", "Cancelled", "No Show",
)  # fmt: skip
_APPOINTMENT_FIELDS: dict[str, Field] = {
    "doctor": fk("doctors"), "office": fk("offices"), "patient": fk("patients"),
    "exam_room": INT, "scheduled_time": DATETIME, "duration": INT,
    "status": choice(*APPOINTMENT_STATUSES), "custom_status": STR,
    "profile": fk("appointment_profiles"), "reason": STR, "notes": STR, "color": STR,
    "appt_is_break": BOOL, "is_walk_in": BOOL, "allow_overlapping": BOOL,
    "icd9_codes": LIST_STR, "icd10_codes": LIST_STR, "billing_status": STR,
    "billing_provider": STR, "supervising_provider": STR, "payment_profile": STR,
    "reminder_profile": STR, "resubmit_claim_original_id": INT, "cloned_from": INT,
    "recurring_appointment": BOOL, "recurs_every": INT, "recurring_days": LIST_STR,
    "recur_start_date": DATE, "recur_end_date": DATE,
    "vitals": OBJ, "custom_vitals": LIST_OBJ, "custom_fields": LIST_OBJ, "clinical_note": OBJ,
}  # fmt: skip

_PROBLEM_FIELDS: dict[str, Field] = {
    "doctor": fk("doctors"), "patient": fk("patients"), "appointment": fk("appointments"),
    "name": STR, "description": STR, "icd_code": STR, "icd_version": choice("10", "9"),
    "snomed_ct_code": STR, "status": choice("active", "inactive", "resolved"),
    "verification_status": choice(
        "", "unconfirmed", "provisional", "differential", "confirmed", "refuted",
        "entered-in-error",
    ),
    "date_onset": DATE, "date_diagnosis": DATE, "date_changed": DATE, "notes": STR,
}  # fmt: skip

_MEDICATION_FIELDS: dict[str, Field] = {
    "doctor": fk("doctors"), "patient": fk("patients"), "appointment": fk("appointments"),
    "name": STR, "rxnorm": STR, "ndc": STR, "status": choice("active", "inactive"),
    "order_status": choice(
        "", "Ordered", "Administered during visit", "Electronic eRx Sent",
        "Phoned into Pharmacy", "Faxed to Pharmacy", "Paper Rx", "Prescription Printed",
        "Discontinued", "Prescribed by other Dr", "Over the Counter",
    ),
    "dosage_quantity": STR, "dosage_units": STR, "route": STR, "frequency": STR,
    "prn": BOOL, "daw": BOOL, "dispense_quantity": NUMBER, "number_refills": INT,
    "date_prescribed": DATE, "date_started_taking": DATE, "date_stopped_taking": DATE,
    "indication": STR, "signature_note": STR, "pharmacy_note": STR, "notes": STR,
}  # fmt: skip

_ALLERGY_FIELDS: dict[str, Field] = {
    "doctor": fk("doctors"), "patient": fk("patients"), "description": STR, "reaction": STR,
    "status": choice("active", "inactive"),
    "verification_status": choice("confirmed", "unconfirmed", "refuted", "entered-in-error"),
    "snomed_code": STR, "snomed_reaction": STR, "rxnorm": STR, "notes": STR,
}  # fmt: skip

_LAB_ORDER_FIELDS: dict[str, Field] = {
    "doctor": fk("doctors"), "patient": fk("patients"), "sublab": INT,
    "status": choice("N", "Q", "A", "S", "R", "E"), "priority": choice("N", "S"),
    "icd10_codes": LIST_OBJ, "notes": STR, "accession_number": STR,
    "external_requisition_id": STR,
}  # fmt: skip

_LAB_STATUSES = choice("P", "I", "C", "F", "X")
_LAB_TEST_FIELDS: dict[str, Field] = {
    "lab_order": fk("lab_orders"), "code": STR, "name": STR, "description": STR,
    "status": _LAB_STATUSES, "collection_date": STR, "specimen_source": STR,
    "specimen_condition": STR, "specimen_total_volume": NUMBER, "internal_notes": STR,
    "report_notes": STR,
}  # fmt: skip

_LAB_RESULT_FIELDS: dict[str, Field] = {
    "lab_test": fk("lab_tests"), "document": INT, "status": _LAB_STATUSES,
    "observation_code": STR, "observation_description": STR, "test_performed": STR,
    "value": STR, "value_is_numeric": BOOL, "unit": STR, "normal_range": STR,
    "is_abnormal": BOOL,
    "abnormal_status": choice(
        "", "L", "LL", "H", "HH", "<", ">", "A", "AA", "S", "R", "I", "NEG", "POS", "N"
    ),
    "group_code": STR, "specimen_received": STR, "comments": STR,
}  # fmt: skip

_VACCINE_FIELDS: dict[str, Field] = {
    "patient": fk("patients"), "cvx_code": STR, "name": STR, "cpt_code": STR,
    "manufacturer": STR, "lot_number": STR, "amount": NUMBER, "units": STR, "route": STR,
    "site": STR, "administration_start": STR, "administered_at": fk("offices"),
    "administered_by": INT, "ordering_doctor": fk("doctors"),
    "completion_status": choice("CP", "RE", "NA", "PA"), "funding_eligibility": STR,
    "record_source": STR, "observed_immunity": STR, "next_dose_date": DATE,
    "vaccine_inventory": INT, "consent_form": INT, "doses": LIST_OBJ, "comments": STR,
}  # fmt: skip

_LINE_ITEM_FIELDS: dict[str, Field] = {
    "appointment": fk("appointments"), "code": STR, "procedure_type": choice("C", "H", "U", "S"),
    "quantity": NUMBER, "units": STR, "modifiers": LIST_STR, "diagnosis_pointers": LIST_STR,
    "price": DECIMAL, "pt_paid": DECIMAL, "balance_ins": DECIMAL,
}  # fmt: skip

_PAYMENT_FIELDS: dict[str, Field] = {
    "patient": fk("patients"), "doctor": fk("doctors"), "appointment": fk("appointments"),
    "line_item": fk("line_items"), "amount": DECIMAL,
    "payment_method": choice(
        "CASH", "DRCP", "CHCK", "DBIT", "CRDT", "AMEX", "VISA", "MSTR", "DISC", "SQR1", "SQRE",
        "PTPA", "ONPT", "OTHR",
    ),
    "payment_transaction_type": choice("", "REF", "COR", "COPAY", "COINSR", "OTHR"),
    "received_date": DATE, "trace_number": STR, "notes": STR,
}  # fmt: skip

_PROFILE_FIELDS: dict[str, Field] = {
    "name": STR, "doctor": fk("doctors"), "color": STR, "reason": STR, "duration": INT,
    "online_scheduling": BOOL, "sort_order": INT,
}  # fmt: skip

_OFFICE_FIELDS: dict[str, Field] = {
    "start_time": TIME, "end_time": TIME, "online_scheduling": BOOL, "archived": BOOL,
    "online_timeslots": LIST_OBJ, "office_work_schedule": ANY,
}  # fmt: skip

_PATIENT_DOCTOR = {"patient": equals("patient"), "doctor": equals("doctor")}


def _deleted(record: Record) -> bool:
    return bool(record.get("deleted_flag"))


RESOURCES: dict[str, ResourceSpec] = {
    spec.name: spec
    for spec in (
        ResourceSpec("users", (), READ_ONLY, filters={"doctor": equals("doctor")}),
        ResourceSpec("doctors", _pair("user"), READ_ONLY, filters={"doctor": own_id()}),
        ResourceSpec(
            "offices",
            _pair("user"),
            READ_ONLY | {UPDATE, PARTIAL},
            fields=_OFFICE_FIELDS,
            filters={"doctor": equals("doctor")},
        ),
        ResourceSpec(
            "appointment_profiles",
            _pair("calendar", "settings"),
            ALL_METHODS,
            fields=_PROFILE_FIELDS,
            required=("name", "color", "online_scheduling"),
            filters={"doctor": equals("doctor")},
            create_defaults={"archived": False, "duration": 30, "sort_order": 0},
            on_delete=writes.archive,
        ),
        ResourceSpec(
            "patients",
            _pair("patients"),
            ALL_METHODS,
            fields=_PATIENT_FIELDS,
            required=("gender", "doctor"),
            filters={
                "first_name": text_equals("first_name"),
                "last_name": text_equals("last_name"),
                "email": text_equals("email"),
                "chart_id": text_field("chart_id"),
                "gender": text_field("gender"),
                "race": text_field("race"),
                "ethnicity": text_field("ethnicity"),
                "preferred_language": text_field("preferred_language"),
                "doctor": equals("doctor"),
                "date_of_birth": date_is("date_of_birth"),
                "created_at": date_is("created_at"),
                "since": since(),
            },
            create_defaults={"patient_status": "A"},
            on_create=writes.create_patient,
        ),
        ResourceSpec(
            "appointments",
            _pair("calendar", "clinical"),
            ALL_METHODS,
            fields=_APPOINTMENT_FIELDS,
            required=("doctor", "exam_room", "office", "patient", "scheduled_time"),
            filters={
                "status": text_field("status"),
                "patient": equals("patient"),
                "office": equals("office"),
                "doctor": equals("doctor"),
                "since": since(),
                "occurred_since": date_on_or_after("scheduled_time"),
                "date": date_is("scheduled_time"),
                "date_range": date_within("scheduled_time", MAX_DATE_RANGE_DAYS),
            },
            sort_key=by_schedule,
            default_page_size=APPOINTMENTS_PAGE_SIZE,
            max_page_size=APPOINTMENTS_PAGE_SIZE,
            verbose_page_size=APPOINTMENTS_VERBOSE_PAGE_SIZE,
            list_requires=("date", "date_range", "since", "occurred_since"),
            hidden=_deleted,
            string_ids=True,
            on_create=writes.create_appointment,
            on_update=writes.update_appointment,
            on_delete=writes.delete_appointment,
        ),
        ResourceSpec(
            "problems",
            _pair("clinical"),
            NO_DELETE,
            fields=_PROBLEM_FIELDS,
            required=("doctor", "patient"),
            filters=_PATIENT_DOCTOR,
            create_defaults={"icd_version": "10", "status": "active", "verification_status": ""},
        ),
        ResourceSpec(
            "medications",
            _pair("clinical"),
            NO_DELETE,
            fields=_MEDICATION_FIELDS,
            required=("doctor", "patient"),
            filters=_PATIENT_DOCTOR,
        ),
        ResourceSpec(
            "allergies",
            _pair("clinical"),
            NO_DELETE,
            fields=_ALLERGY_FIELDS,
            required=("doctor", "patient"),
            filters=_PATIENT_DOCTOR,
            create_defaults={"status": "active"},
        ),
        ResourceSpec(
            "clinical_notes",
            _pair("clinical"),
            READ_ONLY,
            filters={
                "patient": equals("patient"),
                "doctor": via_appointment("doctor"),
                "office": via_appointment("office"),
                "since": since(),
                "date": appointment_date_is(),
                "date_range": appointment_date_within(MAX_DATE_RANGE_DAYS),
                "created_at": date_is("created_at"),
            },
        ),
        ResourceSpec(
            "lab_orders",
            _pair("labs"),
            ALL_METHODS,
            fields=_LAB_ORDER_FIELDS,
            required=("sublab", "doctor", "patient"),
            filters={"since": since(), "doctor": equals("doctor"), "patient": equals("patient")},
            create_defaults={"status": "N", "priority": "N"},
            on_create=writes.create_lab_order,
        ),
        ResourceSpec(
            "lab_tests",
            _pair("labs"),
            ALL_METHODS,
            fields=_LAB_TEST_FIELDS,
            required=("lab_order",),
            filters={"order": via_lab_order("id"), "doctor": via_lab_order("doctor")},
            create_defaults={"status": "P"},
        ),
        ResourceSpec(
            "lab_results",
            _pair("labs"),
            ALL_METHODS,
            fields=_LAB_RESULT_FIELDS,
            required=("document", "lab_test", "test_performed", "status", "value"),
            filters={"order": via_lab_order("id"), "doctor": via_lab_order("doctor")},
            on_create=writes.link_lab_result,
            on_update=writes.relink_lab_result,
        ),
        ResourceSpec(
            "patient_vaccine_records",
            _pair("clinical"),
            NO_DELETE,
            fields=_VACCINE_FIELDS,
            required=("patient", "cvx_code", "name"),
            filters={
                "cvx_code": text_field("cvx_code"),
                "patient": equals("patient"),
                "since": since(),
                "doctor": equals("ordering_doctor"),
            },
            create_defaults={"completion_status": "CP"},
            on_create=writes.create_vaccine_record,
        ),
        ResourceSpec(
            "line_items",
            _pair("billing"),
            ALL_METHODS,
            fields=_LINE_ITEM_FIELDS,
            required=("appointment", "code", "procedure_type", "diagnosis_pointers"),
            filters={
                "posted_date": date_is("posted_date"),
                "service_date": date_is("service_date"),
                "service_date_range": date_within("service_date"),
                "patient": equals("patient"),
                "office": via_appointment("office"),
                "doctor": equals("doctor"),
                "since": since(),
                "appointment": equals("appointment"),
            },
            create_defaults={"units": "UN", "quantity": 1},
            on_create=writes.create_line_item,
            on_update=writes.update_line_item,
        ),
        ResourceSpec(
            "transactions",
            _pair("billing"),
            READ_ONLY,
            filters={
                "line_item": equals("line_item"),
                "posted_date": date_is("posted_date"),
                "appointment": equals("appointment"),
                "since": since(),
                "doctor": equals("doctor"),
            },
        ),
        ResourceSpec(
            "patient_payments",
            _pair("billing:patient-payment"),
            frozenset({LIST, RETRIEVE, CREATE}),
            fields=_PAYMENT_FIELDS,
            required=("patient",),
            filters={
                "since": since(),
                "posted_date": date_is("posted_date"),
                "patient": equals("patient"),
                "doctor": equals("doctor"),
            },
            on_create=writes.create_patient_payment,
        ),
        ResourceSpec(
            "insurances",
            _pair("user"),
            READ_ONLY,
            filters={
                "payer_type": choice_of("emdeon", "gateway", "ihcfa"),
                "term": contains_any("payer_name", "payer_id", "state"),
            },
            query_required=("payer_type",),
            string_ids=True,
        ),
        ResourceSpec(
            "eligibility_checks",
            _pair("calendar", "patients"),
            READ_ONLY,
            filters={
                "appointment": equals("appointment"),
                "appointment_date": appointment_date_is(),
                "appointment_date_range": appointment_date_within(),
                "query_date": date_is("query_date"),
                "query_date_range": date_within("query_date"),
                "doctor": via_appointment("doctor"),
                "patient": equals("patient"),
            },
        ),
        ResourceSpec(
            "billing_profiles", _pair("billing"), READ_ONLY, filters={"doctor": equals("doctor")}
        ),
    )
}
