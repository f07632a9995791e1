"""Two ways to reach a SimTenant: in-process (an httpx transport) or over a loopback socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import httpx

from .tenant import SimTenant

__all__ = ["SimTransport", "serve"]


class SimTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Hands each request to the tenant in-process, like httpx.MockTransport (sync or async).

    A dropped connection surfaces exactly as httpx reports one from a real socket.
    """

    def __init__(self, tenant: SimTenant) -> None:
        self.tenant = tenant

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        time.sleep(self.tenant.faults.delay())
        return self._respond(request, request.read())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.tenant.faults.delay())
        return self._respond(request, await request.aread())

    def _respond(self, request: httpx.Request, body: bytes) -> httpx.Response:
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        answer = self.tenant.handle(request.method, request.url.raw_path.decode("ascii"), dict(request.headers), body, origin)
        if answer.drop:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        headers = dict(answer.headers)
        if answer.body is not None:
            headers["content-type"] = "application/json"
        return httpx.Response(answer.status, headers=headers, content=answer.content(), request=request)


@contextlib.contextmanager
def serve(tenant: SimTenant, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve the tenant on a loopback port (a free one by default) for the duration of the block;
    yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle's algorithm and
            # delayed ACKs add ~40 ms to every response.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            time.sleep(tenant.faults.delay())
            answer = tenant.handle(self.command, self.path, dict(self.headers.items()), body, f"http://{self.headers.get('Host', host)}")
            if answer.drop:
                self.close_connection = True
                return
            content = answer.content()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args) -> None:  # keep test and demo output clean
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address) -> None:
            # A client that hangs up (a killed apply, a dropped connection) is normal here.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
