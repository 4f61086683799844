"""Assemble and run the DrChrono sandbox: OAuth provider + REST API + synthetic clinic.

``build_sandbox(config)`` wires one sandbox instance (store, OAuth provider, rate limiter,
faults, request log, batch jobs) into a Starlette app; ``SandboxServer`` runs it with uvicorn
on a loopback port in a background thread (``start``/``stop`` or ``with``), or in the
foreground for ``python -m ehr.sandbox``. The demo credentials are random per start unless
given. A non-loopback host is refused unless ``allow_remote`` is set: the sandbox has no TLS
and a published demo password.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ehr.sandbox.api import NOT_FOUND, SERVER_ERROR, ApiRuntime, json_response
from ehr.sandbox.api_admin import admin_routes
from ehr.sandbox.api_batch import DEFAULT_BATCH_DELAY_S, BatchJobs, batch_routes
from ehr.sandbox.clinic import VERBOSE_ONLY_FIELDS, Clinic, ClinicConfig, generate_clinic
from ehr.sandbox.faults import FaultInjector, FaultSettings, RequestLog, RequestLogMiddleware
from ehr.sandbox.limits import DEFAULT_PER_HOUR, DEFAULT_PER_SECOND, RateLimiter
from ehr.sandbox.oauth import DEFAULT_ACCESS_TOKEN_TTL_S, OAuthClient, OAuthProvider
from ehr.sandbox.paging import CursorCodec
from ehr.sandbox.store import Store

# Where the dashboard's OAuth callback listens by default (Streamlit's port, the app's route).
DEFAULT_REDIRECT_URI = "http://localhost:8501/auth/callback"
# How long ``start`` waits for uvicorn to accept connections before giving up.
START_TIMEOUT_S = 15.0
# How long ``stop`` waits for in-flight requests before abandoning the thread.
STOP_TIMEOUT_S = 10.0
# Bytes of randomness in generated client secrets and admin keys.
SECRET_BYTES = 32
# Bytes of the per-server cursor signing key.
CURSOR_KEY_BYTES = 32


@dataclass
class SandboxConfig:
    """Everything a sandbox start needs. ``port`` 0 picks a free port.

    ``client_id``/``client_secret`` None → random per start. ``rate_limit_per_hour`` and
    ``burst_per_second`` 0 switch a limit off. ``faults`` are the settings the server starts
    with and returns to on reset.
    """

    clinic: ClinicConfig = field(default_factory=ClinicConfig)
    host: str = "127.0.0.1"
    port: int = 0
    client_id: str | None = None
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = (DEFAULT_REDIRECT_URI,)
    username: str = "demo"
    password: str = "demo"  # noqa: S105 - the sandbox's published demo login
    rate_limit_per_hour: int = DEFAULT_PER_HOUR
    burst_per_second: int = DEFAULT_PER_SECOND
    send_retry_after: bool = False
    access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL_S
    faults_admin_enabled: bool = False
    faults: FaultSettings = field(default_factory=FaultSettings)
    batch_delay_s: float = DEFAULT_BATCH_DELAY_S
    allow_remote: bool = False


@dataclass
class Sandbox:
    """One wired sandbox instance: the ASGI app and the parts tests and wiring reach into."""

    config: SandboxConfig
    app: Starlette
    provider: OAuthProvider
    store: Store
    limiter: RateLimiter
    faults: FaultInjector
    request_log: RequestLog
    batch_jobs: BatchJobs
    client_id: str
    client_secret: str
    admin_key: str

    def reset_data(self) -> int:
        """Regenerate the clinic from its config; returns the store's data generation."""
        self.store.load(generate_clinic(self.config.clinic))
        self.batch_jobs.clear()
        return self.store.generation


async def _not_found(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return json_response(405, {"detail": f'Method "{_request.method}" not allowed.'})
    return json_response(404, {"detail": NOT_FOUND})


async def _server_error(_request: Request, _exc: Exception) -> Response:
    return json_response(500, {"detail": SERVER_ERROR})


def build_sandbox(
    config: SandboxConfig,
    *,
    clinic: Clinic | None = None,
    clock: Callable[[], float] = time.time,
) -> Sandbox:
    """Wire a sandbox for ``config`` (``clinic`` skips generation; ``clock`` is epoch seconds)."""
    client_id = config.client_id or f"sandbox-{secrets.token_hex(8)}"
    client_secret = config.client_secret or secrets.token_urlsafe(SECRET_BYTES)
    data = clinic if clinic is not None else generate_clinic(config.clinic)
    store = Store(data, clock=clock)
    provider = OAuthProvider(
        [OAuthClient(client_id, client_secret, tuple(config.redirect_uris))],
        user_id=int(data.user["id"]),
        username=config.username,
        password=config.password,
        access_token_ttl=config.access_token_ttl,
        clock=clock,
    )
    limiter = RateLimiter(config.rate_limit_per_hour, config.burst_per_second, clock=clock)
    faults = FaultInjector(dataclasses.replace(config.faults))
    request_log = RequestLog()
    jobs = BatchJobs(delay_s=config.batch_delay_s, clock=clock)
    runtime = ApiRuntime(
        store=store,
        provider=provider,
        limiter=limiter,
        faults=faults,
        codec=CursorCodec(secrets.token_bytes(CURSOR_KEY_BYTES)),
        verbose_only=VERBOSE_ONLY_FIELDS,
        send_retry_after=config.send_retry_after,
    )
    runtime.extra_routes = batch_routes(runtime, jobs)
    admin_key = secrets.token_urlsafe(SECRET_BYTES)
    app = Starlette(
        routes=provider.routes() + runtime.routes(),
        exception_handlers={404: _not_found, 405: _not_found, Exception: _server_error},
    )
    sandbox = Sandbox(
        config=config,
        app=app,
        provider=provider,
        store=store,
        limiter=limiter,
        faults=faults,
        request_log=request_log,
        batch_jobs=jobs,
        client_id=client_id,
        client_secret=client_secret,
        admin_key=admin_key,
    )
    if config.faults_admin_enabled:
        app.router.routes.extend(
            admin_routes(
                key=admin_key,
                faults=faults,
                provider=provider,
                request_log=request_log,
                reset_data=sandbox.reset_data,
            )
        )
    app.add_middleware(RequestLogMiddleware, log=request_log)
    return sandbox


def build_app(config: SandboxConfig, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The sandbox's ASGI app alone (see ``build_sandbox`` for access to its parts)."""
    return build_sandbox(config, clock=clock).app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SandboxServer:
    """Runs one sandbox with uvicorn on a loopback port, in a background thread.

    ``start()`` returns once the port accepts connections; ``stop()`` shuts down cleanly.
    Also a context manager. ``clinic`` reuses pre-generated data, ``clock`` drives token
    expiry, rate limits, write stamps and batch jobs.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        clinic: Clinic | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or SandboxConfig()
        if not self.config.allow_remote and not _is_loopback(self.config.host):
            raise ValueError(
                "the sandbox binds loopback only; pass allow_remote (--allow-remote) to expose it"
            )
        self._clinic = clinic
        self._clock = clock
        self._sandbox: Sandbox | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._base_url = ""

    # --- lifecycle -----------------------------------------------------------------------------

    def bind(self) -> uvicorn.Server:
        """Build the sandbox and bind its port without serving yet (so the URL is known)."""
        self._sandbox = build_sandbox(self.config, clinic=self._clinic, clock=self._clock)
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
        # protocol is explicit, and without it keep-alive responses stall ~40 ms (Nagle meets
        # delayed ACK) because uvicorn writes headers and body separately.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.config.host, self.config.port))
        self._socket = sock
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self._base_url = f"http://{shown}:{port}"
        server_config = uvicorn.Config(
            self._sandbox.app, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(server_config)
        return self._server

    def start(self) -> SandboxServer:
        """Build the sandbox and serve it in a daemon thread; waits until it is ready."""
        if self._thread is not None:
            raise RuntimeError("sandbox server already started")
        server = self.bind()
        sockets = [self._socket] if self._socket is not None else None
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": sockets}, name="drchrono-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox server failed to start")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (Ctrl-C): the CLI's mode."""
        server = self._server or self.bind()
        try:
            server.run(sockets=[self._socket] if self._socket is not None else None)
        finally:
            self._close_socket()

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread, release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what callers need ---------------------------------------------------------------------

    @property
    def sandbox(self) -> Sandbox:
        """The wired instance (available after ``start``)."""
        if self._sandbox is None:
            raise RuntimeError("sandbox server not started")
        return self._sandbox

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        if not self._base_url:
            raise RuntimeError("sandbox server not started")
        return self._base_url

    @property
    def client_id(self) -> str:
        """The registered application's client id."""
        return self.sandbox.client_id

    @property
    def client_secret(self) -> str:
        """The registered application's client secret."""
        return self.sandbox.client_secret

    @property
    def admin_key(self) -> str:
        """Value for the ``X-Sandbox-Admin-Key`` header of the admin endpoints."""
        return self.sandbox.admin_key

    @property
    def provider(self) -> OAuthProvider:
        """The OAuth provider (issue tokens directly, expire or revoke them)."""
        return self.sandbox.provider

    @property
    def store(self) -> Store:
        """The record store."""
        return self.sandbox.store

    @property
    def faults(self) -> FaultInjector:
        """The fault knobs."""
        return self.sandbox.faults

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter (limits adjustable at run time)."""
        return self.sandbox.limiter

    @property
    def request_log(self) -> RequestLog:
        """The log of answered requests."""
        return self.sandbox.request_log
