"""Run a real sandbox over HTTP on loopback for tests: `with running_sandbox(cfg) as base_url`."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from sandbox.app import create_app
from sandbox.config import SandboxConfig
from sandbox.state import Clock

STARTUP_TIMEOUT = 10.0


class ManualClock:
    """A clock that only moves when told: `clock.advance(seconds)`. Thread-safe enough for
    tests (a float assignment), and a valid `clock` for `create_app`."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


@contextlib.contextmanager
def running_sandbox(
    config: SandboxConfig | None = None,
    *,
    clock: Clock | None = None,
    host: str = "127.0.0.1",
) -> Iterator[str]:
    """Serve a fresh sandbox with uvicorn in a background thread on a free port.

    Yields the base URL for OpenAI clients, `http://127.0.0.1:PORT/v1` (the test controls are at
    the same root, under `/sandbox`). Stops the server on exit.
    """
    app = create_app(config or SandboxConfig(), clock=clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", ws="none", lifespan="on", access_log=False)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.01)
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT)
        sock.close()
