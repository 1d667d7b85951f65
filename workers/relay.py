"""Effects → worker: `relay_effects` drains the outbox (`service.effects`): it claims waiting
entries and carries out each one's effects in their order, each safe to repeat, then removes
it; many entries at once, those of one subject one after the other. A worker starting up
queues a relay for what is waiting; `sweep_effects` does the same, every ten seconds, for
entries left waiting longer than `SWEEP_AFTER` (a process that died between a commit and
queueing its relay, a relay that died or ran out of time).
"""

from __future__ import annotations

import asyncio
import time
from typing import NamedTuple, assert_never

import structlog
from arq import Retry
from redis.exceptions import RedisError

from service import effects, faults, tasks
from service.effects import (
    DecidePromotion,
    Effect,
    MoveAlias,
    PublishOpenAIEvent,
    PublishWebhook,
    StartPromotion,
)
from service.errors import BurroError
from service.evaluations import promotion
from service.evaluations.runner import evaluations
from service.inference.aliases import move_alias
from service.queue import REQUEST_ID
from service.retries import backoff
from service.webhooks.outbox import publish, publish_to_endpoints
from workers.context import JobContext, WorkerContext

log = structlog.get_logger("burro.effects")

_STORE_RETRY_BASE = 0.5
_STORE_RETRY_CAP = 30.0
# Entries worked on at once by one relay: a first attempt to a receiver that hangs holds one
# of these for the webhook timeout, so there are many (as arq's job slots were for them).
RELAY_CONCURRENCY = 200
# Entries taken per read, and for how long one relay goes on taking them.
BATCH = 100
FEED_SECONDS = 5.0


async def carry_out(w: WorkerContext, effect: Effect) -> None:
    """Do one effect (again: each is safe to repeat)."""
    match effect:
        case PublishWebhook():
            await _publish(w, effect)
        case PublishOpenAIEvent():
            await publish_to_endpoints(
                w.redis,
                w.queue,
                tenant=effect.tenant,
                event_type=effect.event_type,
                job_id=effect.subject,
                body=effect.body,
                send_first=(w.sender, w.settings),
            )
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
    await publish(
        w.redis,
        w.queue,
        tenant=effect.tenant,
        event_type=effect.event_type,
        job_id=effect.subject,
        data=effect.data,
        job_webhook=job_webhook,
        to_endpoints=effect.to_endpoints,
        send_first=(w.sender, w.settings),
    )


async def relay(w: WorkerContext, entry_id: str) -> bool:
    """Claim the entry `entry_id`, carry it out and remove it; False when there is none (done
    already) or another relay holds it."""
    if not await effects.claim(w.redis, [entry_id], w.effects_lease):
        return False
    [entry] = await effects.load_many(w.redis, [entry_id])
    if entry is None:
        await effects.release(w.redis, entry_id)
        return False
    await _carry_out_entry(w, entry)
    return True


async def _carry_out_entry(w: WorkerContext, entry: effects.Entry) -> None:
    """The entry's effects in their order, then its removal (a claimed entry)."""
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
        await effects.remove(w.redis, entry.id)
        log.info("effects.relayed", entry=entry.id, subject=entry.subject, change=entry.change)


async def drain(w: WorkerContext, *, feed_seconds: float = FEED_SECONDS) -> Drained:
    """Carry out the waiting entries that nobody else holds, `RELAY_CONCURRENCY` at once and
    those of one subject in order, taking new ones for `feed_seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + feed_seconds
    limit = asyncio.Semaphore(RELAY_CONCURRENCY)
    latest: dict[str, asyncio.Task[None]] = {}  # the last entry taken of each subject
    taken: list[asyncio.Task[None]] = []
    seen: set[str] = set()

    async def one(entry: effects.Entry, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:
                await asyncio.wait([before])
            await _carry_out_entry(w, entry)
        except Exception:
            await effects.release(w.redis, entry.id)  # the next relay takes it up again
            raise
        finally:
            limit.release()

    out_of_time = False
    while True:
        if loop.time() > deadline:
            out_of_time = True
            break
        waiting = await effects.waiting(w.redis, limit=len(seen) + BATCH)
        fresh = [i for i in waiting if i not in seen]
        if not fresh:
            break
        seen.update(fresh)
        claimed = await effects.claim(w.redis, fresh, w.effects_lease)
        for entry in await effects.load_many(w.redis, [i for i in fresh if i in claimed]):
            if entry is None:
                continue
            await limit.acquire()
            task = asyncio.create_task(one(entry, latest.get(entry.subject)))
            latest[entry.subject] = task
            taken.append(task)
    outcomes = await asyncio.gather(*taken, return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failed:
        log.warning("effects.relay_failed", error=repr(failure))
    left = out_of_time and bool(await effects.waiting(w.redis, limit=1))
    return Drained(done=len(outcomes) - len(failed), failed=len(failed), left=left)


class Drained(NamedTuple):
    done: int
    failed: int
    """Entries given up after an error (released: a later relay takes them up again)."""
    left: bool
    """Entries are still waiting because the relay's time to take new ones ran out."""


async def resume(w: WorkerContext) -> None:
    """At start-up: relay what a dead worker left."""
    if await effects.waiting(w.redis, limit=1):
        await effects.trigger(w.queue)
        log.info("effects.resumed")


async def relay_effects(ctx: JobContext, slot: int) -> str:
    """Drain the outbox (the changes of time slot `slot` and whatever else is waiting); a
    drain that runs out of time queues the next. Burro's own store failing makes it run again
    soon."""
    try:
        drained = await drain(ctx.worker)
    except RedisError as exc:
        drained = Drained(done=0, failed=1, left=True)
        log.warning("effects.store_error", error=str(exc))
    if drained.failed:
        # Entries failed on Burro's own store (a receiver's failures are outcomes): again soon.
        raise Retry(defer=backoff(ctx.job_try, base=_STORE_RETRY_BASE, cap=_STORE_RETRY_CAP))
    if drained.left:
        await effects.trigger(ctx.worker.queue)
    return f"{drained.done} relayed"


async def sweep_effects(ctx: JobContext) -> int:
    """Queue a relay when entries were left waiting longer than SWEEP_AFTER (run on the
    clock)."""
    old = await effects.waiting(
        ctx.redis, written_before=time.time() - effects.SWEEP_AFTER, limit=1
    )
    if old:
        log.warning("effects.swept", oldest=old[0])
        await effects.trigger(ctx.worker.queue)
    return len(old)
