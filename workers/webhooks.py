"""Webhook → worker: `deliver_webhook` runs one attempt of one message (see the outbox).

Each attempt is its own short queued job, bounded by the webhook timeout, so a receiver that
hangs holds one worker slot for at most that long and never delays anybody else's messages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import structlog
from arq import Retry
from arq.worker import Function, func
from redis.exceptions import RedisError

from service.queue import Queue
from service.settings import Settings
from service.webhooks.addresses import DEFAULT_RESOLVE_TIMEOUT
from service.webhooks.delivery import WebhookSender
from service.webhooks.outbox import DELIVER_FUNCTION, attempt

log = structlog.get_logger("burro.worker")

CTX_KEY = "webhooks"
# More than any worker's max_jobs: the worker's slots bound concurrent attempts, never the
# connection pool, or a hundred hanging receivers would hold every connection and make the
# healthy ones wait in the pool until the hanging ones time out.
MAX_CONNECTIONS = 1000
# Runs of one attempt when Redis fails under it, before the queue gives up on it.
_MAX_TRIES = 6
# Beyond the HTTP timeout, an attempt resolves the host and writes to Redis a few times.
_JOB_MARGIN = DEFAULT_RESOLVE_TIMEOUT + 10.0


@dataclass
class WebhookContext:
    """What attempts need, made once per worker process: one HTTP client for all receivers."""

    settings: Settings
    queue: Queue
    sender: WebhookSender


async def start_webhooks(ctx: dict[str, Any], settings: Settings) -> None:
    """Call from the worker's start-up, inside its event loop (arq has set `ctx["redis"]`)."""
    ctx[CTX_KEY] = WebhookContext(
        settings=settings,
        queue=Queue(ctx["redis"]),
        sender=WebhookSender(max_connections=MAX_CONNECTIONS),
    )


async def stop_webhooks(ctx: dict[str, Any]) -> None:
    """Call from the worker's shutdown. The queue's connection belongs to arq: left open."""
    webhooks: WebhookContext | None = ctx.pop(CTX_KEY, None)
    if webhooks is not None:
        await webhooks.sender.close()


async def deliver_webhook(
    ctx: dict[str, Any], message_id: str, redelivery: int, number: int
) -> str:
    """Attempt `number` of series `redelivery` of message `message_id`."""
    webhooks: WebhookContext = ctx[CTX_KEY]
    try:
        result = await attempt(
            webhooks.queue.redis,
            webhooks.queue,
            webhooks.sender,
            webhooks.settings,
            message_id,
            redelivery,
            number,
        )
    except RedisError as exc:
        # The receiver's failures are outcomes; this is Burro's own store failing. Run the
        # attempt again soon (it may send once more: same webhook-id, receivers drop it).
        tries = int(ctx.get("job_try", 1))
        if tries >= _MAX_TRIES:
            raise
        delay = min(30.0, 2.0**tries) * random.uniform(0.5, 1.5)
        log.warning("webhook.store_error", message=message_id, error=str(exc), delay=delay)
        raise Retry(defer=delay) from None
    return result


def webhook_functions(settings: Settings) -> list[Function]:
    """The webhook functions for the worker's `functions`, with their job timeout."""
    return [
        func(
            deliver_webhook,
            name=DELIVER_FUNCTION,
            timeout=settings.webhook_timeout + _JOB_MARGIN,
            max_tries=_MAX_TRIES,
        )
    ]
