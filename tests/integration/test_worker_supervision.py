"""`burro worker` outlives its Redis: restarted under it, the same process reconnects and works."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis

from burro.redis_server import RedisServer
from service.queue import HEALTH_CHECK_KEY
from service.settings import Settings
from service.webhooks.signing import new_secret
from tests.support.fixtures import SpawnWorker
from tests.support.receivers import Receiver
from tests.support.store import publish_job_event
from tests.support.waiting import wait_for

pytestmark = pytest.mark.crash


@pytest.fixture
def redis_url(private_redis: RedisServer) -> str:
    return private_redis.url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, log_level="INFO")


def delivered(receiver: Receiver) -> list[str]:
    return [r.headers["webhook-id"] for r in receiver.requests]


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
    private_redis: RedisServer, receiver: Receiver, tmp_path: Path, spawn_worker: SpawnWorker
) -> None:
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        worker: subprocess.Popen[bytes] = spawn_worker(stderr=log_file)
    client = redis.Redis.from_url(private_redis.url)
    try:
        wait_for(lambda: has_event(log_path, "worker.started"), what="the worker to start")
        [first] = publish_job_event(
            private_redis.url, "job.running", "job_before", (receiver.url(), new_secret())
        )
        wait_for(lambda: first in delivered(receiver), what="the delivery before the restart")

        private_redis.stop()
        # Down for longer than one restart: the worker keeps trying, with growing delays.
        wait_for(lambda: restarts(log_path) >= 2, what="a second restart without Redis")
        assert worker.poll() is None, "the worker exited instead of waiting for Redis"
        private_redis.start()  # same port, same data directory

        wait_for(lambda: has_event(log_path, "worker.reconnected"), what="worker.reconnected")
        client.close()
        client = redis.Redis.from_url(private_redis.url)
        assert client.exists(HEALTH_CHECK_KEY)
        [second] = publish_job_event(
            private_redis.url, "job.running", "job_after", (receiver.url(), new_secret())
        )
        wait_for(lambda: second in delivered(receiver), what="the delivery after the restart")
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
