"""Job → every status change: `transition()` checks it against the table and writes it, with
everything that follows from it, in one Redis transaction.

The write is the job, its event, what the change does to Burro's own indexes (unfinished jobs,
active polls, datasets in use, the tenant's limits and spend, the catalog of servable models) and
an outbox entry of its effects (`service.effects`: the alias to move, the promotion's evaluation
to start, the webhooks to send), which the worker's relay carries out after the commit. So a
crash anywhere loses nothing: before the commit nothing happened, after it the relay has it all.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service import effects, faults, metrics
from service.datasets.records import users_key
from service.effects import (
    Effect,
    Entry,
    MoveAlias,
    PublishOpenAIEvent,
    PublishWebhook,
    StartPromotion,
)
from service.errors import Conflict
from service.inference.catalog import stage_registration
from service.jobs import quotas
from service.jobs.events import JobEvent, add_events, burro_event, sequence_key
from service.jobs.events import stage as stage_event
from service.jobs.records import (
    JOBS,
    TERMINAL,
    TRANSITIONS,
    UNFINISHED_KEY,
    Job,
    JobOut,
    JobStatus,
    active_key,
    events_read_key,
)
from service.queue import Queue
from service.store import PREFIX, Collection, now
from service.webhooks.openai_form import openai_event
from service.webhooks.outbox import has_endpoints

log = structlog.get_logger("burro.jobs")

# A read-modify-write of one job holds its lock this long at most (a dead holder's lock expires).
_LOCK_MS = 10_000
_LOCK_WAIT_SECONDS = 15.0

_wire_encoder = msgspec.json.Encoder()


class InvalidTransition(Conflict):
    """The job cannot move to that status (a terminal status never changes)."""

    code = "invalid_transition"


def jobs(redis: Redis) -> Collection[Job]:
    return Collection(redis, JOBS, Job)


@asynccontextmanager
async def redis_lock(
    redis: Redis, key: str, *, ttl_ms: int = _LOCK_MS, wait: float = _LOCK_WAIT_SECONDS
) -> AsyncIterator[None]:
    """A short Redis lock (SET NX PX); raises TimeoutError when it stays taken for `wait` s."""
    token = secrets.token_hex(8)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not await redis.set(key, token, nx=True, px=ttl_ms):
        if loop.time() > deadline:
            raise TimeoutError(f"lock {key} is held")
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        await release(redis, key, token)


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


async def release(redis: Redis, key: str, token: str) -> None:
    """Delete a lock only if it is still ours."""
    await redis.eval(_RELEASE, 1, key, token)  # type: ignore[misc]


def _lock_key(job_id: str) -> str:
    return f"{PREFIX}:jobs:lock:{job_id}"


def _datasets_used(job: Job) -> list[str]:
    """The datasets a job keeps from deletion: its training and validation sets, the test set
    of its promotion gate, and a distillation's held-out set."""
    used = [job.training_dataset, job.validation_dataset]
    if job.promotion is not None:
        used.append(job.promotion.evaluation_dataset)
    if job.distillation is not None and job.distillation.holdout_dataset is not None:
        used.append(job.distillation.holdout_dataset)
    return [d for d in used if d]


def effects_of(job: Job, *, to_endpoints: bool = True) -> list[Effect]:
    """What must follow `job`'s entering its status, in order: on success its alias moves (or
    its promotion gate starts evaluating) before anyone is told; then `job.<status>` goes to its
    webhook and, when it has any (`to_endpoints`), the tenant's endpoints, and an end OpenAI
    announces goes in OpenAI's form to the endpoints that name it."""
    followed: list[Effect] = []
    if job.status == "succeeded" and job.promote_to and job.fine_tuned_model:
        if job.promotion is not None and job.promotion.status == "evaluating":
            followed.append(StartPromotion(job_id=job.id))
        elif job.promotion is None:
            followed.append(
                MoveAlias(
                    tenant=job.tenant,
                    alias=job.promote_to,
                    job_id=job.id,
                    reason=f"promote_to {job.id}",
                )
            )
    if job.webhook_url is None and not to_endpoints:
        return followed  # nobody to tell
    followed.append(
        PublishWebhook(
            tenant=job.tenant,
            subject=job.id,
            event_type=f"job.{job.status}",
            data=_wire_encoder.encode(JobOut.of(job)),
            webhook_url=job.webhook_url,
            webhook_secret=job.webhook_secret,
            to_endpoints=to_endpoints,
        )
    )
    in_openai_form = openai_event(job.id, job.status, job.finished_at or job.updated_at)
    if to_endpoints and in_openai_form is not None:
        event_type, body = in_openai_form
        followed.append(
            PublishOpenAIEvent(tenant=job.tenant, subject=job.id, event_type=event_type, body=body)
        )
    return followed


def _stage_indexes(pipe: Pipeline, job: Job) -> None:
    """Add to `pipe` what `job`'s new status changes in Burro's indexes."""
    if job.status == "pending":
        pipe.sadd(UNFINISHED_KEY, job.id)
        pipe.sadd(quotas.tenant_unfinished_key(job.tenant), job.id)
        for dataset_id in filter(None, (job.training_dataset, job.validation_dataset)):
            pipe.sadd(users_key(dataset_id), job.id)
        return
    if job.status == "succeeded" and job.fine_tuned_model:
        # Servable from the moment it is succeeded: who reads the one reads the other.
        stage_registration(
            pipe,
            tenant=job.tenant,
            job_id=job.id,
            model=job.fine_tuned_model,
            provider=job.provider,
            base_model=job.model,
        )
    if job.status in TERMINAL:
        gate = job.promotion
        # A gate about to evaluate still needs its test set: the gate frees it.
        keep = gate.evaluation_dataset if gate and gate.status == "evaluating" else None
        for dataset_id in _datasets_used(job):
            if dataset_id != keep:
                pipe.srem(users_key(dataset_id), job.id)
        pipe.zrem(active_key(job.provider), job.id)
        pipe.zrem(events_read_key(job.provider), job.id)
        pipe.srem(UNFINISHED_KEY, job.id)
        quotas.stage_settlement(pipe, job)


async def _commit(
    redis: Redis, job: Job, event: JobEvent, sequence: int, entry: Entry | None
) -> None:
    """Write `job`, its event, its indexes and its outbox entry as one transaction."""
    collection = jobs(redis)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(collection.key(job.id), collection.encode(job))
        pipe.zadd(collection.index_key(job.tenant), {job.id: job.created_at}, nx=True)
        stage_event(pipe, job.id, event, sequence)
        _stage_indexes(pipe, job)
        if entry is not None:
            effects.stage(pipe, entry)
        await pipe.execute()


async def _entry(redis: Redis, job: Job) -> Entry | None:
    """The outbox entry of `job`'s new status; None when nothing follows from it (no alias, no
    gate, and nobody to tell: no webhook of its own and no endpoint of its tenant)."""
    followed = effects_of(job, to_endpoints=await has_endpoints(redis, job.tenant))
    return effects.new_entry(job.id, f"job.{job.status}", followed) if followed else None


def _moved(current: Job, status: JobStatus, changes: dict[str, Any]) -> Job:
    """`current` in `status`, with `changes`. A terminal job is finished and expects nothing
    more; a job that succeeded with a promotion gate has its gate evaluate before the alias
    moves (`service.evaluations.promotion`)."""
    stamp = now()
    if status in TERMINAL:
        changes = {"finished_at": stamp, **changes, "estimated_finish": None}
    updated = msgspec.structs.replace(
        current, status=status, updated_at=stamp, status_changed_at=stamp, **changes
    )
    gate = updated.promotion
    if status == "succeeded" and gate and updated.promote_to and updated.fine_tuned_model:
        updated = msgspec.structs.replace(
            updated, promotion=msgspec.structs.replace(gate, status="evaluating")
        )
    return updated


async def create(queue: Queue, job: Job) -> Job:
    """Store a new job (status `pending`), mark its datasets as in use, and announce it."""
    assert job.status == "pending"
    event = burro_event("Job created", type="status", data={"status": "pending", "previous": None})
    entry = await _entry(queue.redis, job)
    sequence = int(await queue.redis.incr(sequence_key(job.id)))
    await _commit(queue.redis, job, event, sequence, entry)
    metrics.count_job_transition(job.status)
    log.info("job.created", job=job.id, tenant=job.tenant, provider=job.provider)
    if entry is not None:
        await effects.trigger(queue)
    return job


async def transition(
    queue: Queue,
    job_id: str,
    status: JobStatus,
    *,
    message: str | None = None,
    level: str = "info",
    **changes: Any,
) -> Job:
    """Move the job to `status` (with `changes` to other fields), the one way a status changes.

    Raises InvalidTransition when the table does not allow it, always for a terminal job. The
    change and all that follows from it are one transaction (see the module); its effects are
    carried out by the relay, queued once the transaction is committed.
    """
    redis = queue.redis
    collection = jobs(redis)
    async with redis_lock(redis, _lock_key(job_id)):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(collection.key(job_id))
            pipe.incr(sequence_key(job_id))
            raw, sequence = await pipe.execute()
        current = None if raw is None else collection.decode(raw)
        if current is None:
            raise InvalidTransition(f"No job {job_id!r}.")
        if status not in TRANSITIONS[current.status]:
            raise InvalidTransition(f"Job {job_id} is {current.status}; it cannot become {status}.")
        updated = _moved(current, status, changes)
        event = burro_event(
            message or f"Job is {status.replace('_', ' ')}",
            type="status",
            level="error" if status == "failed" else "warn" if level == "warn" else "info",
            data={"status": status, "previous": current.status},
        )
        entry = await _entry(redis, updated)
        await _commit(redis, updated, event, int(sequence), entry)
    metrics.count_job_transition(status)
    log.info(f"job.{status}", job=job_id, tenant=updated.tenant, previous=current.status)
    await faults.reach(redis, f"committed:job.{status}")
    if entry is not None:
        await effects.trigger(queue)
    return updated


async def update(queue: Queue, job_id: str, **changes: Any) -> Job:
    """Change fields other than the status (upstream ids, mirrored numbers) under the job lock."""
    if "status" in changes:
        raise ValueError("a status changes only through transition()")
    collection = jobs(queue.redis)
    async with redis_lock(queue.redis, _lock_key(job_id)):
        current = await collection.get(job_id)
        if current is None:
            raise InvalidTransition(f"No job {job_id!r}.")
        updated = msgspec.structs.replace(current, updated_at=now(), **changes)
        await collection.save(updated)
    return updated


async def update_promotion(queue: Queue, job_id: str, **changes: Any) -> Job:
    """Change fields of the job's promotion gate under the job lock (the job may be terminal:
    the gate is decided after the job succeeded)."""
    collection = jobs(queue.redis)
    async with redis_lock(queue.redis, _lock_key(job_id)):
        current = await collection.get(job_id)
        if current is None or current.promotion is None:
            raise InvalidTransition(f"No job {job_id!r} with a promotion gate.")
        promotion = msgspec.structs.replace(current.promotion, **changes)
        updated = msgspec.structs.replace(current, promotion=promotion, updated_at=now())
        await collection.save(updated)
    return updated


async def update_distillation(queue: Queue, job_id: str, **changes: Any) -> Job:
    """Change fields of the job's distillation under the job lock (its progress, counted as
    the teacher answers)."""
    collection = jobs(queue.redis)
    async with redis_lock(queue.redis, _lock_key(job_id)):
        current = await collection.get(job_id)
        if current is None or current.distillation is None:
            raise InvalidTransition(f"No job {job_id!r} with a distillation.")
        distillation = msgspec.structs.replace(current.distillation, **changes)
        updated = msgspec.structs.replace(current, distillation=distillation, updated_at=now())
        await collection.save(updated)
    return updated


@asynccontextmanager
async def job_locked(redis: Redis, job_id: str) -> AsyncIterator[None]:
    """Hold the job's lock (the one `transition` and `update` take) for a change of several
    records at once, such as a distillation's hand-over to training."""
    async with redis_lock(redis, _lock_key(job_id)):
        yield


async def record(
    queue: Queue,
    job_id: str,
    message: str,
    *,
    type: str = "message",
    level: str = "info",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Add one of Burro's own events (a retry, a stuck notice, …) to the job's timeline."""
    event = burro_event(
        message,
        type=type,
        level="warn" if level == "warn" else "error" if level == "error" else "info",
        data=data,
    )
    await add_events(queue.redis, job_id, [event])
    return event
