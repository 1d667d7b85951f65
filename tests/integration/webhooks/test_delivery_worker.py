"""A real `burro worker` process delivering webhooks, killed with SIGKILL between attempts."""

from __future__ import annotations

import signal
import subprocess

import msgspec
import pytest
from redis.asyncio import Redis

from service.settings import Settings
from service.webhooks.outbox import attempt_job_id, messages
from service.webhooks.records import WebhookMessage
from service.webhooks.signing import new_secret
from tests.support.fixtures import SpawnWorker, StartReceiver
from tests.support.receivers import Received, Receiver, Reply
from tests.support.store import RedisSession, publish_job_event
from tests.support.waiting import wait_for

pytestmark = pytest.mark.crash


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Long enough that the kill lands while the second attempt waits in the queue.
    return msgspec.structs.replace(settings, webhook_timeout=2.0, webhook_retry_schedule=(1.5,))


def test_worker_killed_between_attempts_loses_nothing(
    redis_url: str,
    store: RedisSession,
    spawn_worker: SpawnWorker,
    start_receiver: StartReceiver,
) -> None:
    def fail_first(request: Received, receiver: Receiver) -> Reply:
        return Reply(status=500 if len(receiver.requests) == 1 else 200)

    receiver = start_receiver(fail_first)
    [message_id] = publish_job_event(
        redis_url, "job.succeeded", job_webhook=(receiver.url(), new_secret())
    )

    def stored() -> WebhookMessage:
        found = store(lambda redis: messages(redis).get(message_id))
        assert found is not None
        return found

    async def second_attempt_queued(redis: Redis) -> bool:
        return bool(await redis.exists(f"arq:job:{attempt_job_id(message_id, 0, 2)}"))

    def first_attempt_failed_and_second_queued() -> bool:
        return len(stored().attempts) == 1 and store(second_attempt_queued)

    first: subprocess.Popen[bytes] = spawn_worker()
    wait_for(first_attempt_failed_and_second_queued, what="the first failed attempt")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert stored().state == "pending"

    spawn_worker()
    wait_for(lambda: stored().state == "delivered", timeout=60, what="the second worker's delivery")
    message = stored()
    assert [(a.number, a.status_code) for a in message.attempts] == [(1, 500), (2, 200)]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [message_id, message_id]
    assert receiver.requests[0].body == receiver.requests[1].body
