"""Distillation → worker: one time box of a distillation's teacher phase (see
`service.distillation.teacher`), with the worker's clients."""

from __future__ import annotations

import structlog

from service.distillation import teacher
from workers.context import WorkerContext

log = structlog.get_logger("burro.worker")


async def ask_teacher(w: WorkerContext, job_id: str) -> None:
    """Ask the teacher of job `job_id` its prompts for up to the worker's evaluation budget,
    then queue the continuation, or hand the job over to training."""
    outcome = await teacher.run_teacher(
        w.redis,
        w.queue,
        w.providers.client,
        w.models,
        w.settings,
        job_id,
        retry=w.evaluation_retry,
        budget_seconds=w.evaluation_budget,
    )
    log.info("distillation.teacher_run", job=job_id, outcome=outcome)
