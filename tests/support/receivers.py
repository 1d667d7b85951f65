"""Webhook receivers: real HTTP(S) servers on 127.0.0.1, each in its own threads, that record
every request and answer it as the test's handler says (answer, fail, hang, stall)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A handler that hangs is released when its receiver closes, or after this long at most.
HANG_SECONDS = 60.0


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it (header names in lower case)."""

    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """What to answer. `stall`: send the status, headers and body, then hold the connection
    open without finishing the body until the receiver closes."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    stall: bool = False


Handler = Callable[[Received, "Receiver"], Reply]


def answer(status: int = 200, text: str = "", **headers: str) -> Handler:
    """Answer every request with `status`, `text` and `headers`."""
    reply = Reply(status=status, body=text.encode(), headers=headers)
    return lambda request, receiver: reply


def answers(*statuses: int) -> Handler:
    """Answer the n-th request with the n-th status (`answer n` as its body); the last status
    from then on."""

    def handler(request: Received, receiver: Receiver) -> Reply:
        index = min(len(receiver.requests), len(statuses)) - 1
        return Reply(status=statuses[index], body=f"answer {index + 1}".encode())

    return handler


def hang(request: Received, receiver: Receiver) -> Reply:
    """Answer only when the receiver closes (long after any client gave up)."""
    receiver.release.wait(HANG_SECONDS)
    return Reply(body=b"too late")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the point of many tests) is not an error here


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("content-length") or 0)
        request = Received(
            method=self.command,
            path_qs=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        with receiver.lock:
            receiver.requests.append(request)
        reply = receiver.handler(request, receiver)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if not reply.stall:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)
        self.wfile.flush()
        if reply.stall:
            receiver.release.wait(HANG_SECONDS)

    # http.server dispatches on these names.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver:
    """A receiver on 127.0.0.1 (HTTPS with `ssl_context`); `close()` releases hanging handlers
    and stops it. Requests are recorded before the handler runs."""

    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if ssl_context is not None else "http"
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def bodies(self) -> list[Any]:
        """The JSON body of every request so far, in order."""
        return [r.json() for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def unlistened_port() -> tuple[socket.socket, int]:
    """A loopback port bound but not listening: connecting to it is refused at once. Keep the
    socket open for as long as the port must stay refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, int(sock.getsockname()[1])
