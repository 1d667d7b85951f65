"""Publishing job events and delivering them through real arq jobs to receivers on 127.0.0.1."""

from __future__ import annotations

import json

import msgspec
import pytest
import standardwebhooks

from service.queue import Queue
from service.settings import Settings
from service.store import now
from service.webhooks.delivery import WebhookSender
from service.webhooks.outbox import attempt, endpoints, messages, publish, redeliver
from service.webhooks.records import WebhookEndpoint, WebhookMessage
from service.webhooks.signing import new_secret
from tests.support.data import job_event_data
from tests.support.fixtures import MakeWorker, StartReceiver
from tests.support.receivers import Received, Receiver, Reply, answer, answers, hang

pytestmark = pytest.mark.anyio

TENANT = "acme"


async def publish_to(
    queue: Queue,
    url: str | None,
    secret: str | None = None,
    *,
    job_id: str = "job_1",
    event_type: str = "job.succeeded",
) -> list[str]:
    return await publish(
        queue.redis,
        queue,
        tenant=TENANT,
        event_type=event_type,
        job_id=job_id,
        data=job_event_data(job_id, event_type.removeprefix("job.")),
        job_webhook=None if url is None else (url, secret or new_secret()),
    )


async def message(queue: Queue, message_id: str) -> WebhookMessage:
    found = await messages(queue.redis).get(message_id)
    assert found is not None
    return found


async def add_endpoint(queue: Queue, url: str, *events: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        id=f"whe_{len(events)}_{'_'.join(events) or 'all'}",
        tenant=TENANT,
        url=url,
        events=events or ("*",),
        secret=new_secret(),
        created_at=now(),
    )
    await endpoints(queue.redis).save(endpoint)
    return endpoint


async def test_delivered_body_is_the_event_signed_as_standard_webhooks(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answer(204))
    secret = new_secret()
    [message_id] = await publish_to(queue, receiver.url(), secret)
    await worker(fast_settings).run()

    [request] = receiver.requests
    # The receiver's own check, with the reference implementation.
    payload = standardwebhooks.webhooks.Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"] == job_event_data("job_1", "succeeded")
    assert payload["timestamp"].endswith("Z")
    assert request.headers["webhook-id"] == message_id
    assert message_id.startswith("msg_")
    stored = await message(queue, message_id)
    assert stored.state == "delivered"
    assert [(a.number, a.status_code, a.error) for a in stored.attempts] == [(1, 204, None)]
    assert stored.delivered_at is not None


async def test_500_500_200_is_delivered_on_the_third_attempt_with_the_same_id_and_body(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answers(500, 500, 200))
    secret = new_secret()
    [message_id] = await publish_to(queue, receiver.url(), secret)
    await worker(fast_settings).run()

    assert len(receiver.requests) == 3
    assert {r.headers["webhook-id"] for r in receiver.requests} == {message_id}
    assert len({r.body for r in receiver.requests}) == 1
    for request in receiver.requests:  # each attempt is signed afresh, and each verifies
        standardwebhooks.webhooks.Webhook(secret).verify(request.body, request.headers)
    stored = await message(queue, message_id)
    assert stored.state == "delivered"
    assert [(a.number, a.status_code) for a in stored.attempts] == [(1, 500), (2, 500), (3, 200)]
    assert stored.attempts[0].error == "answered HTTP 500"
    assert stored.attempts[0].response_excerpt == "answer 1"
    # Each retry waited at least its delay from the schedule.
    assert stored.attempts[1].at - stored.attempts[0].at >= 0.1


async def test_message_fails_after_the_last_attempt_of_the_schedule(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answer(503))
    [message_id] = await publish_to(queue, receiver.url())
    await worker(fast_settings).run()

    # One attempt, then one per delay of the schedule (0.1, 0.1): three in all.
    assert len(receiver.requests) == 3
    stored = await message(queue, message_id)
    assert stored.state == "failed"
    assert stored.next_attempt_at is None
    assert [a.number for a in stored.attempts] == [1, 2, 3]


async def test_receiver_that_hangs_past_the_timeout_is_a_failed_attempt(
    queue: Queue, settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(hang)
    quick = msgspec.structs.replace(settings, webhook_timeout=0.3, webhook_retry_schedule=(0.1,))
    [message_id] = await publish_to(queue, receiver.url())
    await worker(quick).run()

    stored = await message(queue, message_id)
    assert stored.state == "failed"
    assert [a.error for a in stored.attempts] == ["timeout after 0.3 s"] * 2
    assert all(300 <= a.duration_ms < 2000 for a in stored.attempts)


async def test_hanging_receiver_does_not_delay_another_receiver(
    queue: Queue, settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    slow = start_receiver(hang)
    fast = start_receiver(answer(200))
    patient = msgspec.structs.replace(settings, webhook_timeout=3.0, webhook_retry_schedule=())
    [slow_id] = await publish_to(queue, slow.url(), job_id="job_slow")
    [fast_id] = await publish_to(queue, fast.url(), job_id="job_fast")
    await worker(patient).run()

    slow_message, fast_message = await message(queue, slow_id), await message(queue, fast_id)
    assert fast_message.state == "delivered"
    assert slow_message.state == "failed"
    # Delivered while the other attempt was still hanging, not after it.
    assert fast_message.delivered_at is not None
    assert fast_message.delivered_at < slow_message.attempts[0].at + 1.0


async def test_redirect_is_not_followed_and_is_a_failed_attempt(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answer(307, Location="/elsewhere"))
    [message_id] = await publish_to(queue, receiver.url())
    await worker(fast_settings).run()

    assert {r.path_qs for r in receiver.requests} == {"/hook"}
    stored = await message(queue, message_id)
    assert stored.state == "failed"
    assert stored.attempts[0].status_code == 307
    assert stored.attempts[0].error == "redirect to /elsewhere not followed"


async def test_refused_connection_is_a_failed_attempt(
    queue: Queue, fast_settings: Settings, closed_port: int, worker: MakeWorker
) -> None:
    [message_id] = await publish_to(queue, f"http://127.0.0.1:{closed_port}/hook")
    await worker(fast_settings).run()

    stored = await message(queue, message_id)
    assert stored.state == "failed"
    assert {a.error for a in stored.attempts} == {"connection refused"}


async def test_retry_after_on_429_is_waited_for_when_longer_than_the_schedule(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    def busy_then_ok(request: Received, receiver: Receiver) -> Reply:
        if len(receiver.requests) == 1:
            return Reply(status=429, headers={"Retry-After": "1"})
        return Reply(status=200)

    receiver = start_receiver(busy_then_ok)
    [message_id] = await publish_to(queue, receiver.url())
    await worker(fast_settings).run()

    stored = await message(queue, message_id)
    assert stored.state == "delivered"
    first, second = stored.attempts
    assert first.status_code == 429
    assert second.at - first.at >= 1.0  # not the schedule's 0.1 s


async def test_unsafe_address_at_attempt_time_is_a_failed_attempt_and_nothing_is_sent(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answer(200))
    # Accepted when created (allowed then), refused when sent: the check runs at every attempt.
    [message_id] = await publish_to(queue, receiver.url())
    strict = msgspec.structs.replace(fast_settings, webhook_allow_private=False)
    await worker(strict).run()

    assert receiver.requests == []
    stored = await message(queue, message_id)
    assert stored.state == "failed"
    assert len(stored.attempts) == 3  # retried per schedule, as any failed attempt
    error = stored.attempts[0].error
    assert error is not None
    assert "loopback" in error


async def test_unresolvable_host_at_attempt_time_is_a_failed_attempt(
    queue: Queue, fast_settings: Settings, worker: MakeWorker
) -> None:
    [message_id] = await publish_to(queue, "http://burro-no-such-host.invalid/hook")
    await worker(fast_settings).run()

    stored = await message(queue, message_id)
    assert stored.state == "failed"
    error = stored.attempts[0].error
    assert error is not None
    assert "resolve" in error


async def test_event_goes_to_the_job_webhook_and_each_subscribed_endpoint(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answer(200))
    exact = await add_endpoint(queue, receiver.url("/exact"), "job.succeeded")
    family = await add_endpoint(queue, receiver.url("/family"), "job.*")
    every = await add_endpoint(queue, receiver.url("/every"), "*")
    await add_endpoint(queue, receiver.url("/other"), "job.failed", "job.cancelled")
    ids = await publish_to(queue, receiver.url("/job"))
    await worker(fast_settings).run()

    assert len(ids) == 4
    assert sorted(r.path_qs for r in receiver.requests) == ["/every", "/exact", "/family", "/job"]
    by_path = {r.path_qs: r for r in receiver.requests}
    for endpoint, path in ((exact, "/exact"), (family, "/family"), (every, "/every")):
        request = by_path[path]  # each endpoint's messages are signed with its own secret
        standardwebhooks.webhooks.Webhook(endpoint.secret).verify(request.body, request.headers)
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 4
    assert len({r.body for r in receiver.requests}) == 1


async def test_publishing_the_same_event_twice_sends_it_once(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answer(200))
    first = await publish_to(queue, receiver.url())
    second = await publish_to(queue, receiver.url())
    await worker(fast_settings).run()
    third = await publish_to(queue, receiver.url())  # even after delivery
    await worker(fast_settings).run()

    assert first == second == third
    assert len(receiver.requests) == 1
    # Another event of the same job is another message.
    assert await publish_to(queue, receiver.url(), event_type="job.running") != first


async def test_an_attempt_run_twice_is_sent_once(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver
) -> None:
    receiver = start_receiver(answer(500))
    [message_id] = await publish_to(queue, receiver.url())
    async with WebhookSender() as sender:
        for _ in range(2):  # the queue promises at least once
            await attempt(queue.redis, queue, sender, fast_settings, message_id, 0, 1)

    assert len(receiver.requests) == 1
    assert len((await message(queue, message_id)).attempts) == 1


async def test_message_for_a_deleted_endpoint_fails_without_being_sent(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answer(200))
    endpoint = await add_endpoint(queue, receiver.url(), "*")
    [message_id] = await publish_to(queue, None)
    await endpoints(queue.redis).delete(endpoint)
    await worker(fast_settings).run()

    assert receiver.requests == []
    stored = await message(queue, message_id)
    assert stored.state == "failed"
    assert [a.error for a in stored.attempts] == ["the endpoint was deleted"]


async def test_redelivery_sends_the_same_message_again(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answers(500, 500, 500, 200))
    [message_id] = await publish_to(queue, receiver.url())
    await worker(fast_settings).run()
    assert (await message(queue, message_id)).state == "failed"

    redelivering = await redeliver(queue.redis, queue, TENANT, message_id)
    assert redelivering.state == "pending"
    await worker(fast_settings).run()

    stored = await message(queue, message_id)
    assert stored.state == "delivered"
    assert [(a.redelivery, a.number, a.status_code) for a in stored.attempts] == [
        (0, 1, 500),
        (0, 2, 500),
        (0, 3, 500),
        (1, 1, 200),
    ]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {message_id}
    assert len({r.body for r in receiver.requests}) == 1


async def test_body_accepts_the_job_as_json_bytes(
    queue: Queue, fast_settings: Settings, start_receiver: StartReceiver, worker: MakeWorker
) -> None:
    receiver = start_receiver(answer(200))
    data = json.dumps(job_event_data()).encode()
    await publish(
        queue.redis,
        queue,
        tenant=TENANT,
        event_type="job.succeeded",
        job_id="job_1",
        data=data,
        job_webhook=(receiver.url(), new_secret()),
    )
    await worker(fast_settings).run()

    [request] = receiver.requests
    assert json.loads(request.body)["data"] == job_event_data()
