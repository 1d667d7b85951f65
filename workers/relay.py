"""Effects → worker: `relay_effects` carries out one outbox entry (`service.effects`), effect by
effect in its order, each safe to repeat, and removes the entry after the last. A worker
starting up queues the relay of every entry still waiting; `sweep_effects` does the same, every
ten seconds, for entries left waiting longer than `SWEEP_AFTER` (a process that died between a
commit and queueing its relay, a relay that ran out of time).
"""

from __future__ import annotations

import time
from typing import assert_never

import structlog
from arq import Retry
from redis.exceptions import RedisError

from service import effects, faults, tasks
from service.effects import DecidePromotion, Effect, MoveAlias, PublishWebhook, StartPromotion
from service.errors import BurroError
from service.evaluations import promotion
from service.evaluations.runner import evaluations
from service.inference.aliases import move_alias
from service.queue import REQUEST_ID
from service.retries import backoff
from service.webhooks.outbox import publish_and_send
from workers.context import JobContext, WorkerContext

log = structlog.get_logger("burro.effects")

_STORE_RETRY_BASE = 0.5
_STORE_RETRY_CAP = 30.0


async def carry_out(w: WorkerContext, effect: Effect) -> None:
    """Do one effect (again: each is safe to repeat)."""
    match effect:
        case PublishWebhook():
            await _publish(w, effect)
        case MoveAlias():
            await move_alias(
                w.redis, effect.tenant, effect.alias, job_id=effect.job_id, reason=effect.reason
            )
        case StartPromotion():
            await w.queue.enqueue(tasks.START_PROMOTION, effect.job_id)
        case DecidePromotion():
            evaluation = await evaluations(w.redis).get(effect.evaluation_id)
            if evaluation is not None:
                await promotion.decide(w.redis, w.queue, evaluation)
        case _:
            assert_never(effect)


async def _publish(w: WorkerContext, effect: PublishWebhook) -> None:
    job_webhook = None
    if effect.webhook_url is not None and effect.webhook_secret is not None:
        job_webhook = (effect.webhook_url, effect.webhook_secret)
    await publish_and_send(
        w.redis,
        w.queue,
        w.sender,
        w.settings,
        tenant=effect.tenant,
        event_type=effect.event_type,
        job_id=effect.subject,
        data=effect.data,
        job_webhook=job_webhook,
        to_endpoints=effect.to_endpoints,
    )


async def relay(w: WorkerContext, entry_id: str) -> bool:
    """Carry out the entry `entry_id` and remove it; False when there is none (done already)."""
    entry = await effects.load(w.redis, entry_id)
    if entry is None:
        return False
    bound = {} if entry.request_id is None else {REQUEST_ID: entry.request_id}
    with structlog.contextvars.bound_contextvars(**bound):
        for effect in entry.effects:
            await faults.reach(w.redis, f"relay:{effect.label}")
            try:
                await carry_out(w, effect)
            except BurroError as exc:
                # An expected refusal (an alias name that cannot be, a job that is gone): it
                # would refuse again on every retry, and must not hold up what comes after.
                log.warning(
                    "effect.refused",
                    entry=entry.id,
                    subject=entry.subject,
                    effect=effect.label,
                    code=exc.code,
                    detail=exc.detail,
                )
        await faults.reach(w.redis, f"relay:done:{entry.change}")
        await effects.remove(w.redis, entry_id)
        log.info("effects.relayed", entry=entry.id, subject=entry.subject, change=entry.change)
    return True


async def requeue_waiting(w: WorkerContext, *, written_before: float | None = None) -> int:
    """Queue the relay of every entry still waiting (written before a time); returns how many.
    An entry whose relay is queued or running already keeps that one (a fixed job id)."""
    waiting = await effects.waiting(w.redis, written_before=written_before)
    for entry_id in waiting:
        await w.queue.enqueue(tasks.RELAY_EFFECTS, entry_id)
    return len(waiting)


async def resume(w: WorkerContext) -> None:
    """At start-up: relay what a dead worker left."""
    waiting = await requeue_waiting(w)
    if waiting:
        log.info("effects.resumed", entries=waiting)


async def relay_effects(ctx: JobContext, entry_id: str) -> str:
    """Carry out one outbox entry; Burro's own store failing makes it run again soon."""
    try:
        return "relayed" if await relay(ctx.worker, entry_id) else "nothing to relay"
    except RedisError as exc:
        delay = backoff(ctx.job_try, base=_STORE_RETRY_BASE, cap=_STORE_RETRY_CAP)
        log.warning("effects.store_error", entry=entry_id, error=str(exc), delay=delay)
        raise Retry(defer=delay) from None


async def sweep_effects(ctx: JobContext) -> int:
    """Queue the relay of entries left waiting longer than SWEEP_AFTER (run on the clock)."""
    swept = await requeue_waiting(ctx.worker, written_before=time.time() - effects.SWEEP_AFTER)
    if swept:
        log.warning("effects.swept", entries=swept)
    return swept
