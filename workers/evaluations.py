"""Evaluation → worker: `run_evaluation` runs one evaluation to its end (see
`service.evaluations.runner`), with the worker's clients; `start_promotion` starts the
evaluation that gates a succeeded job's promotion (`service.evaluations.promotion`)."""

from __future__ import annotations

from service.evaluations import promotion, runner
from workers.context import JobContext


async def run_evaluation(ctx: JobContext, evaluation_id: str) -> str:
    """Run the evaluation `evaluation_id`; returns its status, for arq's log.

    A run works for the context's `evaluation_budget` seconds, then enqueues its continuation
    and carries on from the rows already stored: no run holds a worker's slot for long, so an
    evaluation never lengthens the recovery of fine-tuning jobs after a worker dies.
    """
    w = ctx.worker
    evaluation = await runner.run_evaluation(
        w.redis,
        w.queue,
        w.providers.client,
        w.models,
        w.settings.data_dir,
        evaluation_id,
        concurrency=w.evaluation_concurrency,
        retry=w.evaluation_retry,
        budget_seconds=w.evaluation_budget,
    )
    return "missing" if evaluation is None else evaluation.status


async def start_promotion(ctx: JobContext, job_id: str) -> str:
    """Create and enqueue the evaluation that gates job `job_id`'s promotion."""
    w = ctx.worker
    started = await promotion.start(w.redis, w.queue, w.settings, w.models, job_id)
    return started or "nothing to start"
