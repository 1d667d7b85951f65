"""A worker killed with SIGKILL between a job's success being saved and each of its effects: a
new worker carries them out from the outbox. Every webhook is still sent exactly once per
message id, to every destination, and the alias moves.

The killed worker stops dead at a fault point (`service.faults`, armed by BURRO_FAULT_POINTS in
its environment only), records that it got there, and is killed there.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from sandbox.config import SandboxConfig
from service.effects import OUTBOX_KEY
from service.faults import reached_key
from service.settings import Settings
from tests.jobs.conftest import MODEL, wait_for, wait_status

ROOT = Path(__file__).resolve().parents[2]
# Short function timeouts: arq runs a dead worker's job again after the longest timeout + 10 s.
WORKER_CODE = (
    "from service.settings import Settings; from workers.main import run; "
    "run(Settings.from_env(), function_timeout=6, retry_base=0.05, retry_cap=0.5)"
)

SpawnWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(step_seconds=0.3)


class Receiver:
    """Records every webhook it is sent: (path, webhook-id, event type)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                event = json.loads(body)
                received.append((self.path, self.headers["webhook-id"], event["type"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def types(self, path: str) -> list[str]:
        return [kind for where, _, kind in self.received if where == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def spawn_worker(job_settings: Settings, sandbox_url: str) -> Iterator[SpawnWorker]:
    """Start `burro worker`'s code in a child process (with `fault_points` armed); every child
    is killed at the end. BURRO_TEST_WORKER_LOGS=1 shows the children's logs."""
    children: list[subprocess.Popen[bytes]] = []
    show_logs = bool(os.environ.get("BURRO_TEST_WORKER_LOGS"))
    env = {
        **os.environ,
        "REDIS_URL": str(job_settings.redis_url),
        "BURRO_DATA_DIR": str(job_settings.data_dir),
        "BURRO_PROVIDER": "sandbox",
        "BURRO_SANDBOX_URL": sandbox_url,
        "BURRO_POLL_INTERVAL": "0.2",
        "BURRO_WEBHOOK_ALLOW_PRIVATE": "true",
        "BURRO_LOG_LEVEL": "INFO" if show_logs else "WARNING",
    }
    env.pop("OPENAI_API_KEY", None)

    def spawn(*fault_points: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE],
            env={**env, "BURRO_FAULT_POINTS": ",".join(fault_points)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=None if show_logs else subprocess.DEVNULL,
        )
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(10)


@pytest.mark.crash
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "point",
    [
        "committed:job.succeeded",  # saved; its relay not even queued yet
        "relay:move_alias",  # relaying; nothing done yet
        "relay:webhook:job.succeeded",  # the alias moved; no webhook published
        "relay:done:job.succeeded",  # everything done; the entry still in the outbox
    ],
)
def test_a_worker_killed_between_a_success_and_its_effects_loses_none_and_repeats_none(
    api: httpx.Client,
    dataset: str,
    receiver: Receiver,
    spawn_worker: SpawnWorker,
    redis_url: str,
    point: str,
) -> None:
    endpoint = api.post("/v1/webhook-endpoints", json={"url": f"{receiver.base}/endpoint"})
    assert endpoint.status_code == 201, endpoint.text
    first = spawn_worker(point)
    job = api.post(
        "/v1/jobs",
        json={
            "training_dataset": dataset,
            "model": MODEL,
            "webhook": {"url": f"{receiver.base}/job"},
            "promote_to": "donkey",
        },
    ).json()
    store = redis.Redis.from_url(redis_url)
    try:
        wait_for(
            lambda: store.exists(reached_key(point)), timeout=60, what=f"the worker at {point}"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"

        spawn_worker()
        try:
            for path in ("/job", "/endpoint"):
                wait_for(
                    lambda path=path: "job.succeeded" in receiver.types(path),  # type: ignore[misc]
                    timeout=60,
                    what=f"job.succeeded at {path}",
                )
            wait_for(lambda: store.zcard(OUTBOX_KEY) == 0, timeout=60, what="an empty outbox")
        except AssertionError as exc:
            seen = (store.zrange(OUTBOX_KEY, 0, -1), store.zrange("burro:queue", 0, -1))
            raise AssertionError(f"{exc}; outbox, queue: {seen}; {receiver.received}") from None
    finally:
        store.close()

    succeeded = wait_status(api, job["id"], "succeeded")
    # Every message sent once, under its own id, and nothing that is not a message of the job.
    messages = api.get("/v1/webhook-messages", params={"job": job["id"], "limit": 100}).json()
    assert {m["state"] for m in messages["data"]} == {"delivered"}
    sent = collections.Counter(webhook_id for _, webhook_id, _ in receiver.received)
    assert set(sent) == {m["id"] for m in messages["data"]}
    assert set(sent.values()) == {1}, sent
    # Each destination heard of every status once, in the order they came.
    for path in ("/job", "/endpoint"):
        kinds = receiver.types(path)
        assert len(kinds) == len(set(kinds)), kinds
        assert kinds[0] == "job.pending" and "job.succeeded" in kinds
    # The alias moved, once.
    alias = api.get("/v1/aliases/donkey").json()
    assert alias["job"] == job["id"] and alias["model"] == succeeded["fine_tuned_model"]
    assert [h["job"] for h in alias["history"]] == [job["id"]]
