"""A real `burro worker` process delivering webhooks, killed with SIGKILL between attempts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from service.queue import Queue
from service.webhooks.outbox import attempt_job_id, messages, publish
from service.webhooks.records import WebhookMessage
from service.webhooks.signing import new_secret
from tests.webhooks.conftest import job_data, wait_until

if TYPE_CHECKING:
    from tests.webhooks.conftest import Receiver, StartReceiver

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


class Workers:
    """Starts `burro worker` processes; whatever is still running at the end is stopped."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "burro", "worker"],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "REDIS_URL": redis_url,
        "BURRO_DATA_DIR": str(tmp_path / "data"),
        "BURRO_WEBHOOK_ALLOW_PRIVATE": "true",
        "BURRO_WEBHOOK_TIMEOUT": "2",
        # Long enough that the kill lands while the second attempt waits in the queue.
        "BURRO_WEBHOOK_RETRY_SCHEDULE": "1.5",
        "BURRO_LOG_LEVEL": "WARNING",
        "BURRO_LOG_JSON": "true",
    }
    started = Workers(env)
    yield started
    started.stop_all()


async def test_worker_killed_between_attempts_loses_nothing(
    queue: Queue, workers: Workers, start_receiver: StartReceiver
) -> None:
    async def fail_first(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        return web.Response(status=500 if len(receiver.requests) == 1 else 200)

    receiver = await start_receiver(fail_first)
    [message_id] = await publish(
        queue.redis,
        queue,
        tenant="acme",
        event_type="job.succeeded",
        job_id="job_1",
        data=job_data(),
        job_webhook=(receiver.url(), new_secret()),
    )

    async def stored() -> WebhookMessage:
        found = await messages(queue.redis).get(message_id)
        assert found is not None
        return found

    async def first_attempt_failed_and_second_queued() -> bool:
        second = f"arq:job:{attempt_job_id(message_id, 0, 2)}"
        return len((await stored()).attempts) == 1 and bool(await queue.redis.exists(second))

    first = workers.start()
    await wait_until(first_attempt_failed_and_second_queued, what="the first failed attempt")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert (await stored()).state == "pending"

    workers.start()

    async def delivered() -> bool:
        return (await stored()).state == "delivered"

    await wait_until(delivered, timeout=60, what="delivery by the second worker")
    message = await stored()
    assert [(a.number, a.status_code) for a in message.attempts] == [(1, 500), (2, 200)]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [message_id, message_id]
    assert receiver.requests[0].body == receiver.requests[1].body
