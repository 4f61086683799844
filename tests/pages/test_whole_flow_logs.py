"""SECURITY.md LG-01: a whole flow at DEBUG leaves no secret and no PHI in any log.

Sign-in → connect the EHR through the sandbox's consent page → callback → register "Zebulon
Quixote" (born 1931-03-17) → the access token expires → refresh → read the patient back. Every
log record (root at DEBUG, HTTP libraries included) and everything written to stdout/stderr is
captured and searched for each secret and each PHI value the flow handled.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from ehr.models import Gender, PatientDraft
from ehr.services import accounts, connection, patients, practice
from ehr.services.accounts import SignedInSession
from storage.tokens import TokenSet, load_tokens
from ui import wiring

PASSWORD = "correct horse battery staple 9"
TIMEOUT_S = 10.0


def _tokens() -> TokenSet:
    status = connection.current_connection(wiring.connector())
    assert status is not None
    loaded = load_tokens(wiring.app_engine(), wiring.cipher(), status.connection_id)
    assert isinstance(loaded, TokenSet)
    return loaded


def test_a_whole_flow_at_debug_logs_no_secret_and_no_phi(
    demo_env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    wiring.reset()
    caplog.set_level(logging.DEBUG)
    store = wiring.account_store()

    accounts.create_first_admin(store, "ada", PASSWORD)
    accounts.sign_in(store, "evil\nINFO fake line", "not the password at all")
    signed = accounts.sign_in(store, "ada", PASSWORD)
    assert isinstance(signed, SignedInSession)
    caller = accounts.resume_session(store, signed.token)
    assert not isinstance(caller, accounts.SessionEnded)

    authorize_url = connection.begin_connect(wiring.connector(), caller)
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    http = requests.Session()
    consent = http.get(authorize_url, timeout=TIMEOUT_S)
    request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text)
    assert request_id
    reply = http.post(
        consent.url.split("?")[0],
        data={
            "request_id": request_id.group(1),
            "decision": "allow",
            "username": "demo",
            "password": "demo",
        },
        allow_redirects=False,
        timeout=TIMEOUT_S,
    )
    params = {k: v[0] for k, v in parse_qs(urlsplit(reply.headers["Location"]).query).items()}
    connection.complete_connect(wiring.connector(), caller, params)
    first = _tokens()

    gw = wiring.new_gateway(caller)
    doctor = practice.list_doctors(gw).items[0]
    created = patients.create_patient(
        gw,
        PatientDraft(
            first_name="Zebulon",
            last_name="Quixote",
            date_of_birth=date(1931, 3, 17),
            gender=Gender.MALE,
            doctor_id=doctor.id,
            email="zebulon.quixote@example.org",
        ),
    )
    sandbox = wiring.demo_sandbox()
    assert sandbox is not None
    sandbox.provider.expire_all_tokens()
    gw.cache.clear()
    again = patients.get_patient(gw, created.id)
    assert again.last_name == "Quixote"
    second = _tokens()
    assert second.access_token.reveal() != first.access_token.reveal()  # a refresh happened

    captured = capfd.readouterr()
    text = "\n".join(
        [caplog.text, *(r.getMessage() for r in caplog.records), captured.out, captured.err]
    )
    assert len(caplog.records) > 10  # the flow did log (at DEBUG), so the search means something
    forbidden = {
        "first access token": first.access_token.reveal(),
        "first refresh token": first.refresh_token.reveal() if first.refresh_token else "",
        "second access token": second.access_token.reveal(),
        "second refresh token": second.refresh_token.reveal() if second.refresh_token else "",
        "client secret": sandbox.client_secret,
        "authorization code": params["code"],
        "state": state,
        "session id": signed.token,
        "password": PASSWORD,
        "first name": "Zebulon",
        "last name": "Quixote",
        "birth year": "1931",
        "email": "zebulon.quixote@example.org",
    }
    leaked = [label for label, value in forbidden.items() if value and value in text]
    assert leaked == []
    assert "\nINFO fake line" not in text  # a CR/LF in a typed value cannot forge a log line
