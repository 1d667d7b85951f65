"""Webhook receivers on 127.0.0.1 for the delivery tests: real aiohttp servers, one per test."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import msgspec
import pytest
from aiohttp import web
from arq.worker import Worker, create_worker

from service.queue import Queue
from service.settings import Settings
from workers.main import worker_settings


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


# --- The outbox and its worker -----------------------------------------------------------------


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[Queue]:
    """The test's own connection to the queue (and the store: one pool)."""
    queue = await Queue.connect(redis_url)
    yield queue
    await queue.close()


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """The session settings with a tiny retry schedule and timeout, private addresses allowed."""
    return msgspec.structs.replace(settings, webhook_retry_schedule=(0.1, 0.1), webhook_timeout=1.0)


RunWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
def run_worker(queue: Queue) -> RunWorker:
    """Run the webhook functions in a burst-mode arq worker until the queue is empty
    (deferred retries included): `await run_worker(settings)`."""

    async def run(settings: Settings, *, timeout: float = 30.0) -> Worker:
        worker = create_worker(
            worker_settings(settings),
            redis_pool=queue.pool,
            burst=True,
            poll_delay=0.02,
            max_jobs=50,
            handle_signals=False,
        )
        try:
            async with asyncio.timeout(timeout):
                await worker.async_run()
        finally:
            if worker.on_shutdown is not None:
                await worker.on_shutdown(worker.ctx)
        return worker

    return run


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll `check` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def job_data(job_id: str = "job_1", status: str = "succeeded") -> dict[str, object]:
    """A Job-like dict, as the wire shows a job (the jobs package is not needed)."""
    return {
        "id": job_id,
        "object": "job",
        "status": status,
        "model": "gpt-4.1-mini-2025-04-14",
        "fine_tuned_model": "ft:gpt-4.1-mini-2025-04-14:acme::abc"
        if status == "succeeded"
        else None,
        "created_at": 1764160000,
    }
