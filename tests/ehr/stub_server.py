"""``mock_ehr`` of SECURITY.md: a scriptable HTTP stub on 127.0.0.1 that records every request.

For upstream behaviours the embedded sandbox cannot produce on purpose: ``Retry-After`` as an
HTTP-date, negative or huge; 302/307 to another host; an HTML page with 200; a 25 MB body; a
connection reset mid-body; a read timeout after the server already processed a POST; a TLS
certificate the client must refuse.

Script answers per ``(method, path)`` with ``add(...)`` (a queue; the last answer repeats) or
``route(...)`` (a function of the recorded request). Unscripted requests get a 404 JSON body.
Each server runs ``http.server`` in a daemon thread on port 0; two servers are two origins.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

Action = Literal["reply", "reset_mid_body", "stall_after_processing"]


@dataclass(frozen=True)
class Recorded:
    """One request the stub received (after it read the whole request body)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    """One scripted answer.

    ``body`` may be bytes, str, or a JSON-able value (sent as application/json unless
    ``headers`` sets Content-Type). ``content_length=False`` sends a close-delimited body with
    no length. ``action``: ``reset_mid_body`` sends the headers and half the body, then resets
    the connection; ``stall_after_processing`` records the request, then stays silent for
    ``stall_s`` (a read timeout for a client with a shorter one) before answering.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_length: bool = True
    action: Action = "reply"
    stall_s: float = 0.0

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            raw = self.body
        elif isinstance(self.body, str):
            raw = self.body.encode()
        elif self.body is None:
            raw = b""
        else:
            raw = json.dumps(self.body).encode()
            headers.setdefault("Content-Type", "application/json")
        return raw, headers


def json_answer(payload: Any, status: int = 200, **headers: str) -> Answer:
    """A JSON answer with extra headers (underscores in names become dashes)."""
    return Answer(status, payload, {k.replace("_", "-"): v for k, v in headers.items()})


class StubServer:
    """A recording, scriptable HTTP server (optionally TLS with a self-signed certificate)."""

    def __init__(self, *, tls: bool = False) -> None:
        self.requests: list[Recorded] = []
        self._scripts: dict[tuple[str, str], list[Answer]] = {}
        self._routes: dict[tuple[str, str], Callable[[Recorded], Answer]] = {}
        self._lock = threading.Lock()
        self._tls = tls
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> StubServer:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def _handle(self) -> None:
                stub._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # resets and broken pipes are the point of several tests

        httpd = Server(("127.0.0.1", 0), Handler)
        if self._tls:
            self._tmp = tempfile.TemporaryDirectory()
            cert, key = _self_signed(Path(self._tmp.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    # -- scripting -------------------------------------------------------------------------

    def add(self, method: str, path: str, *answers: Answer) -> None:
        """Queue answers for ``method path``; the last one repeats once the queue is used up."""
        with self._lock:
            self._scripts[(method.upper(), path)] = list(answers)

    def route(self, method: str, path: str, handler: Callable[[Recorded], Answer]) -> None:
        """Answer ``method path`` with ``handler(request)``."""
        with self._lock:
            self._routes[(method.upper(), path)] = handler

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path is None or r.path == path)
            )

    # -- serving ---------------------------------------------------------------------------

    def _answer_for(self, request: Recorded) -> Answer:
        key = (request.method, request.path)
        with self._lock:
            self.requests.append(request)
            handler = self._routes.get(key)
            queue = self._scripts.get(key)
            if handler is None and queue:
                answer = queue.pop(0) if len(queue) > 1 else queue[0]
            else:
                answer = None
        if handler is not None:
            return handler(request)
        return answer or json_answer({"detail": "Not found."}, 404)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        request = Recorded(
            handler.command, parts.path, parts.query, dict(handler.headers.items()), body
        )
        answer = self._answer_for(request)
        if answer.action == "stall_after_processing":
            time.sleep(answer.stall_s)
        raw, headers = answer.encoded()
        try:
            handler.send_response(answer.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            if answer.content_length or answer.action == "reset_mid_body":
                # A reset body announces its full length, so the cut is detectable.
                handler.send_header("Content-Length", str(len(raw)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            if answer.action == "reset_mid_body":
                handler.wfile.write(raw[: len(raw) // 2])
                handler.wfile.flush()
                _reset(handler.connection)
                return
            for chunk in _chunks(raw):
                handler.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return  # the client stopped reading (size cap) or went away (timeout)


def _chunks(raw: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def _reset(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _self_signed(directory: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


# -- test doubles for the transport ------------------------------------------------------------

# A fixed "now" for the transport clock: Retry-After dates and retry_at are computed against it.
FIXED_NOW = dt.datetime(2026, 10, 21, 7, 0, 0, tzinfo=dt.UTC)


class FakeTokens:
    """A ``TokenSource`` that hands out ``tok-1``, then ``tok-2``... on each forced refresh."""

    def __init__(self) -> None:
        self.current = "tok-1"
        self.refreshes: list[str] = []

    def access_token(self) -> str:
        return self.current

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        self.refreshes.append(rejected_token)
        self.current = f"tok-{len(self.refreshes) + 1}"
        return self.current


class CountingBudget:
    """A ``BudgetGate`` with ``allowance`` calls, then RateLimitedError until the next hour."""

    def __init__(self, allowance: int) -> None:
        self.allowance = allowance
        self.spent = 0

    def spend(self, calls: int = 1) -> None:
        from ehr.errors import RateLimitedError

        if self.spent + calls > self.allowance:
            retry_at = FIXED_NOW.replace(minute=0, second=0) + dt.timedelta(hours=1)
            raise RateLimitedError(retry_at=retry_at, details={"limit": "hourly budget"})
        self.spent += calls
