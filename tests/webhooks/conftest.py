"""Webhook receivers on 127.0.0.1 for the delivery tests: real aiohttp servers, one per test."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Received:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    scheme: str = "http"
    requests: list[Received] = field(default_factory=list)
    # Set when the test ends, so handlers that hang on purpose let the server shut down.
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


Handler = Callable[[web.Request, Receiver], Awaitable[web.StreamResponse]]
StartReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def start_receiver() -> AsyncIterator[StartReceiver]:
    """Start a receiver answering with `handler(request, receiver)`; each request is recorded
    before the handler runs. All are stopped when the test ends."""
    runners: list[tuple[web.AppRunner, Receiver]] = []

    async def start(
        handler: Handler,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Receiver:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        receiver = Receiver(port=sock.getsockname()[1], scheme="https" if ssl_context else "http")

        async def record(request: web.Request) -> web.StreamResponse:
            receiver.requests.append(
                Received(
                    method=request.method,
                    path_qs=request.path_qs,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=await request.read(),
                )
            )
            return await handler(request, receiver)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        runners.append((runner, receiver))
        return receiver

    yield start
    for runner, receiver in runners:
        receiver.release.set()
        await runner.cleanup()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()
