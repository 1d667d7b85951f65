"""Webhook → messages: an event becomes one stored message per destination, each delivered by
a series of attempts; the first is sent by whoever publishes (the relay of the change's
effects, `workers.relay`) or queued, each later one is its own queued job (`deliver_webhook`).

The message is written before its first attempt is enqueued, and every attempt records its
outcome before it enqueues the next, so a worker that dies anywhere loses nothing: the attempt
that was running is run again by the queue and finds its own record (or sends once more, which
the receiver can recognise by the unchanged `webhook-id`).
"""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import WatchError

from service import tasks
from service.errors import NotFound
from service.queue import Queue
from service.settings import Settings
from service.store import Collection, Page, now
from service.webhooks.addresses import Resolve, UnsafeWebhookUrl, resolve_public, system_resolve
from service.webhooks.delivery import AttemptOutcome, WebhookSender
from service.webhooks.records import (
    ENDPOINTS,
    MAX_KEPT_ATTEMPTS,
    MESSAGES,
    Attempt,
    WebhookEndpoint,
    WebhookMessage,
    message_job_index_key,
    message_once_key,
)
from service.webhooks.signing import new_message_id, sign

log = structlog.get_logger("burro.webhooks")

# A receiver may ask for more time with Retry-After; it gets it up to this, never more, so a
# bogus header cannot park a message for days.
RETRY_AFTER_CAP = 3600.0
# Added to each retry delay, as a fraction of it, so receivers that failed together are not
# hit again all in the same instant.
RETRY_JITTER = 0.1
# The one-message-per-destination guard lives as long as anybody could publish the event again.
_ONCE_TTL = 30 * 24 * 3600

_body_encoder = msgspec.json.Encoder()

# Writes ARGV[2] only if the key still holds ARGV[1].
_COMPARE_AND_SET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2])
    return 1
end
return 0
"""


def endpoints(redis: Redis) -> Collection[WebhookEndpoint]:
    return Collection(redis, ENDPOINTS, WebhookEndpoint)


def messages(redis: Redis) -> Collection[WebhookMessage]:
    return Collection(redis, MESSAGES, WebhookMessage)


# The fixed queue id of one attempt: the queue runs each at most once at a time.
attempt_job_id = tasks.webhook_attempt_id


def encode_body(event_type: str, data: dict[str, Any] | bytes, at: float | None = None) -> bytes:
    """The JSON body of an event: `type`, an RFC 3339 UTC `timestamp` and `data` (a Job)."""
    moment = datetime.datetime.fromtimestamp(time.time() if at is None else at, datetime.UTC)
    return _body_encoder.encode(
        {
            "type": event_type,
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": msgspec.Raw(data) if isinstance(data, bytes) else data,
        }
    )


# Where a message goes: (the endpoint's id, or None for the job's own webhook; url; secret).
Destination = tuple[str | None, str, str]


async def publish(
    redis: Redis,
    queue: Queue,
    *,
    tenant: str,
    event_type: str,
    job_id: str,
    data: dict[str, Any] | bytes,
    job_webhook: tuple[str, str] | None,
    to_endpoints: bool = True,
    send_first: tuple[WebhookSender, Settings] | None = None,
) -> list[str]:
    """Announce `event_type` for a job: one message for the job's own webhook (`job_webhook` is
    its `(url, secret)`, None without one) and one for each of the tenant's endpoints that
    subscribes to the event (none looked up unless `to_endpoints`). Returns the message ids.

    `data` is the Job as the wire shows it (a JSON-encodable dict, or its JSON bytes). Each new
    message's first attempt is queued; with `send_first` (a sender and the settings) it is made
    from here instead: the caller is then already the queued job that follows the change, and a
    webhook costs no second one unless it has to be tried again. Safe to call twice for the same
    event: the second call finds the messages of the first (same ids, same bytes) and only
    follows up on them.
    """
    destinations: list[Destination] = []
    if job_webhook is not None:
        destinations.append((None, *job_webhook))
    if to_endpoints:
        destinations += await _subscribers(redis, tenant, event_type)
    return await _store_and_send(
        redis,
        queue,
        destinations,
        tenant=tenant,
        event_type=event_type,
        job_id=job_id,
        body=encode_body(event_type, data),
        send_first=send_first,
    )


async def publish_to_endpoints(
    redis: Redis,
    queue: Queue,
    *,
    tenant: str,
    event_type: str,
    job_id: str,
    body: bytes,
    send_first: tuple[WebhookSender, Settings] | None = None,
) -> list[str]:
    """Announce `event_type` for a job with a body made by the caller (OpenAI's event, say) to
    each of the tenant's endpoints that subscribes to it, as `publish` does. Returns the
    message ids; safe to call twice."""
    destinations = await _subscribers(redis, tenant, event_type)
    return await _store_and_send(
        redis,
        queue,
        destinations,
        tenant=tenant,
        event_type=event_type,
        job_id=job_id,
        body=body,
        send_first=send_first,
    )


async def _subscribers(redis: Redis, tenant: str, event_type: str) -> list[Destination]:
    return [
        (endpoint.id, endpoint.url, endpoint.secret)
        for endpoint in await _tenant_endpoints(redis, tenant)
        if endpoint.subscribes(event_type)
    ]


async def _store_and_send(
    redis: Redis,
    queue: Queue,
    destinations: list[Destination],
    *,
    tenant: str,
    event_type: str,
    job_id: str,
    body: bytes,
    send_first: tuple[WebhookSender, Settings] | None,
) -> list[str]:
    """One message per destination, each stored once, and its first attempt (see `publish`)."""
    stored = [
        await _store_one(
            redis,
            tenant=tenant,
            job_id=job_id,
            event_type=event_type,
            endpoint_id=endpoint_id,
            url=url,
            secret=secret,
            body=body,
        )
        for endpoint_id, url, secret in destinations
    ]
    if send_first is not None:
        sender, settings = send_first
        await asyncio.gather(
            *(
                attempt(redis, queue, sender, settings, message_id, 0, 1, seen=raw)
                for message_id, raw in stored
            )
        )
    else:
        for message_id, raw in stored:
            if raw is not None:
                await queue.enqueue(tasks.DELIVER_WEBHOOK, message_id, 0, 1)
    return [message_id for message_id, _ in stored]


async def has_endpoints(redis: Redis, tenant: str) -> bool:
    """Whether the tenant has any webhook endpoint (one cheap read)."""
    return bool(await redis.zcard(endpoints(redis).index_key(tenant)))


async def _tenant_endpoints(redis: Redis, tenant: str) -> list[WebhookEndpoint]:
    collection = endpoints(redis)
    ids = [
        i.decode() if isinstance(i, bytes) else str(i)
        for i in await redis.zrange(collection.index_key(tenant), 0, -1)
    ]
    return [e for e in await collection.get_many(ids) if e is not None]


# KEYS: the event's once-per-destination guard, the new message, its two indexes. ARGV: the new
# message's id, the guard's TTL, the message, its creation time. Stores the message unless the
# guard names another already; returns the id the guard holds.
_STORE_ONCE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[3], 'NX')
  redis.call('ZADD', KEYS[3], 'NX', ARGV[4], ARGV[1])
  redis.call('ZADD', KEYS[4], 'NX', ARGV[4], ARGV[1])
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
"""


async def _store_one(
    redis: Redis,
    *,
    tenant: str,
    job_id: str,
    event_type: str,
    endpoint_id: str | None,
    url: str,
    secret: str,
    body: bytes,
) -> tuple[str, bytes | None]:
    """Store the message for one destination unless a call before did (one round trip when it
    is new); (id, its bytes) while its first attempt is still to be made, else (id, None)."""
    once = message_once_key(job_id, event_type, endpoint_id or "job")
    collection = messages(redis)
    message = WebhookMessage(
        id=new_message_id(),
        tenant=tenant,
        job_id=job_id,
        event_type=event_type,
        endpoint_id=endpoint_id,
        url=url,
        secret=secret,
        body=body,
        created_at=now(),
        next_attempt_at=time.time(),
    )
    raw = collection.encode(message)
    keys = (
        once,
        collection.key(message.id),
        collection.index_key(tenant),
        message_job_index_key(job_id),
    )
    values: list[Any] = [message.id, _ONCE_TTL, raw, message.created_at]
    held = await redis.eval(_STORE_ONCE, len(keys), *keys, *values)  # type: ignore[misc]
    message_id = held.decode() if isinstance(held, bytes) else str(held)
    if message_id == message.id:
        log.info(
            "webhook.published",
            message=message_id,
            job=job_id,
            event_type=event_type,
            endpoint=endpoint_id,
        )
        return message_id, raw
    # A call before stored it (or died between its guard and its message: stored now).
    existing = await redis.get(collection.key(message_id))
    if existing is None:
        message = msgspec.structs.replace(message, id=message_id)
        raw = collection.encode(message)
        async with redis.pipeline(transaction=True) as pipe:
            # NX: a concurrent call may have written it (and an attempt updated it) already.
            pipe.set(collection.key(message_id), raw, nx=True)
            pipe.zadd(collection.index_key(tenant), {message_id: message.created_at}, nx=True)
            pipe.zadd(message_job_index_key(job_id), {message_id: message.created_at}, nx=True)
            await pipe.execute()
        return message_id, raw
    stored = collection.decode(existing)
    if stored.redelivery > 0 or stored.attempts or stored.state != "pending":
        return message_id, None  # already on its way
    return message_id, existing


async def redeliver(redis: Redis, queue: Queue, tenant: str, message_id: str) -> WebhookMessage:
    """Send a message again, from a new series of attempts (same id, same body). A series
    still running is superseded: its later attempts find they are obsolete and stop."""
    await messages(redis).get_for(tenant, message_id)

    def restart(message: WebhookMessage) -> WebhookMessage:
        return msgspec.structs.replace(
            message,
            state="pending",
            redelivery=message.redelivery + 1,
            next_attempt_at=time.time(),
            delivered_at=None,
        )

    message = await _update(redis, message_id, restart)
    if message is None:  # deleted in between
        raise NotFound(f"No webhook message {message_id!r}.")
    await queue.enqueue(tasks.DELIVER_WEBHOOK, message_id, message.redelivery, 1)
    log.info("webhook.redelivered", message=message_id, redelivery=message.redelivery)
    return message


async def page_for_job(
    redis: Redis, tenant: str, job_id: str, *, limit: int, after: str | None
) -> Page[WebhookMessage]:
    """A job's messages, newest first, as the tenant may see them (another tenant's: none)."""
    index = message_job_index_key(job_id)
    start = 0
    if after is not None:
        rank = await redis.zrevrank(index, after)
        if rank is None:
            raise NotFound(f"No webhook message {after!r} of job {job_id!r} to page after.")
        start = int(rank) + 1
    ids = [
        i.decode() if isinstance(i, bytes) else str(i)
        for i in await redis.zrevrange(index, start, start + limit)
    ]
    found = [m for m in await messages(redis).get_many(ids) if m is not None and m.tenant == tenant]
    return Page(data=found[:limit], has_more=len(found) > limit)


# --- One attempt ------------------------------------------------------------------------------


async def attempt(
    redis: Redis,
    queue: Queue,
    sender: WebhookSender,
    settings: Settings,
    message_id: str,
    redelivery: int,
    number: int,
    *,
    resolve: Resolve = system_resolve,
    seen: bytes | None = None,
) -> str:
    """Run attempt `number` of series `redelivery` of a message, record it, and queue what
    comes next. Returns what happened, in a word, for the log. `seen` is the message as the
    caller just read or wrote it (saves reading it again).

    Safe to run twice: an attempt already recorded is not sent again, only followed up.
    """
    collection = messages(redis)
    raw = seen if seen is not None else await redis.get(collection.key(message_id))
    if raw is None:
        return "missing"
    message = collection.decode(raw)
    if message.redelivery != redelivery or message.state != "pending":
        return "obsolete"  # delivered, failed, or superseded by a redelivery
    if message.attempt(redelivery, number) is None:
        started = time.time()
        outcome, final = await _send(redis, sender, settings, message, resolve)
        record = Attempt(
            at=started,
            redelivery=redelivery,
            number=number,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            response_excerpt=outcome.response_excerpt,
        )
        delay = None if final else _retry_delay(settings.webhook_retry_schedule, number, outcome)
        updated = await _update(redis, message_id, _recorder(record, outcome, delay), seen=raw)
        if updated is None:
            return "missing"
        message = updated
        log.info(
            "webhook.attempted",
            message=message_id,
            job=message.job_id,
            redelivery=redelivery,
            number=number,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            state=message.state,
        )
    if message.redelivery != redelivery or message.state != "pending":
        return message.state if message.redelivery == redelivery else "obsolete"
    # Pending after this attempt: the next one is due at `next_attempt_at`.
    due = message.next_attempt_at or time.time()
    await queue.enqueue(
        tasks.DELIVER_WEBHOOK,
        message_id,
        redelivery,
        number + 1,
        defer_by=max(0.0, due - time.time()),
    )
    return "retrying"


async def _send(
    redis: Redis,
    sender: WebhookSender,
    settings: Settings,
    message: WebhookMessage,
    resolve: Resolve,
) -> tuple[AttemptOutcome, bool]:
    """Send the message once; the flag says no later attempt can do better."""
    if message.endpoint_id is not None and await endpoints(redis).get(message.endpoint_id) is None:
        gone = AttemptOutcome(
            delivered=False, status_code=None, error="the endpoint was deleted", duration_ms=0.0
        )
        return gone, True
    started = time.perf_counter()
    try:
        # Checked again at every attempt: the name may resolve elsewhere by now.
        target = await resolve_public(
            message.url, allow_private=settings.webhook_allow_private, resolve=resolve
        )
    except UnsafeWebhookUrl as exc:
        # Unsafe or unresolvable now is a failed attempt, retried: DNS and settings change.
        refused = AttemptOutcome(
            delivered=False,
            status_code=None,
            error=exc.reason,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return refused, False
    headers = sign(message.secret, message.id, int(time.time()), message.body)
    outcome = await sender.send(target, headers, message.body, timeout=settings.webhook_timeout)
    return outcome, False


def _retry_delay(schedule: tuple[float, ...], number: int, outcome: AttemptOutcome) -> float | None:
    """Seconds before the attempt after `number`; None when there is none (delivered, or the
    schedule is spent). A receiver's Retry-After wins when longer, up to `RETRY_AFTER_CAP`."""
    if outcome.delivered or number > len(schedule):
        return None
    delay = schedule[number - 1]
    if outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, RETRY_AFTER_CAP))
    return delay * (1 + random.uniform(0, RETRY_JITTER))


def _recorder(
    record: Attempt, outcome: AttemptOutcome, delay: float | None
) -> Callable[[WebhookMessage], WebhookMessage]:
    def change(message: WebhookMessage) -> WebhookMessage:
        attempts = (*message.attempts, record)[-MAX_KEPT_ATTEMPTS:]
        if message.redelivery != record.redelivery or message.state != "pending":
            # A redelivery began meanwhile: keep the history, leave its state to the new series.
            return msgspec.structs.replace(message, attempts=attempts)
        if outcome.delivered:
            return msgspec.structs.replace(
                message,
                attempts=attempts,
                state="delivered",
                delivered_at=time.time(),
                next_attempt_at=None,
            )
        if delay is None:
            return msgspec.structs.replace(
                message, attempts=attempts, state="failed", next_attempt_at=None
            )
        return msgspec.structs.replace(
            message, attempts=attempts, next_attempt_at=time.time() + delay
        )

    return change


async def _update(
    redis: Redis,
    message_id: str,
    change: Callable[[WebhookMessage], WebhookMessage],
    *,
    seen: bytes | None = None,
) -> WebhookMessage | None:
    """Read, change and write a message as one step (optimistic: retried on a concurrent write);
    None when there is no such message.

    `seen` is the message as the caller read it: when nobody wrote it since, one compare-and-set
    round trip does the whole update (this runs for every attempt of every message).
    """
    collection = messages(redis)
    key = collection.key(message_id)
    if seen is not None:
        updated = change(collection.decode(seen))
        values: list[Any] = [seen, collection.encode(updated)]
        if await redis.eval(_COMPARE_AND_SET, 1, key, *values):  # type: ignore[misc]
            return updated
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                if raw is None:
                    await pipe.reset()  # type: ignore[no-untyped-call]
                    return None
                updated = change(collection.decode(raw))
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.set(key, collection.encode(updated))
                await pipe.execute()
                return updated
            except WatchError:
                continue
