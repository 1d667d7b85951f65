"""A status change and what follows it: one transaction writes the job, its event, its indexes
and an outbox entry; the relay carries the entry out in order, safe to run again; the sweep
finds entries whose relay was lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from service import effects
from service.effects import MoveAlias, PublishWebhook
from service.ids import new_id
from service.inference.aliases import get_alias
from service.inference.catalog import registered
from service.jobs.events import list_events
from service.jobs.records import UNFINISHED_KEY, Job
from service.jobs.transitions import create, jobs, transition
from service.settings import Settings
from service.webhooks.outbox import messages
from service.webhooks.signing import new_secret
from tests.support.data import BASE_MODEL, job_record
from tests.support.receivers import Receiver
from tests.support.workers import worker_context
from workers import relay
from workers.context import JobContext, WorkerContext

T = TypeVar("T")


def run(settings: Settings, scenario: Callable[[WorkerContext], Awaitable[T]]) -> T:
    async def main() -> T:
        async with worker_context(settings) as w:
            return await scenario(w)

    return asyncio.run(main())


def new_job(**fields: Any) -> Job:
    return job_record(new_id("job_"), status="pending", **fields)


async def succeed(w: WorkerContext, job: Job) -> Job:
    await create(w.queue, job)
    await transition(w.queue, job.id, "uploading")
    await transition(w.queue, job.id, "running", upstream_job_id="ftjob-x")
    return await transition(
        w.queue, job.id, "succeeded", fine_tuned_model=f"ft:{BASE_MODEL}:acme::{job.id[-6:]}"
    )


async def entries(w: WorkerContext) -> list[effects.Entry]:
    found = [await effects.load(w.redis, i) for i in await effects.waiting(w.redis)]
    return [e for e in found if e is not None]


def test_a_success_is_saved_with_its_event_indexes_and_effects_before_any_is_carried_out(
    settings: Settings,
) -> None:
    async def scenario(w: WorkerContext) -> None:
        job = new_job(promote_to="donkey", webhook_url="http://127.0.0.1:9/hook")
        job = await succeed(w, msgspec.structs.replace(job, webhook_secret=new_secret()))

        # Saved, servable, no longer unfinished, its event stored: all in the commit.
        stored = await jobs(w.redis).get(job.id)
        assert stored is not None and stored.status == "succeeded"
        assert (await registered(w.redis, "acme", job.id)) is not None
        assert not await w.redis.sismember(UNFINISHED_KEY, job.id)  # type: ignore[misc]
        timeline, _ = await list_events(w.redis, job.id)
        assert [e.data["status"] for e in timeline if e.data] == [
            "pending",
            "uploading",
            "running",
            "succeeded",
        ]
        # Nothing carried out yet (no worker runs here): it waits in the outbox, in order.
        assert await get_alias(w.redis, "acme", "donkey") is None
        waiting = {e.change: e for e in await entries(w)}
        assert sorted(waiting) == ["job.pending", "job.running", "job.succeeded", "job.uploading"]
        success = waiting["job.succeeded"].effects
        assert [type(e) for e in success] == [MoveAlias, PublishWebhook]
        assert isinstance(success[1], PublishWebhook)
        assert success[1].event_type == "job.succeeded"

    run(settings, scenario)


def test_the_relay_carries_out_an_entry_once_however_often_it_runs(
    settings: Settings, receiver: Receiver
) -> None:
    async def scenario(w: WorkerContext) -> None:
        job = new_job(
            promote_to="donkey", webhook_url=receiver.url("/hook"), webhook_secret=new_secret()
        )
        job = await succeed(w, job)
        waiting = {e.change: e for e in await entries(w)}
        entry = waiting["job.succeeded"]
        assert await relay.relay(w, entry.id)
        assert not await relay.relay(w, entry.id)  # done: nothing left to do
        # A relay that died after its effects, before removing the entry, runs them again.
        effects_done_again = effects.new_entry(job.id, entry.change, list(entry.effects))
        async with w.redis.pipeline(transaction=True) as pipe:
            effects.stage(pipe, effects_done_again)
            await pipe.execute()
        assert await relay.relay(w, effects_done_again.id)

        alias = await get_alias(w.redis, "acme", "donkey")
        assert alias is not None and alias.job == job.id
        assert [h.job for h in alias.history] == [job.id]
        received = [r.headers["webhook-id"] for r in receiver.requests]
        [message] = [
            m
            for m in await messages(w.redis).get_many(received)
            if m is not None and m.event_type == "job.succeeded"
        ]
        assert message.state == "delivered" and len(message.attempts) == 1
        assert received.count(message.id) == 1

    run(settings, scenario)


def test_a_change_nobody_hears_of_and_nothing_follows_leaves_no_entry(settings: Settings) -> None:
    async def scenario(w: WorkerContext) -> None:
        job = new_job()  # no webhook of its own, no endpoint of its tenant, no alias
        await succeed(w, job)
        assert await entries(w) == []
        stored = await jobs(w.redis).get(job.id)
        assert stored is not None and stored.status == "succeeded"

    run(settings, scenario)


def test_a_refused_effect_does_not_hold_up_the_ones_after_it(settings: Settings) -> None:
    async def scenario(w: WorkerContext) -> None:
        # `job_…` cannot be an alias: the move is refused, the webhook still goes out.
        job = await succeed(w, new_job(promote_to="job_not_an_alias"))
        entry = {e.change: e for e in await entries(w)}["job.succeeded"]
        assert await relay.relay(w, entry.id)
        assert await get_alias(w.redis, "acme", "job_not_an_alias") is None
        assert await effects.load(w.redis, entry.id) is None
        assert await w.redis.exists(f"burro:webhook-messages:by-job:{job.id}") == 0  # no hook

    run(settings, scenario)


def test_a_drain_carries_out_what_waits_but_not_what_another_relay_holds(
    settings: Settings,
) -> None:
    async def scenario(w: WorkerContext) -> None:
        jobs_ = [new_job(promote_to=f"alias{n}") for n in range(3)]
        for job in jobs_:
            await succeed(w, job)
        held = {e.subject: e for e in await entries(w)}[jobs_[0].id]
        assert await effects.claim(w.redis, [held.id], 60.0)

        drained = await relay.drain(w)

        assert drained == relay.Drained(done=2, failed=0, left=False)
        assert [e.id for e in await entries(w)] == [held.id]
        for n in (1, 2):
            assert await get_alias(w.redis, "acme", f"alias{n}") is not None
        assert await get_alias(w.redis, "acme", "alias0") is None

    run(settings, scenario)


def test_the_sweep_queues_a_relay_only_for_entries_left_waiting(settings: Settings) -> None:
    async def scenario(w: WorkerContext) -> None:
        ctx = JobContext(worker=w, function="sweep_effects", job_id="cron", job_try=1)
        fresh = effects.new_entry("job_new", "job.running", [])
        async with w.redis.pipeline(transaction=True) as pipe:
            effects.stage(pipe, fresh)
            await pipe.execute()
        assert await relay.sweep_effects(ctx) == 0
        assert await w.redis.keys("arq:job:effects:*") == []

        await w.redis.zadd(effects.OUTBOX_KEY, {fresh.id: time.time() - effects.SWEEP_AFTER - 1})
        assert await relay.sweep_effects(ctx) == 1
        assert len(await w.redis.keys("arq:job:effects:*")) == 1

    run(settings, scenario)
