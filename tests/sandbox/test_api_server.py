"""The sandbox runner and CLI, plus a sweep of odd input that must never produce a 500."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ehr.sandbox.__main__ import parse_args
from ehr.sandbox.api_resources import RESOURCES
from ehr.sandbox.server import SandboxConfig, SandboxServer
from tests.sandbox.conftest import CLINIC, Api

ODD_VALUES = ["", "-1", "0", "abc", "2025-13-45", "2025-01-01/abc", "%00", "9" * 30, "✓", "true"]
REPO = Path(__file__).resolve().parents[2]


def test_non_loopback_host_is_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SandboxServer(SandboxConfig(clinic=CLINIC, host="0.0.0.0"))  # noqa: S104 - the point of the test
    SandboxServer(SandboxConfig(clinic=CLINIC, host="0.0.0.0", allow_remote=True))  # noqa: S104


def test_start_stop_releases_the_port_and_credentials_are_random(clinic) -> None:
    with SandboxServer(SandboxConfig(clinic=CLINIC), clinic=clinic) as first:
        port = int(first.base_url.rsplit(":", 1)[1])
        assert requests.get(first.base_url + "/api/doctors", timeout=10).status_code == 401
        first_id, first_secret = first.client_id, first.client_secret
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # free again after stop
    with SandboxServer(SandboxConfig(clinic=CLINIC), clinic=clinic) as second:
        assert (second.client_id, second.client_secret) != (first_id, first_secret)
    given = SandboxConfig(clinic=CLINIC, client_id="app", client_secret="s3cret-for-test")
    with SandboxServer(given, clinic=clinic) as third:
        assert (third.client_id, third.client_secret) == ("app", "s3cret-for-test")


def test_cli_arguments() -> None:
    args = parse_args(["--port", "0", "--seed", "3", "--patients", "50", "--months", "2"])
    assert (args.seed, args.patients, args.months, args.host) == (3, 50, 2, "127.0.0.1")
    with pytest.raises(SystemExit):
        parse_args(["--client-id", "only-id"])


@pytest.mark.slow
def test_cli_prints_url_and_credentials_and_stops_on_ctrl_c() -> None:
    command = [
        sys.executable, "-m", "ehr.sandbox", "--port", "0", "--patients", "30", "--months", "1",
        "--client-id", "cli-app", "--client-secret", "cli-secret-123",
    ]  # fmt: skip
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("DrChrono sandbox at http://127.0.0.1:")
            base = first.split(" at ", 1)[1].strip()
            rest = "".join(process.stdout.readline() for _ in range(5))
            assert "cli-app" in rest
            assert "cli-secret-123" in rest
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert requests.get(base + "/api/doctors", timeout=2).status_code == 401
                    break
                except requests.ConnectionError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_odd_query_values_never_500(api: Api, resource: str) -> None:
    spec = RESOURCES[resource]
    names = [*spec.filters, "page_size", "cursor", "verbose", "show_archived"]
    for name in names:
        for value in ODD_VALUES:
            params = {"date": "2025-06-11", "payer_type": "emdeon", name: value}
            response = api.get(f"/api/{resource}", params=params)
            assert response.status_code in (200, 400), (name, value, response.text)
            assert response.json()
    for method in ("HEAD", "OPTIONS"):
        assert api.call(method, f"/api/{resource}").status_code < 500
    for raw_id in ("0", "-1", "abc", "1" * 40, "%2e%2e"):
        assert (
            api.get(f"/api/{resource}/{raw_id}", params={"payer_type": "emdeon"}).status_code == 404
        )


@pytest.fixture(scope="module")
def scratch(clinic) -> Iterator[Api]:
    """A server of its own: valid-but-odd values really get written to its data."""
    config = SandboxConfig(clinic=CLINIC, rate_limit_per_hour=0, burst_per_second=0)
    with SandboxServer(config, clinic=clinic) as server:
        client = Api(server, server.provider.issue_token(server.client_id, [])["access_token"])
        yield client
        client.http.close()


@pytest.mark.parametrize("resource", sorted(r for r, s in RESOURCES.items() if s.fields))
def test_wrongly_typed_values_for_every_writable_field_never_500(
    start_sandbox, resource: str
) -> None:
    api = start_sandbox()  # its own data: valid-but-odd values really get written here
    spec = RESOURCES[resource]
    key, _record, _stamp = api.server.store.scan(resource)[0]
    before = api.server.store.count(resource)
    for name in spec.fields:
        for value in ({"x": [1]}, [[1]], "junk", -1, 1e300, True, None):
            stored = api.server.store.get(resource, key)
            if "P" in spec.methods:
                response = api.patch(f"/api/{resource}/{key}", json={name: value})
                assert response.status_code in (204, 400, 409), (name, value, response.text)
                if response.status_code != 204:
                    assert api.server.store.get(resource, key) == stored, (name, value)
            if "C" in spec.methods:
                created = api.post(f"/api/{resource}", json={name: value})
                assert created.status_code == 400, (name, value, created.text)
    assert api.server.store.count(resource) == before
