"""``EHRBackend`` over DrChrono's REST API (v4), through one ``EHRTransport``.

The transport owns HTTP safety (auth, retries, redirects, body limits, error mapping); this
class chooses endpoints and parameters (``ehr.drchrono.endpoints``), walks pages
(``ehr.drchrono.pages``) and maps JSON to models (``ehr.drchrono.mapping``). The protocol's common behaviour holds throughout:

* Lists ask for the largest page each endpoint allows and make one call per upstream page,
  never one per record; a listing stops after ``max_pages`` pages with ``truncated=True``.
* ``iter_*`` and ``search_patients`` return one upstream page at a time with an opaque,
  resumable cursor (see ``endpoints``); a cursor for another endpoint is a ``ValueError`` and
  one for another origin an ``UnsafeRedirectError``, raised before anything is fetched.
* Edits given ``expected`` re-read the record and raise ``ChangedUpstreamError`` without
  writing when it differs; they PATCH only fields that change. Validation errors carry model
  field names.
* Records another patient's listing returned are dropped, so a filter upstream ignores can
  never put one patient's data in another's chart.
* It is also a ``WindowedSource`` (``ehr.sync``): line items and appointments by date window,
  through DrChrono's async batch lists (``ehr.drchrono.batch``), so the mirror backfills
  newest month first.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, tzinfo
from typing import Any, TypeVar, cast

from ehr.drchrono import endpoints as ep
from ehr.drchrono import mapping as m
from ehr.drchrono.batch import BATCH_KINDS, MAX_BATCH_PAGE_SIZE, BatchLists
from ehr.drchrono.pages import Mapper, Pager
from ehr.errors import (
    ChangedUpstreamError,
    UnsupportedOperationError,
    ValidationFailedError,
)
from ehr.models import (
    Appointment,
    AppointmentChanges,
    AppointmentDraft,
    AppointmentProfile,
    AppointmentStatus,
    DataQuality,
    Doctor,
    EHRUser,
    Office,
    Other,
    Page,
    Patient,
    PatientChanges,
    PatientDraft,
)
from ehr.models_billing import Insurance, LineItem, PatientPayment, Transaction
from ehr.models_clinical import (
    Allergy,
    AllergyDraft,
    ClinicalNote,
    ClinicalStatus,
    LabResult,
    Medication,
    MedicationDraft,
    Problem,
    ProblemDraft,
    Vital,
)
from ehr.paging import MAX_PAGE_SIZE, MAX_PAGES
from ehr.transport import EHRTransport

__all__ = ["DrChronoBackend"]

T = TypeVar("T")
_Clinical = TypeVar("_Clinical", Problem, Medication, Allergy)

# Verbose-only on appointments, so absent from a non-verbose list: never a sign of a change.
_APPOINTMENT_VERBOSE_FIELDS = frozenset({"status_transitions"})


@contextmanager
def _form_fields(fields: Mapping[str, str]) -> Iterator[None]:
    """Rename DrChrono field names in a ``ValidationFailedError`` to model field names."""
    try:
        yield
    except ValidationFailedError as exc:
        raise exc.renamed(m.form_field_names(fields)) from None


def _unchanged(expected: object, current: object, ignore: frozenset[str] = frozenset()) -> bool:
    return all(
        getattr(expected, f.name) == getattr(current, f.name)
        for f in dataclasses.fields(current)  # type: ignore[arg-type]
        if f.name not in ignore
    )


def _only_changed(changes: Mapping[str, Any], current: object) -> dict[str, Any]:
    """The requested changes whose value differs from the record's current one."""
    return {k: v for k, v in changes.items() if getattr(current, k, object()) != v}


def _require_upstream_status(status: ClinicalStatus) -> None:
    """Only problems resolve: DrChrono's medications and allergies are active or inactive
    (drchrono.md §3.8-3.9), so ``RESOLVED`` cannot be written to them."""
    if status is ClinicalStatus.RESOLVED:
        raise UnsupportedOperationError(details={"status": status.value})


def _within(moment: datetime | None, start: date | None, end: date | None, tz: tzinfo) -> bool:
    if start is None and end is None:
        return True
    if moment is None:
        return False
    day = moment.astimezone(tz).date()
    return (start is None or day >= start) and (end is None or day <= end)


class DrChronoBackend:
    """The dashboard's EHR operations against DrChrono (see the module docstring).

    ``practice_tz`` reads and writes DrChrono's zone-less timestamps; ``max_pages`` caps the
    upstream pages one call fetches (``ehr.paging.MAX_PAGES`` by default). ``batch_page_size``
    and ``batch_sleep`` (the wait between looks at a batch job) are for ``iter_window``.
    """

    windowed_kinds: frozenset[str] = BATCH_KINDS

    def __init__(
        self,
        transport: EHRTransport,
        *,
        practice_tz: tzinfo,
        max_pages: int = MAX_PAGES,
        batch_page_size: int = MAX_BATCH_PAGE_SIZE,
        batch_sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transport = transport
        self._tz = practice_tz
        self._pager = Pager(transport, practice_tz, max_pages)
        self._batch = BatchLists(
            transport,
            practice_tz,
            max_pages=max_pages,
            page_size=batch_page_size,
            sleep=batch_sleep,
        )

    def _get(self, mapper: Mapper[T], path: str, record_id: int | str) -> T:
        body = self._transport.get_json(ep.record_path(path, record_id))
        return mapper(body, self._tz, DataQuality())

    # --- practice ---------------------------------------------------------------------------

    def current_user(self) -> EHRUser:
        """The connected user (DrChrono answers ``users/current`` with a same-origin 302)."""
        body = self._transport.get_json(ep.USERS_CURRENT)
        return m.user_from_drchrono(body, self._tz, DataQuality())

    def list_doctors(self) -> Page[Doctor]:
        """Every provider in the practice."""
        return self._pager.listing(m.doctor_from_drchrono, (ep.DOCTORS, {}))

    def list_offices(self) -> Page[Office]:
        """Every office, with its exam rooms."""
        return self._pager.listing(m.office_from_drchrono, (ep.OFFICES, {}))

    def list_appointment_profiles(
        self, *, doctor_id: int | None = None
    ) -> Page[AppointmentProfile]:
        """Visit types, optionally one doctor's."""
        params = {} if doctor_id is None else {"doctor": doctor_id}
        return self._pager.listing(
            m.appointment_profile_from_drchrono, (ep.APPOINTMENT_PROFILES, params)
        )

    def list_insurances(self, *, term: str | None = None) -> Page[Insurance]:
        """Payers of the ``PAYER_DIRECTORY`` matching ``term`` (name, payer id or state)."""
        params: dict[str, str] = {"payer_type": ep.PAYER_DIRECTORY}
        if term:
            params["term"] = term
        return self._pager.listing(m.insurance_from_drchrono, (ep.INSURANCES, params))

    # --- patients ---------------------------------------------------------------------------

    def search_patients(
        self,
        *,
        name: str | None = None,
        date_of_birth: date | None = None,
        chart_id: str | None = None,
        updated_since: date | None = None,
        cursor: str | None = None,
        page_size: int | None = None,
    ) -> Page[Patient]:
        """One page of matching patients; pass the same criteria with ``next_cursor`` to go on.

        DrChrono has no "first or last name" filter, so a name search is two queries, first
        name then last name, walked one after the other (a patient found by both is returned
        once). When the first query ends empty the second starts in the same call, so a page
        is empty only when nothing (more) matches. ``page_size`` defaults to and is capped at
        ``MAX_PAGE_SIZE``; with a cursor the size is the cursor's. Raises ``ValueError`` for a
        ``page_size`` below 1 or a cursor that is not this search's.
        """
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be at least 1")
        size = min(page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        queries = [
            {**query, "page_size": size}
            for query in ep.name_search_queries(name, date_of_birth, chart_id, updated_since)
        ]
        return self._pager.chained_page(
            m.patient_from_drchrono,
            ep.PATIENTS,
            queries,
            cursor,
            skip=lambda record, index: ep.found_by_earlier_query(record, queries[:index]),
        )

    def get_patient(self, patient_id: int) -> Patient:
        """One patient's demographics. Raises ``NotFoundError``."""
        return self._get(m.patient_from_drchrono, ep.PATIENTS, patient_id)

    def create_patient(self, draft: PatientDraft, *, allow_duplicate: bool = False) -> Patient:
        """Register a patient. Raises ``DuplicatePatientError`` (DrChrono's 409) unless
        ``allow_duplicate``, and ``ValidationFailedError`` with model field names."""
        body = m.patient_to_drchrono(draft, self._tz)
        params = ep.with_duplicate_override(allow_duplicate)
        with _form_fields(m.PATIENT_FIELDS):
            reply = self._transport.write("POST", ep.PATIENTS, json=body, params=params)
        return m.patient_from_drchrono(reply.body, self._tz, DataQuality())

    def update_patient(
        self, patient_id: int, changes: PatientChanges, *, expected: Patient | None = None
    ) -> None:
        """PATCH the given demographics. Raises ``NotFoundError``, ``ValidationFailedError``
        and ``ChangedUpstreamError``."""
        values: Mapping[str, Any] = changes
        if expected is not None:
            current = self.get_patient(patient_id)
            self._require_unchanged(expected, current, "patient", patient_id)
            values = _only_changed(changes, current)
        body = m.patient_to_drchrono(cast(PatientChanges, values), self._tz)
        if body:
            with _form_fields(m.PATIENT_FIELDS):
                self._transport.write("PATCH", ep.record_path(ep.PATIENTS, patient_id), json=body)

    def delete_patient(self, patient_id: int) -> None:
        """Delete a patient. Raises ``NotFoundError`` and ``ConflictError``."""
        self._transport.write("DELETE", ep.record_path(ep.PATIENTS, patient_id))

    @staticmethod
    def _require_unchanged(
        expected: object,
        current: object,
        resource: str,
        record_id: int | str,
        ignore: frozenset[str] = frozenset(),
    ) -> None:
        if not _unchanged(expected, current, ignore):
            raise ChangedUpstreamError(details={"resource": resource, "id": record_id})

    # --- scheduling -------------------------------------------------------------------------

    def list_appointments(
        self,
        start: date,
        end: date,
        *,
        doctor_id: int | None = None,
        office_id: int | None = None,
        patient_id: int | None = None,
        status: AppointmentStatus | Other | None = None,
    ) -> Page[Appointment]:
        """Appointments from ``start`` to ``end`` (inclusive), one ``date_range`` query per
        190-day window. Raises ``ValueError`` when ``end`` is before ``start``."""
        label = None if status is None else m.appointment_to_drchrono({"status": status}, self._tz)
        windows = ep.appointment_window_params(
            start,
            end,
            doctor_id=doctor_id,
            office_id=office_id,
            patient_id=patient_id,
            status_label=None if label is None else label["status"],
        )
        return self._pager.listing(
            m.appointment_from_drchrono,
            *((ep.APPOINTMENTS, params) for params in windows),
            # A booked (blank) status cannot be filtered upstream; checking every status here
            # also guards against a filter upstream ignores.
            keep=None if status is None else (lambda a: a.status == status),
        )

    def iter_appointments(
        self, *, since: date | None = None, cursor: str | None = None
    ) -> Iterator[Page[Appointment]]:
        """Appointments created or updated on or after ``since`` (all when None), page by page.

        Verbose, for the status history the visit-cycle analytics need. DrChrono requires a
        date filter on appointment lists, so "all" is ``since`` = ``endpoints.EARLIEST``.
        """
        params = ep.appointment_sync_params(since)
        return self._pager.stream(m.appointment_from_drchrono, ep.APPOINTMENTS, params, cursor)

    def get_appointment(self, appointment_id: str) -> Appointment:
        """One appointment. Raises ``NotFoundError``."""
        return self._get(m.appointment_from_drchrono, ep.APPOINTMENTS, appointment_id)

    def create_appointment(
        self, draft: AppointmentDraft, *, allow_overlap: bool = False
    ) -> Appointment:
        """Book an appointment. Raises ``OverlappingAppointmentError`` unless
        ``allow_overlap``, and ``ValidationFailedError``."""
        body = ep.with_overlap_override(m.appointment_to_drchrono(draft, self._tz), allow_overlap)
        with _form_fields(m.APPOINTMENT_FIELDS):
            reply = self._transport.write("POST", ep.APPOINTMENTS, json=body)
        return m.appointment_from_drchrono(reply.body, self._tz, DataQuality())

    def update_appointment(
        self,
        appointment_id: str,
        changes: AppointmentChanges,
        *,
        allow_overlap: bool = False,
        expected: Appointment | None = None,
    ) -> None:
        """PATCH the given fields. Raises ``NotFoundError``, ``OverlappingAppointmentError``,
        ``ValidationFailedError`` and ``ChangedUpstreamError``."""
        values: Mapping[str, Any] = changes
        if expected is not None:
            current = self.get_appointment(appointment_id)
            self._require_unchanged(
                expected, current, "appointment", appointment_id, _APPOINTMENT_VERBOSE_FIELDS
            )
            values = _only_changed(changes, current)
        body = m.appointment_to_drchrono(cast(AppointmentChanges, values), self._tz)
        if body:
            self._patch_appointment(appointment_id, ep.with_overlap_override(body, allow_overlap))

    def set_appointment_status(
        self, appointment_id: str, status: AppointmentStatus | Other
    ) -> None:
        """Set the status. Raises ``NotFoundError`` and ``ValidationFailedError``."""
        self._patch_appointment(
            appointment_id, m.appointment_to_drchrono({"status": status}, self._tz)
        )

    def _patch_appointment(self, appointment_id: str, body: dict[str, Any]) -> None:
        path = ep.record_path(ep.APPOINTMENTS, appointment_id)
        with _form_fields(m.APPOINTMENT_FIELDS):
            self._transport.write("PATCH", path, json=body)

    # --- clinical ---------------------------------------------------------------------------

    def list_problems(self, patient_id: int) -> Page[Problem]:
        """The patient's problem list."""
        query = (ep.PROBLEMS, {"patient": patient_id})
        return self._pager.listing(
            m.problem_from_drchrono, query, keep=lambda p: p.patient_id == patient_id
        )

    def create_problem(self, draft: ProblemDraft) -> Problem:
        """Add a problem. Raises ``ValidationFailedError``."""
        return self._create(
            m.problem_from_drchrono, ep.PROBLEMS, m.problem_to_drchrono(draft, self._tz)
        )

    def update_problem_status(
        self, problem_id: int, status: ClinicalStatus, *, expected: Problem | None = None
    ) -> None:
        """Change a problem's status. Raises ``NotFoundError``, ``ChangedUpstreamError``."""
        self._set_status(m.problem_from_drchrono, ep.PROBLEMS, problem_id, status, expected)

    def list_medications(self, patient_id: int) -> Page[Medication]:
        """The patient's medication list."""
        query = (ep.MEDICATIONS, {"patient": patient_id})
        return self._pager.listing(
            m.medication_from_drchrono, query, keep=lambda x: x.patient_id == patient_id
        )

    def create_medication(self, draft: MedicationDraft) -> Medication:
        """Add a medication. Raises ``ValidationFailedError``."""
        body = m.medication_to_drchrono(draft, self._tz)
        return self._create(m.medication_from_drchrono, ep.MEDICATIONS, body)

    def update_medication_status(
        self, medication_id: int, status: ClinicalStatus, *, expected: Medication | None = None
    ) -> None:
        """Change a medication's status. Raises ``NotFoundError``, ``ChangedUpstreamError``,
        and ``UnsupportedOperationError`` for ``RESOLVED`` (DrChrono has no such status)."""
        _require_upstream_status(status)
        self._set_status(
            m.medication_from_drchrono, ep.MEDICATIONS, medication_id, status, expected
        )

    def list_allergies(self, patient_id: int) -> Page[Allergy]:
        """The patient's allergies (verbose: the description is verbose-only in lists)."""
        query = (ep.ALLERGIES, {"patient": patient_id, "verbose": "true"})
        return self._pager.listing(
            m.allergy_from_drchrono, query, keep=lambda a: a.patient_id == patient_id
        )

    def create_allergy(self, draft: AllergyDraft) -> Allergy:
        """Add an allergy. Raises ``ValidationFailedError``."""
        return self._create(
            m.allergy_from_drchrono, ep.ALLERGIES, m.allergy_to_drchrono(draft, self._tz)
        )

    def update_allergy_status(
        self, allergy_id: int, status: ClinicalStatus, *, expected: Allergy | None = None
    ) -> None:
        """Change an allergy's status. Raises ``NotFoundError``, ``ChangedUpstreamError``,
        and ``UnsupportedOperationError`` for ``RESOLVED`` (DrChrono has no such status)."""
        _require_upstream_status(status)
        self._set_status(m.allergy_from_drchrono, ep.ALLERGIES, allergy_id, status, expected)

    def _create(self, mapper: Mapper[T], path: str, body: dict[str, Any]) -> T:
        with _form_fields(m.CLINICAL_FIELDS):
            reply = self._transport.write("POST", path, json=body)
        return mapper(reply.body, self._tz, DataQuality())

    def _set_status(
        self,
        mapper: Mapper[_Clinical],
        path: str,
        record_id: int,
        status: ClinicalStatus,
        expected: _Clinical | None,
    ) -> None:
        if expected is not None:
            current = self._get(mapper, path, record_id)
            self._require_unchanged(expected, current, path.rsplit("/", 1)[-1], record_id)
            if current.status == status:
                return
        self._transport.write(
            "PATCH", ep.record_path(path, record_id), json=m.clinical_status_to_drchrono(status)
        )

    def list_vitals(
        self, patient_id: int, *, start: date | None = None, end: date | None = None
    ) -> Page[Vital]:
        """Readings from the patient's verbose appointments (DrChrono has no vitals endpoint),
        oldest first. ``occurred_since`` narrows upstream; the dates are checked here."""
        params = ep.patient_visits_params(patient_id, start, verbose=True)
        fetched = self._pager.fetch((ep.APPOINTMENTS, params))
        readings = [
            vital
            for record in fetched.records
            for vital in m.vitals_from_drchrono(record, self._tz, fetched.quality)
            if vital.patient_id == patient_id and _within(vital.taken_at, start, end, self._tz)
        ]
        readings.sort(key=lambda v: (v.taken_at is None, v.taken_at or datetime.min))
        return Page(tuple(readings), truncated=fetched.truncated, quality=fetched.quality)

    def list_lab_results(self, patient_id: int) -> Page[LabResult]:
        """Results of the patient's lab orders.

        ``/api/lab_results`` filters only by order or doctor, so this lists the patient's
        orders, then the results of each order (one list call per order; the page cap bounds
        the total and sets ``truncated``).
        """
        orders = self._pager.fetch((ep.LAB_ORDERS, {"patient": patient_id}))
        order_ids = ep.lab_order_ids(orders.records, patient_id)
        results = self._pager.fetch(*((ep.LAB_RESULTS, {"order": oid}) for oid in order_ids))
        quality = orders.quality
        quality.merge(results.quality)
        items = tuple(
            m.lab_result_from_drchrono(r, self._tz, quality, patient_id=patient_id)
            for r in results.records
        )
        truncated = orders.truncated or results.truncated
        return Page(items, truncated=truncated, quality=quality)

    def list_clinical_notes(
        self, patient_id: int, *, start: date | None = None, end: date | None = None
    ) -> Page[ClinicalNote]:
        """The patient's notes; with dates, only notes of visits scheduled within them.

        A note's visit date is its appointment's, so dates cost one more listing: the
        patient's appointments since ``start``. That is a few pages for any range, where
        DrChrono's own ``date_range`` filter would take one query per 190 days and cannot be
        open-ended.
        """
        notes = self._pager.listing(
            m.clinical_note_from_drchrono,
            (ep.CLINICAL_NOTES, {"patient": patient_id}),
            keep=lambda n: n.patient_id == patient_id,
        )
        if start is None and end is None:
            return notes
        visits = self._pager.listing(
            m.appointment_from_drchrono,
            (ep.APPOINTMENTS, ep.patient_visits_params(patient_id, start, verbose=False)),
            keep=lambda a: _within(a.scheduled_time, start, end, self._tz),
        )
        in_range = {visit.id for visit in visits.items}
        kept = tuple(n for n in notes.items if n.appointment_id in in_range)
        truncated = notes.truncated or visits.truncated
        return Page(kept, truncated=truncated, quality=notes.quality)

    def get_clinical_note(self, note_id: int) -> ClinicalNote:
        """One clinical note with its sections. Raises ``NotFoundError``."""
        return self._get(m.clinical_note_from_drchrono, ep.CLINICAL_NOTES, note_id)

    # --- billing ----------------------------------------------------------------------------

    def iter_line_items(
        self, *, since: date | None = None, cursor: str | None = None
    ) -> Iterator[Page[LineItem]]:
        """Line items created or updated on or after ``since`` (all when None), page by page."""
        return self._pager.stream(
            m.line_item_from_drchrono, ep.LINE_ITEMS, ep.sync_params(since), cursor
        )

    def iter_transactions(
        self, *, since: date | None = None, cursor: str | None = None
    ) -> Iterator[Page[Transaction]]:
        """Insurance payments and adjustments on or after ``since``, page by page."""
        return self._pager.stream(
            m.transaction_from_drchrono, ep.TRANSACTIONS, ep.sync_params(since), cursor
        )

    def iter_patient_payments(
        self, *, since: date | None = None, cursor: str | None = None
    ) -> Iterator[Page[PatientPayment]]:
        """Patient payments and refunds on or after ``since``, page by page."""
        return self._pager.stream(
            m.patient_payment_from_drchrono, ep.PATIENT_PAYMENTS, ep.sync_params(since), cursor
        )

    def iter_window(
        self, kind: str, start: date, end: date | None, *, cursor: str | None = None
    ) -> Iterator[Page[Any]]:
        """``WindowedSource``: line items by service date or appointments (deleted ones
        included) by scheduled date, ``start``..``end``, one batch page at a time."""
        return self._batch.iter_window(kind, start, end, cursor=cursor)
