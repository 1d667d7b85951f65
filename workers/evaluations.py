"""Evaluation → worker: `run_evaluation` runs one evaluation to its end (see
`service.evaluations.runner`), with the worker's clients; `start_promotion` starts the
evaluation that gates a succeeded job's promotion (`service.evaluations.promotion`)."""

from __future__ import annotations

from typing import Any

from arq.worker import Function, func

from service.evaluations import promotion, runner
from service.jobs.transitions import PROMOTE_FUNCTION
from workers.context import WorkerContext

# arq locks a dead worker's job for the LONGEST function timeout + 10 s, whatever the job: a
# run works for RUN_BUDGET seconds, then enqueues its continuation, and carries on from the
# rows already stored, so an evaluation never lengthens the recovery of fine-tuning jobs.
RUN_BUDGET = 90.0
RUN_TIMEOUT = 120
RUN_TRIES = 3


async def run_evaluation(ctx: dict[str, Any], evaluation_id: str) -> str:
    """Run the evaluation `evaluation_id`; returns its status, for arq's log."""
    w: WorkerContext = ctx["burro"]
    evaluation = await runner.run_evaluation(
        w.redis,
        w.queue,
        w.providers.client,
        w.models,
        w.settings.data_dir,
        evaluation_id,
        concurrency=int(ctx.get("evaluation_concurrency", runner.DEFAULT_CONCURRENCY)),
        retry=ctx.get("evaluation_retry"),
        budget_seconds=float(ctx.get("evaluation_budget", RUN_BUDGET)),
    )
    return "missing" if evaluation is None else evaluation.status


async def start_promotion(ctx: dict[str, Any], job_id: str) -> str:
    """Create and enqueue the evaluation that gates job `job_id`'s promotion."""
    w: WorkerContext = ctx["burro"]
    started = await promotion.start(w.redis, w.queue, w.settings, w.models, job_id)
    return started or "nothing to start"


def evaluation_functions() -> list[Function]:
    """The evaluation functions for the worker's `functions`."""
    return [
        func(run_evaluation, name=runner.RUN_FUNCTION, timeout=RUN_TIMEOUT, max_tries=RUN_TRIES),
        func(start_promotion, name=PROMOTE_FUNCTION, timeout=60, max_tries=RUN_TRIES),
    ]
