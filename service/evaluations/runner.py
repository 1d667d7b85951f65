"""Evaluation: checked and stored here (`create_evaluation`), then run by a worker
(`run_evaluation`): every test example is put to the fine-tuned model and to the baseline,
each answer scored against the reference, and the summary says who wins how often.

Both functions take what they need (Redis, the queue, a client per provider, the model table)
and nothing of arq's, so the API, the worker, and a promotion gate can all call them. An
evaluation's end is written with its effects (`service.effects`): the promotion it may decide,
then its `evaluation.completed` (or `.failed`) webhook.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import structlog
from openai import AsyncOpenAI
from redis.asyncio import Redis

from service import effects, tasks
from service.datasets.records import Dataset, content_path, users_key
from service.effects import DecidePromotion, Effect, PublishWebhook
from service.errors import NotFound, Unprocessable
from service.evaluations import scoring
from service.evaluations.examples import Example, read_examples
from service.evaluations.records import (
    EVALUATIONS,
    Answer,
    Evaluation,
    EvaluationCreate,
    EvaluationError,
    EvaluationOut,
    Row,
    rows_key,
)
from service.ids import new_id
from service.inference.catalog import ModelNotFound, registered, resolve
from service.jobs.records import JOBS, Job
from service.models import ModelInfo, ModelTable
from service.providers import classify
from service.queue import Queue
from service.retries import RetryPolicy
from service.settings import Settings
from service.store import Collection, now

__all__ = [
    "COMPLETED_EVENT",
    "FAILED_EVENT",
    "ClientFor",
    "JobNotSucceeded",
    "RetryPolicy",
    "create_evaluation",
    "evaluations",
    "load_rows",
    "resolve_baseline",
    "rows_done",
    "run_evaluation",
    "test_examples",
]

log = structlog.get_logger("burro.evaluations")

COMPLETED_EVENT = "evaluation.completed"
FAILED_EVENT = "evaluation.failed"
# How many chat requests one evaluation has in flight at once, over both models.
DEFAULT_CONCURRENCY = 8

ClientFor = Callable[[str], AsyncOpenAI]
"""The upstream client for a provider name (`service.providers.Providers.client`)."""

_row_encoder = msgspec.msgpack.Encoder()
_row_decoder = msgspec.msgpack.Decoder(Row)


class JobNotSucceeded(Unprocessable):
    code = "job_not_succeeded"


class UnusableDataset(Unprocessable):
    code = "unusable_dataset"


class UnknownBaseline(Unprocessable):
    code = "unknown_baseline_model"


def evaluations(redis: Redis) -> Collection[Evaluation]:
    return Collection(redis, EVALUATIONS, Evaluation)


# --- Create ----------------------------------------------------------------------------------


async def create_evaluation(
    redis: Redis,
    settings: Settings,
    models: ModelTable,
    *,
    tenant: str,
    data: EvaluationCreate,
    request_id: str | None = None,
    evaluation_id: str | None = None,
    max_tokens: int | None = None,
) -> Evaluation:
    """Check a request and store its evaluation, `queued`; the caller enqueues its run
    (`tasks.RUN_EVALUATION`).

    404 for an unknown (or another tenant's) job or dataset; 422 for a job that has not
    succeeded, a dataset with no example to evaluate, or a baseline nobody can answer as.
    The dataset counts as in use (it cannot be deleted) until the evaluation ends.

    With `evaluation_id` (a promotion gate's fixed id) an evaluation already stored under it is
    returned as it is, so a repeated call creates nothing twice. `max_tokens` bounds every
    answer asked (a distillation's gate asks the student as its teacher was asked).
    """
    if evaluation_id is not None:
        existing = await evaluations(redis).get(evaluation_id)
        if existing is not None:
            return existing
    target = await registered(redis, tenant, data.job)
    if target is None:
        job = await Collection(redis, JOBS, Job).get(data.job)
        if job is None or job.tenant != tenant:
            raise NotFound(f"No job {data.job!r}.", param="job")
        raise JobNotSucceeded(
            f"job: job {data.job} is {job.status}; only a job that succeeded can be evaluated.",
            param="job",
        )
    dataset = await Collection(redis, "datasets", Dataset).get(data.dataset)
    if dataset is None or dataset.tenant != tenant:
        raise NotFound(f"No dataset {data.dataset!r}.", param="dataset")
    examples = await test_examples(settings, dataset, data.max_examples, param="dataset")
    baseline_model, baseline_provider, baseline_base = target.base_model, target.provider, None
    if data.baseline_model is not None:
        baseline_model, found_provider, baseline_base = await resolve_baseline(
            redis, settings, models, tenant, data.baseline_model, param="baseline_model"
        )
        baseline_provider = found_provider or baseline_provider
    stamp = now()
    evaluation = Evaluation(
        id=evaluation_id or new_id("eval_"),
        tenant=tenant,
        status="queued",
        job=data.job,
        dataset=dataset.id,
        model=target.model,
        provider=target.provider,
        base_model=target.base_model,
        baseline_model=baseline_model,
        baseline_provider=baseline_provider,
        baseline_base_model=baseline_base or baseline_model,
        max_examples=data.max_examples,
        examples=len(examples),
        created_at=stamp,
        updated_at=stamp,
        request_id=request_id,
        max_tokens=max_tokens,
    )
    await evaluations(redis).save(evaluation)
    await redis.sadd(users_key(dataset.id), evaluation.id)  # type: ignore[misc]
    log.info("evaluation.created", evaluation=evaluation.id, job=data.job, examples=len(examples))
    return evaluation


async def test_examples(
    settings: Settings, dataset: Dataset, max_examples: int, *, param: str
) -> list[Example]:
    """The examples of `dataset` an evaluation puts to the models (422 naming `param` when it
    is no chat set or has none with an assistant message after a prompt)."""
    if dataset.kind != "chat":
        raise UnusableDataset(
            f"{param}: {dataset.id} is a {dataset.kind} set; an evaluation needs a chat set.",
            param=param,
        )
    path = content_path(settings.data_dir, dataset.id)
    try:
        examples = await anyio.to_thread.run_sync(read_examples, path, max_examples)
    except FileNotFoundError:
        raise UnusableDataset(
            f"{param}: the content of {dataset.id} is gone.", param=param
        ) from None
    if not examples:
        raise UnusableDataset(
            f"{param}: no example of {dataset.id} has an assistant message after a prompt.",
            param=param,
        )
    return examples


async def resolve_baseline(
    redis: Redis, settings: Settings, models: ModelTable, tenant: str, name: str, *, param: str
) -> tuple[str, str | None, str | None]:
    """(model, provider, base model) a baseline named `name` answers as: one of the tenant's
    models or aliases, or a base model of the table (provider None: the fine-tuned model's).
    422 naming `param` for anything else."""
    try:
        found = await resolve(redis, settings, tenant, name, models=models)
        return found.model, found.provider, found.base_model
    except ModelNotFound:
        if name.startswith("ft:") or models.get(name) is None:
            raise UnknownBaseline(
                f"{param}: {name!r} is none of your models or aliases and no base model Burro "
                "knows.",
                param=param,
            ) from None
        return name, None, None


# --- Rows ------------------------------------------------------------------------------------


async def load_rows(redis: Redis, evaluation_id: str) -> list[Row]:
    """The rows scored so far, in example order."""
    raw: dict[bytes, bytes] = await redis.hgetall(rows_key(evaluation_id))  # type: ignore[misc]
    return sorted((_row_decoder.decode(v) for v in raw.values()), key=lambda r: r.index)


async def rows_done(redis: Redis, evaluation_id: str) -> int:
    return int(await redis.hlen(rows_key(evaluation_id)))  # type: ignore[misc]


# --- Run -------------------------------------------------------------------------------------


async def run_evaluation(
    redis: Redis,
    queue: Queue,
    client_for: ClientFor,
    models: ModelTable,
    data_dir: Path,
    evaluation_id: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    retry: RetryPolicy | None = None,
    budget_seconds: float | None = None,
) -> Evaluation | None:
    """Run an evaluation to its end and return it (None when there is no such evaluation).

    With `budget_seconds`, a run that has not finished by then stops, keeps the rows it scored
    and enqueues its own continuation: no single queued job runs long, so a worker that dies
    holds the evaluation for minutes, not an hour.

    Safe to run twice: a finished evaluation is returned as is, and rows already scored are
    not asked again. Each row is stored as soon as it is scored. At most `concurrency` chat
    requests are in flight; each is tried again on transient failures as `retry` says, and a
    request that still fails is kept as that answer's `error` (it loses the example).
    """
    retry = retry or RetryPolicy()
    collection = evaluations(redis)
    evaluation = await collection.get(evaluation_id)
    if evaluation is None:
        log.warning("evaluation.missing", evaluation=evaluation_id)
        return None
    if evaluation.terminal:
        return evaluation  # what follows its end is in the outbox
    if evaluation.status == "queued":
        stamp = now()
        evaluation = msgspec.structs.replace(
            evaluation, status="running", started_at=stamp, updated_at=stamp
        )
        await collection.save(evaluation)
        log.info("evaluation.started", evaluation=evaluation.id)
    path = content_path(data_dir, evaluation.dataset)
    try:
        examples = await anyio.to_thread.run_sync(read_examples, path, evaluation.max_examples)
        fine_tuned_client = client_for(evaluation.provider)
        baseline_client = client_for(evaluation.baseline_provider)
    except FileNotFoundError:
        return await _finish(
            redis, queue, evaluation, error=("dataset_missing", "The dataset's content is gone.")
        )
    except Unprocessable as exc:  # the provider is no longer configured
        return await _finish(redis, queue, evaluation, error=(exc.code, exc.detail))
    done = {
        int(k)
        for k in await redis.hkeys(rows_key(evaluation.id))  # type: ignore[misc]
    }
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int, example: Example) -> None:
        fine_tuned, baseline = await asyncio.gather(
            _ask(fine_tuned_client, evaluation.model, evaluation.base_model, example),
            _ask(
                baseline_client,
                evaluation.baseline_model,
                evaluation.baseline_base_model or evaluation.baseline_model,
                example,
            ),
        )
        row = Row(
            index=index,
            line=example.line,
            prompt=example.prompt,
            reference=example.reference,
            fine_tuned=fine_tuned,
            baseline=baseline,
            winner=scoring.winner(fine_tuned, baseline),
        )
        encoded = _row_encoder.encode(row)
        await redis.hset(rows_key(evaluation.id), str(index), encoded)  # type: ignore[misc, arg-type]

    async def _ask(client: AsyncOpenAI, model: str, price_model: str, example: Example) -> Answer:
        async with limit:
            return await ask(
                client,
                model,
                example,
                models.get(price_model),
                retry,
                max_tokens=evaluation.max_tokens,
            )

    try:
        async with asyncio.timeout(budget_seconds), asyncio.TaskGroup() as group:
            for index, example in enumerate(examples):
                if index not in done:
                    group.create_task(one(index, example))
    except TimeoutError:
        scored = await redis.hlen(rows_key(evaluation.id))  # type: ignore[misc]
        if scored == len(done):
            return await _finish(
                redis,
                queue,
                evaluation,
                error=("no_progress", f"No example was answered in {budget_seconds} s."),
            )
        await queue.enqueue(
            tasks.RUN_EVALUATION,
            evaluation.id,
            job_id=tasks.evaluation_continuation_id(evaluation.id, scored),
        )
        log.info("evaluation.continued", evaluation=evaluation.id, rows_done=scored)
        return evaluation
    return await _finish(redis, queue, evaluation)


async def ask(
    client: AsyncOpenAI,
    model: str,
    example: Example,
    prices: ModelInfo | None,
    retry: RetryPolicy,
    *,
    max_tokens: int | None = None,
) -> Answer:
    """Put one prompt to `model` at temperature 0 and score the answer against the reference.

    `prices` is the model table's entry whose inference prices apply (None: cost unknown);
    `max_tokens` bounds the answer (None: the model's own limit).
    """
    options: dict[str, Any] = {}
    if example.tools is not None:
        options["tools"] = example.tools
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        try:
            completion = await client.chat.completions.create(
                model=model,
                messages=example.messages,  # type: ignore[arg-type]
                temperature=0,
                **options,
            )
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                log.exception("evaluation.request_error", model=model)
                return Answer(model=model, error=f"internal_error: {type(exc).__name__}")
            if failure.transient and attempt < retry.max_tries:
                delay = retry.delay(attempt)
                log.info("evaluation.request_retry", model=model, code=failure.code, delay=delay)
                await asyncio.sleep(delay)  # a backoff between tries, bounded by max_tries
                continue
            return Answer(model=model, error=f"{failure.code}: {failure.message}")
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        break
    choice = completion.choices[0] if completion.choices else None
    text = ""
    if choice is not None:
        message = choice.message
        if message.content:
            text = message.content
        elif message.tool_calls:
            text = msgspec.json.encode([c.model_dump() for c in message.tool_calls]).decode()
    usage = completion.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    completion_tokens = usage.completion_tokens if usage else 0
    cost = None
    if prices is not None:
        cost = round(
            (
                prompt_tokens * prices.input_usd_per_1m_tokens
                + completion_tokens * prices.output_usd_per_1m_tokens
            )
            / 1e6,
            8,
        )
    return Answer(
        model=model,
        text=text,
        exact_match=scoring.exact_match(text, example.reference),
        similarity=scoring.similarity(text, example.reference),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        cost_usd=cost,
        finish_reason=choice.finish_reason if choice is not None else None,
    )


async def _finish(
    redis: Redis,
    queue: Queue,
    evaluation: Evaluation,
    *,
    error: tuple[str, str] | None = None,
) -> Evaluation:
    """Summarise, then in one transaction mark the evaluation ended, free its dataset, and
    write what follows (a promotion it gates decided, its webhook), which the relay carries out.
    """
    rows = await load_rows(redis, evaluation.id)
    summary = scoring.summarize(
        rows, model=evaluation.model, baseline_model=evaluation.baseline_model
    )
    if error is None and rows and all(r.winner is None for r in rows):
        # Not one answer from either model: nothing was evaluated.
        first = rows[0].fine_tuned.error or "every request failed"
        error = ("all_requests_failed", f"Every request failed; the first: {first}")
    stamp = now()
    evaluation = msgspec.structs.replace(
        evaluation,
        status="failed" if error else "completed",
        summary=summary,
        error=None if error is None else EvaluationError(code=error[0], message=error[1]),
        updated_at=stamp,
        finished_at=stamp,
    )
    followed = await _effects_of(redis, evaluation, len(rows))
    entry = effects.new_entry(evaluation.id, _event_type(evaluation), followed)
    collection = evaluations(redis)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(collection.key(evaluation.id), collection.encode(evaluation))
        pipe.zadd(collection.index_key(evaluation.tenant), {evaluation.id: evaluation.created_at})
        pipe.srem(users_key(evaluation.dataset), evaluation.id)
        effects.stage(pipe, entry)
        await pipe.execute()
    log.info(
        "evaluation.finished",
        evaluation=evaluation.id,
        status=evaluation.status,
        winner=summary.winner,
        wins=summary.wins,
    )
    await effects.trigger(queue)
    return evaluation


async def _effects_of(redis: Redis, evaluation: Evaluation, done: int) -> list[Effect]:
    """What follows an evaluation's end: a job's promotion gate that waits on it is decided
    (its alias moves, or its history says why not) before anyone hears of the result; then
    `evaluation.completed` (or `.failed`) goes to the tenant's endpoints that subscribe and to
    the job's own webhook, with the evaluation and its summary, not its rows."""
    job = await Collection(redis, JOBS, Job).get(evaluation.job)
    followed: list[Effect] = []
    if job is not None and job.promotion is not None and job.promotion.status == "evaluating":
        followed.append(DecidePromotion(evaluation_id=evaluation.id))
    followed.append(
        PublishWebhook(
            tenant=evaluation.tenant,
            # The evaluation is the subject: one message per evaluation and destination.
            subject=evaluation.id,
            event_type=_event_type(evaluation),
            data=msgspec.json.encode(EvaluationOut.of(evaluation, done=done)),
            webhook_url=job.webhook_url if job is not None else None,
            webhook_secret=job.webhook_secret if job is not None else None,
        )
    )
    return followed


def _event_type(evaluation: Evaluation) -> str:
    return COMPLETED_EVENT if evaluation.status == "completed" else FAILED_EVENT
