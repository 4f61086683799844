"""SECURITY.md RL-01..RL-04 end to end: the DrChrono backend against the sandbox's fault knobs.

The transport's own tests pin each rule against a scripted stub; these prove the same rules
hold through the real backend and a real (misbehaving) sandbox over HTTP. Sleeps are recorded,
never slept.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from ehr.drchrono.backend import DrChronoBackend
from ehr.errors import (
    EHRError,
    RateLimitedError,
    UnsafeRedirectError,
    UpstreamDataError,
    UpstreamUnavailableError,
    WriteOutcomeUnknownError,
)
from ehr.models import Gender, PatientDraft
from ehr.retry import DEFAULT_MAX_ATTEMPTS
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.transport import EHRTransport
from tests.ehr.drchrono.conftest import CLINIC, PRACTICE_TZ, StaticTokens, issue_token

LOG_WAIT_S = 2.0


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(
        clinic=CLINIC, rate_limit_per_hour=0, burst_per_second=0, send_retry_after=True
    )
    started = SandboxServer(config).start()
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def _no_faults_left_behind(server: SandboxServer) -> Iterator[None]:
    server.faults.reset()
    yield
    server.faults.reset()


class Recorder:
    """A backend whose transport records its sleeps instead of sleeping."""

    def __init__(self, server: SandboxServer) -> None:
        self.sleeps: list[float] = []
        self.transport = EHRTransport(
            server.base_url, StaticTokens(issue_token(server)), sleep=self.sleeps.append
        )
        self.backend = DrChronoBackend(self.transport, practice_tz=PRACTICE_TZ)


def _requests(server: SandboxServer, method: str, path: str, at_least: int = 0) -> int:
    """Logged requests for ``method path``; waits briefly for the log to catch up to
    ``at_least`` (the sandbox logs just after answering)."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        count = sum(1 for e in server.request_log.entries() if (e.method, e.path) == (method, path))
        if count >= at_least or time.monotonic() > deadline:
            return count
        time.sleep(0.005)


def test_a_429_with_retry_after_is_waited_out_then_succeeds(server: SandboxServer) -> None:
    client = Recorder(server)
    server.faults.update(throttle_next=1)
    doctors = client.backend.list_doctors()
    assert doctors.items
    assert client.transport.requests_made == 2
    assert sum(client.sleeps) >= 1.0  # the sandbox said Retry-After: 1


def test_endless_429s_stop_after_the_attempt_limit(server: SandboxServer) -> None:
    client = Recorder(server)
    server.faults.update(throttle_next=50)
    with pytest.raises(RateLimitedError):
        client.backend.list_doctors()
    assert client.transport.requests_made == DEFAULT_MAX_ATTEMPTS


def test_a_post_answered_503_is_sent_exactly_once(server: SandboxServer) -> None:
    client = Recorder(server)
    doctor = client.backend.list_doctors().items[0]
    before = _requests(server, "POST", "/api/patients")
    server.faults.update(error_503_rate=1.0)
    draft = PatientDraft(
        first_name="Once",
        last_name="Only",
        date_of_birth=dt.date(1980, 1, 2),
        gender=Gender.FEMALE,
        doctor_id=doctor.id,
    )
    with pytest.raises((UpstreamUnavailableError, WriteOutcomeUnknownError)) as raised:
        client.backend.create_patient(draft)
    assert client.transport.requests_made == 2  # one GET (doctors) and one POST, never resent
    server.faults.reset()
    assert _requests(server, "POST", "/api/patients", at_least=before + 1) == before + 1
    assert isinstance(raised.value, EHRError)
    # Any sleep here is the client-side pacing before the first send, never a retry wait.
    assert len(client.sleeps) <= 1


def test_a_next_link_to_another_host_is_refused_and_never_followed(
    server: SandboxServer,
) -> None:
    client = Recorder(server)
    server.faults.update(foreign_next_link=True)
    with pytest.raises(UnsafeRedirectError):
        client.backend.list_appointments(CLINIC.today - dt.timedelta(days=60), CLINIC.today)
    # Only the first page was fetched: the foreign next link was never requested.
    assert client.transport.requests_made == 1


@pytest.mark.parametrize("fault", ["truncated_json_next", "malformed_json_next", "html_200_next"])
def test_a_broken_body_is_a_data_error(server: SandboxServer, fault: str) -> None:
    client = Recorder(server)
    server.faults.update(**{fault: 1})
    with pytest.raises(UpstreamDataError):
        client.backend.list_doctors()
