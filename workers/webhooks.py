"""Webhook → worker: `deliver_webhook` runs one attempt of one message (see
`service.webhooks.outbox`); the first attempt of a message is usually sent by the relay of the
change it announces (`workers.relay`), the later ones each by a job of their own.

Each attempt is bounded by the webhook timeout, so a receiver that hangs holds one worker slot
for at most that long and never delays anybody else's messages.
"""

from __future__ import annotations

import structlog
from arq import Retry
from redis.exceptions import RedisError

from service.retries import backoff
from service.webhooks.outbox import attempt
from workers.context import JobContext

log = structlog.get_logger("burro.worker")

# Runs of one attempt when Redis fails under it, before the queue gives up on it (its task's
# max_tries in service.tasks).
STORE_RETRY_BASE = 2.0
STORE_RETRY_CAP = 30.0


async def deliver_webhook(ctx: JobContext, message_id: str, redelivery: int, number: int) -> str:
    """Attempt `number` of series `redelivery` of message `message_id`."""
    w = ctx.worker
    try:
        return await attempt(w.redis, w.queue, w.sender, w.settings, message_id, redelivery, number)
    except RedisError as exc:
        # The receiver's failures are outcomes; this is Burro's own store failing. Run the
        # attempt again soon (it may send once more: same webhook-id, receivers drop it).
        delay = backoff(ctx.job_try, base=STORE_RETRY_BASE, cap=STORE_RETRY_CAP)
        log.warning("webhook.store_error", message=message_id, error=str(exc), delay=delay)
        raise Retry(defer=delay) from None
