"""Jobs Burro trains itself, from the control worker's side: queue them for the trainers,
cancel them, and watch that every one is either queued or held by a living trainer.

The trainers (`burro trainer`, `trainer.worker`) do the rest; see `service.jobs.local`.
"""

from __future__ import annotations

import structlog
from arq.constants import in_progress_key_prefix, job_key_prefix

from service import tasks
from service.jobs import local
from service.jobs.records import TERMINAL, Job
from service.jobs.transitions import InvalidTransition, jobs, record, transition, update
from workers.context import WorkerContext

log = structlog.get_logger("burro.worker")


async def start(w: WorkerContext, job: Job) -> None:
    """Hand `job` to the trainers: its datasets are Burro's own files, nothing is uploaded."""
    if job.upstream_job_id is None:
        job = await update(
            w.queue,
            job.id,
            training_file=job.training_dataset,
            validation_file=job.validation_dataset,
            upstream_job_id=job.id,
        )
    try:
        if job.status == "pending":  # the table's way to queued: the files are "uploaded"
            job = await transition(
                w.queue, job.id, "uploading", message="Handing the datasets to Burro's trainers"
            )
        if job.status in ("uploading", "validating_files"):
            job = await transition(w.queue, job.id, "queued", message="Waiting for a trainer")
    except InvalidTransition:
        return  # cancelled meanwhile
    if job.cancel_requested:
        await cancel(w, job.id)
        return
    if await local.current_attempt(w.redis, job.id) == 0:
        attempt = await local.queue_attempt(w.queue, job.id)
        log.info("job.training_queued", job=job.id, attempt=attempt)


async def cancel(w: WorkerContext, job_id: str) -> None:
    """Cancel a local job: at once when no trainer holds it, else its trainer stops within one
    step (it reads `cancel_requested`) and records the cancellation itself."""
    job = await jobs(w.redis).get(job_id)
    if job is None or job.status in TERMINAL:
        return
    if await local.lease_holder(w.redis, job_id) is not None:
        log.info("job.cancel_signalled", job=job_id)
        return
    try:
        await transition(w.queue, job_id, "cancelled", message="Cancelled before training began")
    except InvalidTransition:
        return
    await local.finished(w.redis, job_id)


async def watch(w: WorkerContext) -> int:
    """Queue the next attempt of every local job that nobody trains and nothing will: its
    trainer stopped renewing the lease, or its queued attempt expired. Returns how many."""
    requeued = 0
    ids = await local.active_jobs(w.redis)
    for job_id, job in zip(ids, await jobs(w.redis).get_many(ids), strict=True):
        if job is None or job.status in TERMINAL:
            await local.finished(w.redis, job_id)
            continue
        if await local.lease_holder(w.redis, job_id) is not None:
            continue
        attempt = await local.current_attempt(w.redis, job_id)
        if await _attempt_waiting(w, job_id, attempt):
            continue
        if job.status == "running":
            await record(
                w.queue,
                job_id,
                "The trainer stopped answering; another trainer resumes from the last checkpoint.",
                type="trainer_lost",
                level="warn",
                data={"attempt": attempt},
            )
        next_attempt = await local.queue_attempt(w.queue, job_id)
        log.warning("job.training_requeued", job=job_id, status=job.status, attempt=next_attempt)
        requeued += 1
    return requeued


async def _attempt_waiting(w: WorkerContext, job_id: str, attempt: int) -> bool:
    """The attempt waits in the trainers' queue (queued, not started). One that started and
    holds no lease belongs to a dead trainer: arq keeps it "in progress" until its timeout."""
    arq_id = tasks.TRAIN_JOB.job_id(job_id, attempt)
    async with w.redis.pipeline(transaction=False) as pipe:
        pipe.exists(job_key_prefix + str(arq_id))
        pipe.exists(in_progress_key_prefix + str(arq_id))
        queued, started = await pipe.execute()
    return bool(queued) and not started
