"""The vendor-neutral EHR interface every backend implements and every service calls.

``ehr/drchrono/`` implements it over DrChrono's REST API; a SMART-on-FHIR backend can sit
beside it later, and tests use a fake built from JSON fixtures. Methods speak in the models of
``ehr.models*`` only: no URLs, vendor field names or HTTP types cross this line.

Common behaviour of every method:

* Listing methods return a ``Page``: they follow upstream paging themselves up to the
  backend's page cap and set ``truncated`` when it stopped early; ``Page.quality`` tallies
  tolerated data problems. ``iter_*`` methods yield one ``Page`` per upstream page with a
  resumable ``next_cursor``, so a sync can commit page by page and stop when its budget ends.
* Every method may raise ``NotConnectedError`` / ``ReauthorizationRequiredError`` (reconnect),
  ``UpstreamForbiddenError``, ``RateLimitedError``, ``UpstreamUnavailableError``,
  ``UpstreamTimeoutError``, ``UpstreamDataError`` (incl. ``UpstreamTooLargeError``),
  ``UnsafeRedirectError``, ``PaginationLoopError`` and ``UnexpectedResponseError``. Only the
  additional errors are named per method.
* Writes are sent at most once: an ambiguous outcome raises ``WriteOutcomeUnknownError`` and
  the caller must check upstream before retrying. Edits given ``expected`` (the record as the
  user opened it) re-read it first and raise ``ChangedUpstreamError`` without writing when it
  differs.
* A backend that cannot do something raises ``UnsupportedOperationError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Protocol, runtime_checkable

from ehr.models import (
    Appointment,
    AppointmentChanges,
    AppointmentDraft,
    AppointmentProfile,
    AppointmentStatus,
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

__all__ = ["EHRBackend"]


@runtime_checkable
class EHRBackend(Protocol):
    """Operations the dashboard needs from an EHR, in vendor-neutral terms."""

    # --- practice ---------------------------------------------------------------------------

    def current_user(self) -> EHRUser:
        """The EHR user the practice connected with, and their practice group."""
        ...

    def list_doctors(self) -> Page[Doctor]:
        """Every provider in the connected practice."""
        ...

    def list_offices(self) -> Page[Office]:
        """Every office of the practice, with its exam rooms."""
        ...

    def list_appointment_profiles(
        self, *, doctor_id: int | None = None
    ) -> Page[AppointmentProfile]:
        """Visit types (default duration, reason, colour), optionally for one doctor."""
        ...

    def list_insurances(self, *, term: str | None = None) -> Page[Insurance]:
        """Payers from the payer directory, optionally matching ``term`` (name, id or state)."""
        ...

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
        """One page of patients matching all given criteria; pass ``next_cursor`` to go on.

        ``name`` matches first or last name; ``updated_since`` keeps patients created or
        changed on or after that date (a directory refresh). With no criteria it lists
        patients in upstream order. ``page_size`` is capped by the backend.
        """
        ...

    def get_patient(self, patient_id: int) -> Patient:
        """One patient's demographics. Raises ``NotFoundError``."""
        ...

    def create_patient(self, draft: PatientDraft, *, allow_duplicate: bool = False) -> Patient:
        """Register a patient and return it as stored upstream.

        Raises ``DuplicatePatientError`` when upstream suspects a duplicate (retry with
        ``allow_duplicate=True`` once the user confirms) and ``ValidationFailedError`` with
        model field names.
        """
        ...

    def update_patient(
        self, patient_id: int, changes: PatientChanges, *, expected: Patient | None = None
    ) -> None:
        """Change only the given demographic fields; re-read with ``get_patient`` to see them.

        Raises ``NotFoundError``, ``ValidationFailedError``, ``ChangedUpstreamError``.
        """
        ...

    def delete_patient(self, patient_id: int) -> None:
        """Delete a patient upstream. Raises ``NotFoundError`` and ``ConflictError``."""
        ...

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
        """Appointments scheduled from ``start`` to ``end`` inclusive (practice-local dates).

        Long ranges are split into upstream-sized windows by the backend. Raises
        ``ValueError`` when ``end`` is before ``start``.
        """
        ...

    def iter_appointments(
        self, *, since: date | None = None, cursor: str | None = None
    ) -> Iterator[Page[Appointment]]:
        """Appointments created or updated on or after ``since``, page by page, for syncing."""
        ...

    def get_appointment(self, appointment_id: str) -> Appointment:
        """One appointment. Raises ``NotFoundError``."""
        ...

    def create_appointment(
        self, draft: AppointmentDraft, *, allow_overlap: bool = False
    ) -> Appointment:
        """Book an appointment and return it as stored upstream.

        Raises ``OverlappingAppointmentError`` (retry with ``allow_overlap=True`` once the
        user confirms) and ``ValidationFailedError``.
        """
        ...

    def update_appointment(
        self,
        appointment_id: str,
        changes: AppointmentChanges,
        *,
        allow_overlap: bool = False,
        expected: Appointment | None = None,
    ) -> None:
        """Change only the given appointment fields (reschedule, move room, change reason).

        Raises ``NotFoundError``, ``OverlappingAppointmentError``, ``ValidationFailedError``,
        ``ChangedUpstreamError``.
        """
        ...

    def set_appointment_status(
        self, appointment_id: str, status: AppointmentStatus | Other
    ) -> None:
        """Set the status (check in, no-show, complete, or a practice's custom status).

        Raises ``NotFoundError`` and ``ValidationFailedError``.
        """
        ...

    # --- clinical ---------------------------------------------------------------------------

    def list_problems(self, patient_id: int) -> Page[Problem]:
        """The patient's problem list."""
        ...

    def create_problem(self, draft: ProblemDraft) -> Problem:
        """Add a problem. Raises ``ValidationFailedError``."""
        ...

    def update_problem_status(
        self, problem_id: int, status: ClinicalStatus, *, expected: Problem | None = None
    ) -> None:
        """Change a problem's status. Raises ``NotFoundError``, ``ChangedUpstreamError``."""
        ...

    def list_medications(self, patient_id: int) -> Page[Medication]:
        """The patient's medication list."""
        ...

    def create_medication(self, draft: MedicationDraft) -> Medication:
        """Add a medication. Raises ``ValidationFailedError``."""
        ...

    def update_medication_status(
        self, medication_id: int, status: ClinicalStatus, *, expected: Medication | None = None
    ) -> None:
        """Change a medication's status. Raises ``NotFoundError``, ``ChangedUpstreamError``."""
        ...

    def list_allergies(self, patient_id: int) -> Page[Allergy]:
        """The patient's allergies."""
        ...

    def create_allergy(self, draft: AllergyDraft) -> Allergy:
        """Add an allergy. Raises ``ValidationFailedError``."""
        ...

    def update_allergy_status(
        self, allergy_id: int, status: ClinicalStatus, *, expected: Allergy | None = None
    ) -> None:
        """Change an allergy's status. Raises ``NotFoundError``, ``ChangedUpstreamError``."""
        ...

    def list_vitals(
        self, patient_id: int, *, start: date | None = None, end: date | None = None
    ) -> Page[Vital]:
        """Vital-sign readings for the patient, oldest first, optionally within dates."""
        ...

    def list_lab_results(self, patient_id: int) -> Page[LabResult]:
        """The patient's lab results."""
        ...

    def list_clinical_notes(
        self, patient_id: int, *, start: date | None = None, end: date | None = None
    ) -> Page[ClinicalNote]:
        """The patient's clinical notes, optionally for visits within dates."""
        ...

    def get_clinical_note(self, note_id: int) -> ClinicalNote:
        """One clinical note with its sections. Raises ``NotFoundError``."""
        ...

    # --- billing ----------------------------------------------------------------------------

    def iter_line_items(
        self, *, since: date | None = None, cursor: str | None = None
    ) -> Iterator[Page[LineItem]]:
        """Billing line items created or updated on or after ``since``, page by page."""
        ...

    def iter_transactions(
        self, *, since: date | None = None, cursor: str | None = None
    ) -> Iterator[Page[Transaction]]:
        """Insurance payments and adjustments posted on or after ``since``, page by page."""
        ...

    def iter_patient_payments(
        self, *, since: date | None = None, cursor: str | None = None
    ) -> Iterator[Page[PatientPayment]]:
        """Patient payments and refunds on or after ``since``, page by page."""
        ...
