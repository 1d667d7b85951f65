"""Distillation → the teacher phase: ask the teacher every prompt, keep each answer as it comes,
then write the answers as two datasets and hand the job over to training.

A run asks at temperature 0 with at most `max_concurrency` requests in flight, each tried again
on transient failures (`service.retries`), and stores each answer in Redis the moment it arrives,
with its tokens counted in the tenant's usage and the job's progress, in one atomic step. A run
is time-boxed like an evaluation's: after its budget it queues its continuation. A run that starts
again (its worker was killed, or it is the continuation) asks only the prompts with no stored
answer: the teacher is never asked the same prompt twice, and no answer is counted twice.

When every prompt has its answer (or has failed for good), the answers of the training prompts
become the job's training set and those of the held-out prompts its promotion gate's test set
(references = the teacher's answers), both stored and checked like uploads. The job then goes
on as any job of its provider does, from the upload step.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime

import anyio.to_thread
import msgspec
import structlog
from openai import AsyncOpenAI
from redis.asyncio import Redis

from service import tasks
from service.datasets.records import content_path, users_key
from service.datasets.writing import NotStored, store_jsonl
from service.distillation.prompts import (
    MIN_EXAMPLES,
    distilled_example,
    jsonl,
    read_prompts,
    split,
)
from service.errors import Unprocessable
from service.evaluations.examples import Example
from service.evaluations.records import Answer
from service.evaluations.runner import ClientFor, ask
from service.inference.usage import usage_key
from service.jobs.records import MAX_PROMOTION_EXAMPLES, Job, JobError, Promotion
from service.jobs.transitions import (
    InvalidTransition,
    job_locked,
    jobs,
    record,
    transition,
    update_distillation,
)
from service.models import ModelTable
from service.queue import Queue
from service.retries import RetryPolicy
from service.settings import Settings
from service.store import PREFIX, now

__all__ = ["answers_key", "run_teacher"]

log = structlog.get_logger("burro.distillation")

# The answers of an unfinished teacher phase outlive a month of outages, not forever.
_ANSWERS_TTL = 30 * 24 * 3600
# Progress is written to the job at most this often (and at the end).
_PROGRESS_SECONDS = 0.5

_answer_encoder = msgspec.msgpack.Encoder()
_answer_decoder = msgspec.msgpack.Decoder(Answer)


def answers_key(job_id: str) -> str:
    """Hash prompt index → the teacher's Answer (msgpack), while the teacher phase runs."""
    return f"{PREFIX}:distillation:answers:{job_id}"


def _progress_key(job_id: str) -> str:
    """Hash of counters over the stored answers: answered, failed, tokens, cost."""
    return f"{PREFIX}:distillation:progress:{job_id}"


# Store one answer unless one is stored already, and only then count it: in the job's progress,
# and (when the teacher was paid for tokens) in the tenant's usage. One atomic step, so a run
# that dies anywhere neither loses an answer it stored nor counts one twice.
_STORE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[9])
  redis.call('HINCRBY', KEYS[2], ARGV[3] == '1' and 'answered' or 'failed', 1)
  if tonumber(ARGV[6]) + tonumber(ARGV[7]) > 0 then
    redis.call('HINCRBY', KEYS[2], 'prompt_tokens', ARGV[6])
    redis.call('HINCRBY', KEYS[2], 'completion_tokens', ARGV[7])
    redis.call('HINCRBYFLOAT', KEYS[2], 'cost', ARGV[8])
    redis.call('HINCRBY', KEYS[3], 'n|' .. ARGV[4], 1)
    redis.call('HINCRBY', KEYS[3], 'in|' .. ARGV[4], ARGV[6])
    redis.call('HINCRBY', KEYS[3], 'out|' .. ARGV[4], ARGV[7])
    redis.call('HSETNX', KEYS[3], 'base|' .. ARGV[4], ARGV[5])
  end
  redis.call('EXPIRE', KEYS[2], ARGV[9])
end
return redis.call(
  'HMGET', KEYS[2], 'answered', 'failed', 'prompt_tokens', 'completion_tokens', 'cost')
"""


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    answered: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    teacher_cost_usd: float = 0.0

    @classmethod
    def of(cls, raw: list[bytes | None]) -> Progress:
        answered, failed, tokens_in, tokens_out, cost = (v or b"0" for v in raw)
        return cls(
            answered=int(answered),
            failed=int(failed),
            prompt_tokens=int(tokens_in),
            completion_tokens=int(tokens_out),
            teacher_cost_usd=round(float(cost), 8),
        )


def usable(answer: Answer) -> bool:
    """An answer the student can learn from: no error, and some text."""
    return answer.error is None and bool(answer.text and answer.text.strip())


async def _store(redis: Redis, job: Job, index: int, answer: Answer) -> Progress:
    assert job.distillation is not None
    d = job.distillation
    day = datetime.datetime.now(datetime.UTC).date().isoformat()
    raw = await redis.eval(  # type: ignore[misc]
        _STORE,
        3,
        answers_key(job.id),
        _progress_key(job.id),
        usage_key(job.tenant, day),
        str(index),
        _answer_encoder.encode(answer),  # type: ignore[arg-type]
        "1" if usable(answer) else "0",
        d.teacher_model,
        d.teacher_base_model,
        str(answer.prompt_tokens),
        str(answer.completion_tokens),
        repr(answer.cost_usd or 0.0),
        str(_ANSWERS_TTL),
    )
    return Progress.of(raw)


async def stored_answers(redis: Redis, job_id: str) -> dict[int, Answer]:
    """The teacher's answers stored so far, by prompt index."""
    raw: dict[bytes, bytes] = await redis.hgetall(answers_key(job_id))  # type: ignore[misc]
    return {int(k): _answer_decoder.decode(v) for k, v in raw.items()}


async def _fail(queue: Queue, job_id: str, code: str, message: str) -> str:
    log.warning("distillation.failed", job=job_id, code=code)
    with contextlib.suppress(InvalidTransition):  # cancelled or failed meanwhile
        await transition(
            queue, job_id, "failed", message=message, error=JobError(code=code, message=message)
        )
    return "failed"


async def run_teacher(
    redis: Redis,
    queue: Queue,
    client_for: ClientFor,
    models: ModelTable,
    settings: Settings,
    job_id: str,
    *,
    retry: RetryPolicy | None = None,
    budget_seconds: float | None = None,
) -> str:
    """Run the teacher phase of job `job_id`: ask no new prompt after `budget_seconds` (then
    queue the continuation); at its end, hand the job over to training. Returns what it did.

    Safe to run twice and to resume after a crash (see the module). A job that is cancelled
    meanwhile stops asking at once.
    """
    retry = retry or RetryPolicy()
    job = await jobs(redis).get(job_id)
    if job is None or job.terminal or job.distillation is None:
        return "nothing to do"
    d = job.distillation
    if d.phase != "teacher":
        await queue.enqueue(tasks.UPLOAD_JOB_FILES, job.id)  # the hand-over's last step
        return "handed over"
    try:
        prompts = await anyio.to_thread.run_sync(
            read_prompts, content_path(settings.data_dir, d.prompts_dataset)
        )
        client = client_for(d.teacher_provider)
    except FileNotFoundError:
        return await _fail(
            queue, job.id, "prompts_missing", f"The content of {d.prompts_dataset} is gone."
        )
    except Unprocessable as exc:  # the teacher's provider is no longer configured
        return await _fail(queue, job.id, "teacher_unavailable", f"The teacher: {exc.detail}")
    training, held_out = split(len(prompts), d.holdout, job.id)
    if d.prompts != len(prompts):
        job = await _announce(queue, job, len(prompts), len(held_out))
    done = {int(k) for k in await redis.hkeys(answers_key(job.id))}  # type: ignore[misc]
    loop = asyncio.get_running_loop()
    if budget_seconds is None:
        deadline = hard_stop = float("inf")
    else:
        deadline = loop.time() + budget_seconds
        hard_stop = deadline + budget_seconds / 4
    asker = _Asker(redis, queue, job, client, models, retry, deadline, hard_stop)
    async with asyncio.TaskGroup() as group:
        for index, prompt in enumerate(prompts):
            if index not in done:
                group.create_task(asker.one(index, prompt))
    stored = int(await redis.hlen(answers_key(job.id)))  # type: ignore[misc]
    await _write_progress(queue, job.id, await _progress(redis, job.id))
    job = await jobs(redis).get(job.id) or job
    if job.terminal:
        return job.status
    if stored < len(prompts):
        if stored == len(done):
            return await _fail(
                queue,
                job.id,
                "teacher_no_progress",
                f"The teacher answered no prompt in {budget_seconds} s.",
            )
        await queue.enqueue(
            tasks.ASK_TEACHER, job.id, job_id=tasks.teacher_continuation_id(job.id, stored)
        )
        log.info("distillation.continued", job=job.id, answers=stored)
        return "continued"
    return await _hand_over(redis, queue, models, settings, job, prompts, training, held_out)


class _Asker:
    """One run's questions to the teacher: at most `max_concurrency` in flight, each answer
    stored as it comes, the job's progress written every `_PROGRESS_SECONDS` at most.

    Past the run's `deadline` no new question is asked, but those in flight are answered and
    stored: a question cut off would be asked again by the continuation, and paid twice. Only
    one still unanswered at `hard_stop` (a quarter of the budget later, still inside the task's
    timeout) is cut, so that the run ends and queues its continuation rather than being killed.
    """

    def __init__(
        self,
        redis: Redis,
        queue: Queue,
        job: Job,
        client: AsyncOpenAI,
        models: ModelTable,
        retry: RetryPolicy,
        deadline: float,
        hard_stop: float,
    ) -> None:
        assert job.distillation is not None
        self.deadline, self.hard_stop = deadline, hard_stop
        self.redis, self.queue, self.job, self.client, self.retry = redis, queue, job, client, retry
        self.distillation = job.distillation
        base, model = self.distillation.teacher_base_model, self.distillation.teacher_model
        self.prices = models.get(base) or models.get(model)
        self.limit = asyncio.Semaphore(self.distillation.max_concurrency)
        self.written = 0.0

    async def one(self, index: int, prompt: Example) -> None:
        d, job_id = self.distillation, self.job.id
        async with self.limit:
            if asyncio.get_running_loop().time() >= self.deadline:
                return  # the continuation asks it
            current = await jobs(self.redis).get(job_id)
            if current is None or current.terminal:
                return  # cancelled: ask nothing more
            try:
                async with asyncio.timeout_at(self.hard_stop):
                    answer = await ask(
                        self.client,
                        d.teacher_model,
                        prompt,
                        self.prices,
                        self.retry,
                        max_tokens=d.max_tokens,
                    )
            except TimeoutError:
                log.warning("distillation.question_cut", job=job_id, index=index)
                return  # too slow for this run: the continuation asks it again
        progress = await _store(self.redis, self.job, index, answer)
        if not usable(answer):
            log.warning("distillation.prompt_failed", job=job_id, index=index, error=answer.error)
        clock = asyncio.get_running_loop().time()
        if clock - self.written >= _PROGRESS_SECONDS:
            self.written = clock
            await _write_progress(self.queue, job_id, progress)


async def _announce(queue: Queue, job: Job, prompts: int, held_out: int) -> Job:
    """The first run: the job learns how many prompts there are, its timeline what starts."""
    assert job.distillation is not None
    teacher = job.distillation.teacher
    job = await update_distillation(queue, job.id, prompts=prompts)
    await record(
        queue,
        job.id,
        f"Asking the teacher {teacher} {prompts} prompts ({held_out} held out for the evaluation)",
        type="distillation",
        data={"phase": "teacher", "prompts": prompts, "held_out": held_out},
    )
    return job


async def _progress(redis: Redis, job_id: str) -> Progress:
    raw = await redis.hmget(  # type: ignore[misc]
        _progress_key(job_id), ["answered", "failed", "prompt_tokens", "completion_tokens", "cost"]
    )
    return Progress.of(raw)


async def _write_progress(queue: Queue, job_id: str, progress: Progress) -> None:
    with contextlib.suppress(InvalidTransition):  # the job is gone
        await update_distillation(queue, job_id, **msgspec.structs.asdict(progress))


async def _hand_over(
    redis: Redis,
    queue: Queue,
    models: ModelTable,
    settings: Settings,
    job: Job,
    prompts: list[Example],
    training: list[int],
    held_out: list[int],
) -> str:
    """Write the answers as the training and held-out datasets, set them on the job, and send
    it on to training (the upload step, as for any job)."""
    assert job.distillation is not None
    d = job.distillation
    answers = await stored_answers(redis, job.id)

    def examples(indices: list[int]) -> list[dict[str, object]]:
        return [
            distilled_example(prompts[i], answers[i].text or "")
            for i in indices
            if i in answers and usable(answers[i])
        ]

    train, held = examples(training), examples(held_out)
    failed = [a for a in answers.values() if not usable(a)]
    if len(train) < MIN_EXAMPLES or not held:
        first = next((a.error or "an empty answer" for a in failed), None)
        return await _fail(
            queue,
            job.id,
            "teacher_failed",
            f"The teacher answered {len(answers) - len(failed)} of {len(prompts)} prompts"
            + (f" (first failure: {first})" if first else "")
            + f": {len(train)} training examples (at least {MIN_EXAMPLES} are needed) and "
            f"{len(held)} held out (at least 1).",
        )
    try:
        dataset = await store_jsonl(
            redis,
            settings.data_dir,
            models,
            tenant=job.tenant,
            name=f"{job.id}-distilled.jsonl",
            content=jsonl(train),
        )
        holdout = await store_jsonl(
            redis,
            settings.data_dir,
            models,
            tenant=job.tenant,
            name=f"{job.id}-held-out.jsonl",
            content=jsonl(held),
            test_set=True,
        )
    except NotStored as exc:
        return await _fail(
            queue,
            job.id,
            "invalid_distilled_dataset",
            f"The teacher's answers do not make a valid dataset: {exc}",
        )
    async with job_locked(redis, job.id):
        current = await jobs(redis).get(job.id)
        if (
            current is None
            or current.terminal
            or current.distillation is None
            or current.distillation.phase != "teacher"
        ):
            return "nothing to hand over"
        promotion = current.promotion
        if current.promote_to is not None:
            # The gate: the student's answers on the held-out prompts against the teacher's.
            promotion = Promotion(
                evaluation_dataset=holdout.id,
                min_similarity=d.min_similarity,
                max_examples=min(len(held), MAX_PROMOTION_EXAMPLES),
                max_tokens=d.max_tokens,
            )
        updated = msgspec.structs.replace(
            current,
            training_dataset=dataset.id,
            promotion=promotion,
            distillation=msgspec.structs.replace(
                current.distillation,
                phase="student",
                dataset=dataset.id,
                holdout_dataset=holdout.id,
            ),
            updated_at=now(),
        )
        collection = jobs(redis)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(collection.key(job.id), collection.encode(updated))
            # The job now holds its new datasets, and no longer the prompts.
            pipe.sadd(users_key(dataset.id), job.id)
            pipe.sadd(users_key(holdout.id), job.id)
            if d.prompts_dataset not in (dataset.id, holdout.id):
                pipe.srem(users_key(d.prompts_dataset), job.id)
            await pipe.execute()
    cost = updated.distillation.teacher_cost_usd if updated.distillation else 0.0
    # An answer cut at max_tokens teaches the student to stop mid-sentence: say how many were.
    cut = sum(1 for a in answers.values() if usable(a) and a.finish_reason == "length")
    await record(
        queue,
        job.id,
        f"The teacher answered {len(answers) - len(failed)} of {len(prompts)} prompts "
        f"(${cost:.4f}): training set {dataset.id} ({len(train)} examples), held-out set "
        f"{holdout.id} ({len(held)})"
        + (f"; {cut} answers were cut at max_tokens ({d.max_tokens})" if cut else ""),
        type="distillation",
        level="warn" if cut or failed else "info",
        data={
            "phase": "student",
            "dataset": dataset.id,
            "holdout_dataset": holdout.id,
            "failed": len(failed),
            "cut_at_max_tokens": cut,
            "teacher_cost_usd": cost,
        },
    )
    await redis.delete(answers_key(job.id), _progress_key(job.id))
    await queue.enqueue(tasks.UPLOAD_JOB_FILES, job.id)
    log.info("distillation.handed_over", job=job.id, dataset=dataset.id, holdout=holdout.id)
    return "handed over"
