"""Models → worker: `notify_shutdowns`, run on the clock, stages the shutdown notices due
today (`service.inference.shutdowns`); the outbox's relay sends them."""

from __future__ import annotations

from service.inference import shutdowns
from workers.context import JobContext


async def notify_shutdowns(ctx: JobContext) -> int:
    """Stage today's `model.shutdown_approaching` notices; how many this run staged."""
    w = ctx.worker
    return await shutdowns.notify_shutdowns(
        w.redis, w.queue, w.models, w.today(), w.settings.rescue_url
    )
