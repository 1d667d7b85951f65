"""The unit tier keeps its promise: nothing here reaches a server or starts a process."""

from __future__ import annotations

import socket
import subprocess

import pytest


def test_a_unit_test_cannot_connect_anywhere() -> None:
    with socket.socket() as sock, pytest.raises(RuntimeError, match="move it to tests/integration"):
        sock.connect(("127.0.0.1", 9))


def test_a_unit_test_cannot_listen() -> None:
    with socket.socket() as sock, pytest.raises(RuntimeError, match="tests/integration"):
        sock.bind(("127.0.0.1", 0))


def test_a_unit_test_cannot_start_a_process() -> None:
    with pytest.raises(RuntimeError, match="tests/integration"):
        subprocess.run(["true"], check=True)
