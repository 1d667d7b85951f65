"""Serving Burro for tests and benchmarks: an ASGI app in a thread, or `burro` as a process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn


@contextmanager
def serve_in_thread(app: Any, *, timeout: float = 15.0) -> Iterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 (a free port); yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server failed to start")
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not start in time")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def wait_until_up(url: str, process: subprocess.Popen[bytes], *, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail early if `process` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before {url} was up")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not come up in {timeout} s")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it does not end in `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@contextmanager
def burro_process(
    *args: str, env: dict[str, str], health_url: str, timeout: float = 60.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `burro ARGS…` (this interpreter's) with `env` until the block ends; waits for
    `health_url` to answer first. Its output goes to this process' stderr."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter and fixed arguments
        [sys.executable, "-m", "burro", *args], env={**os.environ, **env}
    )
    try:
        wait_until_up(health_url, process, timeout=timeout)
        yield process
    finally:
        stop_process(process)
