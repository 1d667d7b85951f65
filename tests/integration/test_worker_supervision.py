"""`burro worker` outlives its Redis: restarted under it, the same process reconnects and works."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from burro.redis_server import RedisServer
from service.queue import HEALTH_CHECK_KEY, Queue
from service.webhooks.outbox import publish
from service.webhooks.signing import new_secret
from workers.supervisor import Backoff

ROOT = Path(__file__).resolve().parents[1]


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


class Receiver:
    """Records the webhook-ids of the deliveries it gets."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        ids = self.ids

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                ids.append(self.headers["webhook-id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, since the test stops it."""
    server = RedisServer(data_dir=tmp_path / "redis")
    server.start()
    yield server
    server.close()


def publish_webhook(redis_url: str, url: str, job_id: str) -> str:
    """Queue a webhook message (as a job's change would): only a working worker delivers it."""

    async def go() -> str:
        queue = await Queue.connect(redis_url)
        try:
            [message_id] = await publish(
                queue.redis,
                queue,
                tenant="acme",
                event_type="job.running",
                job_id=job_id,
                data={"id": job_id, "object": "job", "status": "running"},
                job_webhook=(url, new_secret()),
            )
        finally:
            await queue.close()
        return message_id

    return asyncio.run(go())


def log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def has_event(path: Path, name: str) -> dict[str, Any] | None:
    return next((e for e in log_events(path) if e.get("event") == name), None)


def restarts(path: Path) -> int:
    return max(
        (e["restart"] for e in log_events(path) if e.get("event") == "worker.redis_lost"), default=0
    )


def test_the_worker_process_reconnects_after_redis_restarts_and_delivers_again(
    private_redis: RedisServer, receiver: Receiver, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "REDIS_URL": private_redis.url,
        "BURRO_DATA_DIR": str(tmp_path / "data"),
        "BURRO_WEBHOOK_ALLOW_PRIVATE": "true",
        "BURRO_LOG_LEVEL": "INFO",
        "BURRO_LOG_JSON": "true",
    }
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "burro", "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    client = redis.Redis.from_url(private_redis.url)
    try:
        wait_for(lambda: has_event(log_path, "worker.started"), what="the worker to start")
        first = publish_webhook(private_redis.url, receiver.url, "job_before")
        wait_for(lambda: first in receiver.ids, what="the delivery before the restart")

        private_redis.stop()
        # Down for longer than one restart: the worker keeps trying, with growing delays.
        wait_for(lambda: restarts(log_path) >= 2, what="a second restart without Redis")
        assert worker.poll() is None, "the worker exited instead of waiting for Redis"
        private_redis.start()  # same port, same data directory

        wait_for(lambda: has_event(log_path, "worker.reconnected"), what="worker.reconnected")
        client.close()
        client = redis.Redis.from_url(private_redis.url)
        assert client.exists(HEALTH_CHECK_KEY)
        second = publish_webhook(private_redis.url, receiver.url, "job_after")
        wait_for(lambda: second in receiver.ids, what="the delivery after the restart")
        assert worker.poll() is None

        lost = [e for e in log_events(log_path) if e.get("event") == "worker.redis_lost"]
        assert all(e["level"] == "warning" and 0 < e["restart_in"] <= 30 for e in lost)
        assert [e["restart"] for e in lost] == list(range(1, len(lost) + 1))
        starts = [e for e in log_events(log_path) if e.get("event") == "worker.started"]
        assert len(starts) >= 2  # on_startup ran again: unfinished jobs resumed

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
        assert has_event(log_path, "worker.stopped")
    finally:
        client.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def test_restart_delays_grow_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    rand = random.Random(7)
    delays = [[backoff.delay(n, rand) for _ in range(50)] for n in range(1, 12)]
    assert all(0.25 <= d <= 0.5 for d in delays[0])
    assert all(1.0 <= d <= 2.0 for d in delays[2])
    assert all(15.0 <= d <= 30.0 for d in delays[-1])  # capped
    assert len({round(d, 6) for d in delays[0]}) > 1  # jittered
