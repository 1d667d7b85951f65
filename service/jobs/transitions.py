"""Job → every status change: `transition()` checks it against the table, saves it, records the
event, keeps the dataset users and alias up to date, then announces it (`notify.job_changed`)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis

from service.aliases import move_alias
from service.datasets.records import users_key
from service.errors import Conflict
from service.inference.catalog import register_model
from service.jobs import notify, quotas
from service.jobs.events import JobEvent, add_events, burro_event
from service.jobs.records import (
    JOBS,
    TERMINAL,
    TRANSITIONS,
    UNFINISHED_KEY,
    Job,
    JobStatus,
    active_key,
)
from service.queue import Queue
from service.store import PREFIX, Collection, now

log = structlog.get_logger("burro.jobs")

# The worker function that starts a succeeded job's promotion gate (its evaluation).
PROMOTE_FUNCTION = "start_promotion"

# A read-modify-write of one job holds its lock this long at most (a dead holder's lock expires).
_LOCK_MS = 10_000
_LOCK_WAIT_SECONDS = 15.0


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
    """The datasets a job keeps from deletion: its training and validation sets, and the test
    set of its promotion gate."""
    used = [job.training_dataset, job.validation_dataset]
    if job.promotion is not None:
        used.append(job.promotion.evaluation_dataset)
    return [d for d in used if d]


async def create(queue: Queue, job: Job) -> Job:
    """Store a new job (status `pending`), mark its datasets as in use, and announce it."""
    assert job.status == "pending"
    await jobs(queue.redis).save(job)
    await queue.redis.sadd(UNFINISHED_KEY, job.id)  # type: ignore[misc]
    await queue.redis.sadd(quotas.tenant_unfinished_key(job.tenant), job.id)  # type: ignore[misc]
    for dataset_id in filter(None, (job.training_dataset, job.validation_dataset)):
        await queue.redis.sadd(users_key(dataset_id), job.id)  # type: ignore[misc]
    event = burro_event("Job created", type="status", data={"status": "pending", "previous": None})
    await add_events(queue.redis, job.id, [event])
    log.info("job.created", job=job.id, tenant=job.tenant, provider=job.provider)
    await notify.job_changed(queue, job, event)
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

    Raises InvalidTransition when the table does not allow it, always for a terminal job.
    On `succeeded` the `promote_to` alias moves before the job is saved (a crash in between
    repeats an idempotent move) and so before anyone is told. A job with a promotion gate
    moves no alias here: its gate turns `evaluating` and the evaluation is enqueued after the
    save (`service.evaluations.promotion` moves the alias, or says why not, when it ends).
    """
    redis = queue.redis
    collection = jobs(redis)
    async with redis_lock(redis, _lock_key(job_id)):
        current = await collection.get(job_id)
        if current is None:
            raise InvalidTransition(f"No job {job_id!r}.")
        if status not in TRANSITIONS[current.status]:
            raise InvalidTransition(f"Job {job_id} is {current.status}; it cannot become {status}.")
        stamp = now()
        if status in TERMINAL:
            changes.setdefault("finished_at", stamp)
            changes["estimated_finish"] = None
        updated = msgspec.structs.replace(
            current, status=status, updated_at=stamp, status_changed_at=stamp, **changes
        )
        if status == "succeeded" and updated.fine_tuned_model:
            # Servable (and promoted) before anyone hears of it; both steps are idempotent.
            await register_model(
                redis,
                tenant=updated.tenant,
                job_id=updated.id,
                model=updated.fine_tuned_model,
                provider=updated.provider,
                base_model=updated.model,
            )
            if updated.promote_to and updated.promotion is not None:
                updated = msgspec.structs.replace(
                    updated,
                    promotion=msgspec.structs.replace(updated.promotion, status="evaluating"),
                )
            elif updated.promote_to:
                await move_alias(redis, updated.tenant, updated.promote_to, updated)
        await collection.save(updated)
        event = burro_event(
            message or f"Job is {status.replace('_', ' ')}",
            type="status",
            level="error" if status == "failed" else "warn" if level == "warn" else "info",
            data={"status": status, "previous": current.status},
        )
        await add_events(redis, job_id, [event])
        if status in TERMINAL:
            gate = updated.promotion
            # A gate about to evaluate still needs its test set: the gate frees it.
            keep = gate.evaluation_dataset if gate and gate.status == "evaluating" else None
            for dataset_id in _datasets_used(updated):
                if dataset_id != keep:
                    await redis.srem(users_key(dataset_id), job_id)  # type: ignore[misc]
            await redis.zrem(active_key(updated.provider), job_id)
            await redis.srem(UNFINISHED_KEY, job_id)  # type: ignore[misc]
            # Nothing trained, nothing billed: the estimate goes back to the monthly budget.
            refund = status != "succeeded" and updated.upstream_job_id is None
            await quotas.release(redis, updated, refund=refund)
    log.info(f"job.{status}", job=job_id, tenant=updated.tenant, previous=current.status)
    if updated.promotion is not None and updated.promotion.status == "evaluating":
        # The record first, then the work (a fixed id: a repeat collapses into one).
        await queue.enqueue(PROMOTE_FUNCTION, job_id, job_id=f"promotion:{job_id}")
    await notify.job_changed(queue, updated, event)
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
