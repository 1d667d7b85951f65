"""Job → evaluation → alias: a promotion gate. A job that asks for one (`promotion`) moves its
`promote_to` alias only after its model was evaluated on a test set and scored at least as well
as the baseline (or the job's `min_similarity`); the alias history says why it moved or not.

`check` runs when the job is created (422 naming the field), `start` when it has succeeded
and `decide` when the evaluation has ended: both are effects of those changes, carried out by
the worker's relay (`service.effects`) before the change is announced. Each is safe to repeat.
"""

from __future__ import annotations

import structlog
from redis.asyncio import Redis

from service import tasks
from service.datasets.records import Dataset, users_key
from service.errors import BurroError, Unprocessable
from service.evaluations import runner
from service.evaluations.records import Evaluation, EvaluationCreate
from service.inference.aliases import move_alias, note_not_moved
from service.jobs.records import Job, Promotion, PromotionIn
from service.jobs.transitions import InvalidTransition, jobs, record, update_promotion
from service.models import ModelTable
from service.queue import Queue
from service.settings import Settings
from service.store import Collection

log = structlog.get_logger("burro.promotion")


def evaluation_id_for(job_id: str) -> str:
    """The gate's evaluation has a fixed id, so a repeated `start` finds it instead of making
    another."""
    return "eval_" + job_id.removeprefix("job_")


async def check(
    redis: Redis,
    settings: Settings,
    models: ModelTable,
    *,
    tenant: str,
    data: PromotionIn,
    promote_to: str | None,
) -> Promotion:
    """The gate a job's request asks for, checked like an evaluation request (422 naming the
    `promotion.…` field): a test set of the tenant's with examples, a baseline Burro knows."""
    if promote_to is None:
        raise Unprocessable(
            "promotion: a promotion gate needs promote_to, the alias it may move.",
            param="promotion",
        )
    field = "promotion.evaluation_dataset"
    dataset = await Collection(redis, "datasets", Dataset).get(data.evaluation_dataset)
    if dataset is None or dataset.tenant != tenant:  # another tenant's: the same answer
        raise Unprocessable(f"{field}: no dataset {data.evaluation_dataset!r}.", param=field)
    await runner.test_examples(settings, dataset, data.max_examples, param=field)
    if data.baseline_model is not None:
        await runner.resolve_baseline(
            redis,
            settings,
            models,
            tenant,
            data.baseline_model,
            param="promotion.baseline_model",
        )
    return Promotion(
        evaluation_dataset=dataset.id,
        min_similarity=data.min_similarity,
        baseline_model=data.baseline_model,
        max_examples=data.max_examples,
    )


async def start(
    redis: Redis, queue: Queue, settings: Settings, models: ModelTable, job_id: str
) -> str | None:
    """Create the gate's evaluation of a succeeded job and enqueue its run; returns its id
    (None when there is nothing to start). An evaluation that cannot be made (its test set or
    baseline is gone) decides the gate at once: not promoted, and why."""
    job = await jobs(redis).get(job_id)
    if job is None or job.promotion is None or job.promotion.status != "evaluating":
        return None
    gate = job.promotion
    evaluation_id = gate.evaluation or evaluation_id_for(job.id)
    try:
        evaluation = await runner.create_evaluation(
            redis,
            settings,
            models,
            tenant=job.tenant,
            data=EvaluationCreate(
                job=job.id,
                dataset=gate.evaluation_dataset,
                baseline_model=gate.baseline_model,
                max_examples=gate.max_examples,
            ),
            request_id=job.request_id,
            evaluation_id=evaluation_id,
            max_tokens=gate.max_tokens,
        )
    except BurroError as exc:
        await _conclude(
            redis,
            queue,
            job,
            promoted=False,
            reason=f"not promoted: the evaluation could not start ({exc.detail})",
            evaluation_id=None,
        )
        return None
    if gate.evaluation is None:
        await update_promotion(queue, job.id, evaluation=evaluation.id)
        await record(
            queue,
            job.id,
            f"Evaluating {job.fine_tuned_model} on {gate.evaluation_dataset} before promoting "
            f"it to {job.promote_to!r}",
            type="promotion",
            data={"evaluation": evaluation.id, "alias": job.promote_to},
        )
    # The evaluation holds the test set from here on.
    await redis.srem(users_key(gate.evaluation_dataset), job.id)  # type: ignore[misc]
    await queue.enqueue(tasks.RUN_EVALUATION, evaluation.id)
    log.info("promotion.evaluating", job=job.id, evaluation=evaluation.id)
    return evaluation.id


def verdict(gate: Promotion, evaluation: Evaluation) -> tuple[bool, str]:
    """(promote?, why) for an ended evaluation: the fine-tuned model's mean similarity must
    reach the threshold when the gate names one, else the baseline's."""
    summary = evaluation.summary
    if evaluation.status != "completed" or summary is None:
        why = evaluation.error.message if evaluation.error else "it did not complete"
        return False, f"not promoted: evaluation {evaluation.id} failed ({why})"
    tuned = summary.fine_tuned
    if tuned.answered == 0:
        return (
            False,
            f"not promoted: evaluation {evaluation.id}: the fine-tuned model answered nothing",
        )
    if gate.min_similarity is not None:
        bar, against = gate.min_similarity, "threshold"
    elif summary.baseline.answered == 0:
        return False, f"not promoted: evaluation {evaluation.id}: the baseline answered nothing"
    else:
        bar, against = summary.baseline.mean_similarity, "baseline"
    promoted = tuned.mean_similarity >= bar
    return promoted, (
        f"{'promoted' if promoted else 'not promoted'}: evaluation {evaluation.id} fine-tuned "
        f"{tuned.mean_similarity:.3f} {'≥' if promoted else '<'} {against} {bar:.3f}"
    )


async def decide(redis: Redis, queue: Queue, evaluation: Evaluation) -> None:
    """When `evaluation` is a job's promotion gate still open: move the alias, or note in its
    history why not, then close the gate. Anything else: nothing."""
    if not evaluation.terminal:
        return
    job = await jobs(redis).get(evaluation.job)
    if (
        job is None
        or job.promotion is None
        or job.promotion.evaluation != evaluation.id
        or job.promotion.status != "evaluating"
    ):
        return
    promoted, reason = verdict(job.promotion, evaluation)
    await _conclude(
        redis, queue, job, promoted=promoted, reason=reason, evaluation_id=evaluation.id
    )


async def _conclude(
    redis: Redis,
    queue: Queue,
    job: Job,
    *,
    promoted: bool,
    reason: str,
    evaluation_id: str | None,
) -> None:
    """The alias first (moved, or the reason it did not kept in its history), then the job's
    gate and timeline: a crash in between repeats idempotent steps."""
    assert job.promotion is not None
    alias = job.promote_to
    if alias is not None and job.fine_tuned_model is not None:
        if promoted:
            await move_alias(redis, job.tenant, alias, job, reason=reason)
        else:
            await note_not_moved(
                redis, job.tenant, alias, job_id=job.id, model=job.fine_tuned_model, reason=reason
            )
    try:
        await update_promotion(
            queue, job.id, status="promoted" if promoted else "not_promoted", reason=reason
        )
    except InvalidTransition:  # the job is gone
        return
    await record(
        queue,
        job.id,
        reason[0].upper() + reason[1:],
        type="promotion",
        level="info" if promoted else "warn",
        data={"alias": alias, "promoted": promoted, "evaluation": evaluation_id},
    )
    await redis.srem(users_key(job.promotion.evaluation_dataset), job.id)  # type: ignore[misc]
    log.info(
        "promotion.promoted" if promoted else "promotion.not_promoted",
        job=job.id,
        alias=alias,
        evaluation=evaluation_id,
    )
