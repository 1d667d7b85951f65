"""The unit tier: no server, no process, no network. A test here that opens an internet socket
or starts a process fails at once, saying where it belongs."""

from __future__ import annotations

import socket
import subprocess
from typing import Any, NoReturn

import pytest

_NETWORK = (socket.AF_INET, socket.AF_INET6)


def _refuse(what: str) -> NoReturn:
    raise RuntimeError(f"a unit test {what}: move it to tests/integration")


@pytest.fixture(autouse=True)
def _no_servers_or_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect, real_bind = socket.socket.connect, socket.socket.bind

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in _NETWORK:
            _refuse(f"connected to {address!r}")
        real_connect(sock, address)

    def bind(sock: socket.socket, address: Any) -> None:
        if sock.family in _NETWORK:
            _refuse(f"listened on {address!r}")
        real_bind(sock, address)

    def popen(*args: Any, **kwargs: Any) -> NoReturn:
        _refuse(f"started a process {args[1] if len(args) > 1 else kwargs.get('args')!r}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    monkeypatch.setattr(socket.socket, "bind", bind)
    monkeypatch.setattr(subprocess.Popen, "__init__", popen)
