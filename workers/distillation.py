"""Distillation → worker: `ask_teacher` runs a distillation's teacher phase for one time box
(see `service.distillation.teacher`), with the worker's clients."""

from __future__ import annotations

from service.distillation import teacher
from workers.context import JobContext


async def ask_teacher(ctx: JobContext, job_id: str) -> str:
    """Ask the teacher of job `job_id` its prompts for up to the worker's evaluation budget,
    then queue the continuation, or hand the job over to training; returns what it did."""
    w = ctx.worker
    return await teacher.run_teacher(
        w.redis,
        w.queue,
        w.providers.client,
        w.models,
        w.settings,
        job_id,
        retry=w.evaluation_retry,
        budget_seconds=w.evaluation_budget,
    )
