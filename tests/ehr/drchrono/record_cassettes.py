"""Record the DrChrono contract cassettes against a fresh sandbox: ``python -m
tests.ehr.drchrono.record_cassettes`` (or ``record_all()``).

Each scenario is a few representative backend calls; ``test_contract_cassettes`` replays the
same scenarios with ``record_mode="none"`` and checks the parsed models. Recording scrubs what
must never be committed (STYLE.md practice 18, TOOLCHAIN.md §4):

* the ``Authorization`` and correlation-id request headers;
* tokens, codes and secrets anywhere in request or response JSON bodies, and any ``Bearer``
  string (vcrpy's request filters do not touch responses);
* patient demographics (names, birth dates, contacts) in bodies, replaced by placeholders;
* the sandbox's random port: every URL, in bodies and ``Location`` headers, is rewritten to
  ``FIXED_BASE``, and requests match on method, path and query only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import vcr
from vcr.request import Request

from ehr.drchrono.backend import DrChronoBackend
from ehr.errors import DuplicatePatientError
from ehr.models import Gender, PatientDraft
from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.server import SandboxConfig, SandboxServer
from ehr.transport import EHRTransport
from tests.ehr.drchrono.conftest import PRACTICE_TZ, StaticTokens

CASSETTE_DIR = Path(__file__).with_name("cassettes")
# The host every recorded URL is rewritten to; replay runs a backend against it.
FIXED_BASE = "http://127.0.0.1:8999"
# A known secret for the recording sandbox, so a test can prove it never reaches a cassette.
RECORDING_CLIENT_SECRET = "recording-client-secret-7f3a9c"
RECORDING_CLIENT_ID = "recording-client"
# A tiny clinic keeps cassettes small.
RECORDING_CLINIC = ClinicConfig(
    seed=7,
    patients=15,
    months_back=1,
    months_ahead=0,
    doctors=1,
    offices=1,
    today=dt.date(2025, 6, 11),
)
# The bearer token of the replay backend: vcrpy answers, so it is never checked.
REPLAY_TOKEN = "replay-token"
MATCH_ON = ("method", "path", "query")
SEARCH_PAGE_SIZE = 3

_SECRET_KEYS = frozenset(
    {"access_token", "refresh_token", "id_token", "client_secret", "code", "code_verifier",
     "token", "password", "secret_token"}
)  # fmt: skip
# Patient demographics replaced by placeholders (synthetic, but never committed as such).
_PHI_PLACEHOLDERS: dict[str, Any] = {
    "first_name": "Redacted", "middle_name": "", "last_name": "Redacted", "nick_name": "",
    "date_of_birth": "1900-01-01", "email": "redacted@example.invalid",
    "home_phone": "", "cell_phone": "", "office_phone": "", "address": "", "city": "",
    "zip_code": "", "social_security_number": "", "emergency_contact_name": "",
    "emergency_contact_phone": "", "responsible_party_name": "", "responsible_party_phone": "",
    "responsible_party_email": "", "employer": "", "employer_address": "",
}  # fmt: skip
_BEARER = re.compile(r"Bearer\s+\S+")
_LOOPBACK_ORIGIN = re.compile(r"http://127\.0\.0\.1:\d+")


def _scrub_json(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _SECRET_KEYS:
                out[key] = "REDACTED"
            elif key in _PHI_PLACEHOLDERS and isinstance(item, str | type(None)):
                out[key] = _PHI_PLACEHOLDERS[key] if item else item
            else:
                out[key] = _scrub_json(item)
        return out
    if isinstance(value, list):
        return [_scrub_json(item) for item in value]
    return value


def scrub_text(text: str) -> str:
    """A body with secrets and PHI replaced and the sandbox origin fixed."""
    with contextlib.suppress(ValueError):  # not JSON: only the patterns below apply
        text = json.dumps(_scrub_json(json.loads(text)), separators=(",", ":"))
    return _LOOPBACK_ORIGIN.sub(FIXED_BASE, _BEARER.sub("Bearer REDACTED", text))


def scrub_request(request: Request) -> Request:
    """``before_record_request``: fixed host, no secrets in the body."""
    request.uri = _LOOPBACK_ORIGIN.sub(FIXED_BASE, request.uri)
    body = request.body
    if isinstance(body, bytes) and body:
        request.body = scrub_text(body.decode("utf-8"))
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """``before_record_response``: scrub the body, fix the origin in ``Location``, keep
    ``Content-Length`` true to the scrubbed body (urllib3 enforces it on replay)."""
    body = response.get("body", {}).get("string", b"")
    if body:
        raw = body.decode("utf-8") if isinstance(body, bytes) else body
        scrubbed = scrub_text(raw).encode("utf-8")
        response["body"]["string"] = scrubbed
    headers: dict[str, list[str]] = response.get("headers", {})
    for name in list(headers):
        lowered = name.lower()
        if lowered == "location":
            headers[name] = [_LOOPBACK_ORIGIN.sub(FIXED_BASE, v) for v in headers[name]]
        elif lowered == "content-length":
            headers[name] = [str(len(response["body"]["string"]))]
        elif lowered in ("set-cookie", "date"):
            del headers[name]
    return response


def recorder(record_mode: str) -> vcr.VCR:
    """The vcrpy configuration used both to record and to replay."""
    return vcr.VCR(
        cassette_library_dir=str(CASSETTE_DIR),
        record_mode=record_mode,
        match_on=MATCH_ON,
        filter_headers=["authorization", "cookie", "x-correlation-id"],
        before_record_request=scrub_request,
        before_record_response=scrub_response,
        decode_compressed_response=True,
    )


# --- scenarios: the same calls recorded and replayed ------------------------------------------


def cassette_patient(doctor_id: int) -> PatientDraft:
    """The patient the create scenario registers (placeholder demographics)."""
    return PatientDraft(
        first_name="Cassette",
        last_name="Fixture",
        date_of_birth=dt.date(1900, 1, 1),
        gender=Gender.OTHER,
        doctor_id=doctor_id,
    )


def _create_patient_twice(backend: DrChronoBackend) -> dict[str, Any]:
    doctor = backend.current_user().doctor_id
    assert doctor is not None
    created = backend.create_patient(cassette_patient(doctor))
    try:
        backend.create_patient(cassette_patient(doctor))
    except DuplicatePatientError as exc:
        return {"created": created, "duplicate": exc}
    return {"created": created, "duplicate": None}


SCENARIOS: dict[str, Callable[[DrChronoBackend], Any]] = {
    "current_user": lambda b: b.current_user(),
    "list_doctors": lambda b: b.list_doctors(),
    "search_patients": lambda b: b.search_patients(page_size=SEARCH_PAGE_SIZE),
    "list_appointments": lambda b: b.list_appointments(dt.date(2025, 6, 2), dt.date(2025, 6, 6)),
    "line_items_page": lambda b: next(b.iter_line_items()),
    "create_patient_duplicate": _create_patient_twice,
}


def replay_backend(base_url: str = FIXED_BASE, token: str = REPLAY_TOKEN) -> DrChronoBackend:
    """A backend on ``base_url`` (the replay backend sends nothing: vcrpy answers)."""
    transport = EHRTransport(base_url, StaticTokens(token), sleep=lambda _s: None)
    return DrChronoBackend(transport, practice_tz=PRACTICE_TZ)


def record_all(cassette_dir: Path = CASSETTE_DIR) -> list[Path]:
    """Record every scenario against a fresh sandbox, replacing existing cassettes."""
    cassette_dir.mkdir(parents=True, exist_ok=True)
    config = SandboxConfig(
        clinic=RECORDING_CLINIC,
        client_id=RECORDING_CLIENT_ID,
        client_secret=RECORDING_CLIENT_SECRET,
        rate_limit_per_hour=0,
        burst_per_second=0,
    )
    written: list[Path] = []
    with SandboxServer(config) as server:
        token = str(server.provider.issue_token(server.client_id, [])["access_token"])
        for name, scenario in SCENARIOS.items():
            path = cassette_dir / f"{name}.yaml"
            path.unlink(missing_ok=True)
            backend = replay_backend(server.base_url, token)
            with recorder("once").use_cassette(str(path)):
                scenario(backend)
            written.append(path)
    return written


if __name__ == "__main__":
    for written_path in record_all():
        print(written_path)
