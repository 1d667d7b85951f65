"""The API as `burro serve` runs it (granian), probed with raw sockets: a head over 64 KiB is a
431 before any handler, a head that never ends is dropped, and a body that stalls is a 408 that
stores nothing. The timeouts are set to a second so each test waits a second or two."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from burro.redis_server import free_port
from burro.testing import burro_process
from tests.support.clients import tenant_client

TIMEOUT_SECONDS = 1.0


@pytest.fixture
def served(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`burro serve` on a free port; yields its base URL and its data directory."""
    port = free_port()
    data_dir = tmp_path / "data"
    env = {
        "REDIS_URL": redis_url,
        "BURRO_API_KEYS": "acme:key-acme",
        "BURRO_DATA_DIR": str(data_dir),
        "BURRO_HEADER_TIMEOUT": str(TIMEOUT_SECONDS),
        "BURRO_BODY_IDLE_TIMEOUT": str(TIMEOUT_SECONDS),
        "BURRO_RATE_LIMIT": "0",
        "BURRO_LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{port}"
    with burro_process("serve", "--port", str(port), env=env, health_url=f"{base}/health/live"):
        yield base, data_dir


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send what the server takes: it may answer and close before reading everything."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes or pauses for 10 s."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
        if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
            break
    return b"".join(chunks)


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def head_with(header_bytes: int) -> bytes:
    filler = b"a" * header_bytes
    return b"GET /health/live HTTP/1.1\r\nHost: burro\r\nX-Filler: " + filler + b"\r\n\r\n"


def test_headers_over_64_kib_are_a_431_and_smaller_ones_pass(
    served: tuple[str, Path],
) -> None:
    base, _ = served
    with connect(base) as sock:
        send_all(sock, head_with(60 * 1024))
        assert status_of(read_answer(sock)) == 200
    for size in (65 * 1024, 100 * 1024, 8 * 1024 * 1024):
        with connect(base) as sock:
            send_all(sock, head_with(size))
            answer = read_answer(sock)
            assert status_of(answer) == 431, (size, answer[:200])


def test_a_head_that_never_ends_is_closed_after_the_header_timeout(
    served: tuple[str, Path],
) -> None:
    base, _ = served
    with connect(base) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: burro\r\nX-Slow: ")
        started = time.monotonic()
        sock.settimeout(15)
        closed = sock.recv(1024)  # blocks until the server gives up on the head
        waited = time.monotonic() - started
    assert closed == b""
    assert TIMEOUT_SECONDS * 0.5 <= waited < TIMEOUT_SECONDS + 8


def _no_datasets(base: str, data_dir: Path) -> None:
    with tenant_client(base) as client:
        assert client.get("/v1/datasets").json()["data"] == []
    folder = data_dir / "datasets"
    assert not folder.exists() or list(folder.iterdir()) == []


def _upload_head(extra: str) -> bytes:
    return (
        "POST /v1/datasets HTTP/1.1\r\nHost: burro\r\nAuthorization: Bearer key-acme\r\n"
        f"Content-Type: application/jsonl\r\n{extra}\r\n"
    ).encode()


def test_a_body_shorter_than_its_content_length_is_a_408_and_nothing_is_stored(
    served: tuple[str, Path],
) -> None:
    base, data_dir = served
    line = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode() + b"\n"
    with connect(base) as sock:
        sock.sendall(_upload_head("Content-Length: 100000\r\n") + line)
        answer = read_answer(sock)
    assert status_of(answer) == 408, answer[:300]
    problem = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert problem["type"] == "urn:burro:problem:request_timeout"
    _no_datasets(base, data_dir)


def test_a_chunked_body_that_stops_is_a_408_and_nothing_is_stored(
    served: tuple[str, Path],
) -> None:
    base, data_dir = served
    line = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode() + b"\n"
    chunk = f"{len(line):x}\r\n".encode() + line + b"\r\n"
    with connect(base) as sock:
        sock.sendall(_upload_head("Transfer-Encoding: chunked\r\n") + chunk)
        answer = read_answer(sock)
    assert status_of(answer) == 408, answer[:300]
    _no_datasets(base, data_dir)


def _chat_head(extra: str) -> bytes:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: burro\r\nAuthorization: Bearer key-acme\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def openai_error_of(answer: bytes) -> dict[str, str]:
    body: dict[str, dict[str, str]] = json.loads(answer.partition(b"\r\n\r\n")[2])
    return body["error"]


def test_the_chat_path_served_before_routing_keeps_both_limits_in_openais_shape(
    served: tuple[str, Path],
) -> None:
    base, _ = served
    with connect(base) as sock:
        send_all(sock, _chat_head(f"X-Filler: {'a' * 100 * 1024}\r\n"))
        answer = read_answer(sock)
    assert status_of(answer) == 431, answer[:300]
    assert openai_error_of(answer)["code"] == "headers_too_large"

    with connect(base) as sock:
        sock.sendall(_chat_head("Content-Length: 1000\r\n") + b'{"model": "donkey", ')
        answer = read_answer(sock)
    assert status_of(answer) == 408, answer[:300]
    assert openai_error_of(answer)["code"] == "request_timeout"
