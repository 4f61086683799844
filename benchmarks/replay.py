"""A recording of one listing's pages, served back byte for byte from a loopback port.

Why: the sandbox builds every list page by filtering and sorting the whole table, so a page of a
~50k-row listing costs it 0.1-1 s of CPU, against a few milliseconds of client work. Timed
against it, any client looks as fast as the bare loop, and one fetch takes minutes. The replay
answers each recorded URL with the sandbox's own bytes (``next`` links rewritten to the replay's
origin) in well under a millisecond of server work, so what differs between client variants is
the client. It checks the bearer token like the sandbox; unknown URLs are 404s.
"""

from __future__ import annotations

import socket
import threading
import time

import requests
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Seconds to wait for uvicorn to accept connections.
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
# Timeouts of the recording walk against the sandbox (a page can take a second to build).
RECORD_TIMEOUT_S = (5.0, 60.0)
_JSON = "application/json"


def record_pages(base_url: str, first_path: str, token: str) -> tuple[dict[str, bytes], int]:
    """Every page of a listing as ``{path?query: body}``, walking ``next``; and the records."""
    pages: dict[str, bytes] = {}
    records = 0
    url: str | None = f"{base_url}{first_path}"
    with requests.Session() as session:
        while url:
            response = session.get(
                url, headers={"Authorization": f"Bearer {token}"}, timeout=RECORD_TIMEOUT_S
            )
            response.raise_for_status()
            pages[url.removeprefix(base_url)] = response.content
            body = response.json()
            records += len(body["results"])
            url = body["next"]
    return pages, records


class ReplayServer:
    """Serves recorded pages on 127.0.0.1 from a background thread (``start``/``stop``)."""

    def __init__(self, pages: dict[str, bytes], recorded_origin: str, token: str) -> None:
        self._pages = pages
        self._recorded_origin = recorded_origin.encode()
        self._authorization = f"Bearer {token}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.base_url = ""

    async def _page(self, request: Request) -> Response:
        if request.headers.get("authorization") != self._authorization:
            return Response(b'{"detail":"Invalid token."}', status_code=401, media_type=_JSON)
        query = request.url.query
        body = self._pages.get(f"{request.url.path}?{query}" if query else request.url.path)
        if body is None:
            return Response(b'{"detail":"Not found."}', status_code=404, media_type=_JSON)
        return Response(body, media_type=_JSON)

    def start(self) -> ReplayServer:
        """Bind a free loopback port, rewrite the recorded links to it, serve."""
        # As in the sandbox: an explicit IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted
        # sockets, without which keep-alive answers stall ~40 ms (Nagle meets delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        origin = self.base_url.encode()
        self._pages = {k: v.replace(self._recorded_origin, origin) for k, v in self._pages.items()}
        app = Starlette(routes=[Route("/{path:path}", self._page, methods=["GET"])])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="page-replay", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the replay server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
