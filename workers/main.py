"""The arq worker: its settings, its start-up and shutdown, and every background function.

It runs exactly the tasks of its queue in the registry (`service.tasks`), each by one function
below (`FUNCTIONS`). Each function is a thin shell: it takes the ids arq hands it, calls the core
in `workers.upload`, `workers.fine_tuning`, `workers.relay`, … and turns failures into explicit,
bounded retries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import structlog
from arq import Retry
from arq.cron import CronJob
from arq.worker import Function

from service import faults, tasks
from service.jobs.quotas import tenant_unfinished_key
from service.jobs.records import UNFINISHED_KEY, JobError, active_key
from service.jobs.transitions import InvalidTransition, jobs, record, transition
from service.logging import configure_logging
from service.models import ModelTable
from service.providers import Providers, UpstreamFailure, classify
from service.queue import QUEUE_NAME, Queue, deserialize_job, redis_settings, serialize_job
from service.settings import Settings
from service.tasks import CONTROL_QUEUE, Task
from service.webhooks.addresses import DEFAULT_RESOLVE_TIMEOUT
from workers import (
    distillation,
    evaluations,
    fine_tuning,
    local_jobs,
    relay,
    shutdowns,
    upload,
    webhooks,
)
from workers.context import CTX_KEY, Core, JobContext, WorkerContext, arq_cron, arq_function
from workers.supervisor import supervise

log = structlog.get_logger("burro.worker")

# Work that waits on webhook receivers may take the webhook timeout, plus this to resolve the
# receiver's host and write to Redis a few times.
WEBHOOK_MARGIN = DEFAULT_RESOLVE_TIMEOUT + 10.0
# An outbox entry stays claimed this much longer than its relay may run.
EFFECTS_LEASE_MARGIN = 5.0

# One step of a job, by the job's id (workers.upload, workers.fine_tuning).
StepCore = Callable[[WorkerContext, str], Awaitable[None]]


async def _with_retries(ctx: JobContext, job_id: str, core: StepCore, step: str) -> None:
    """Run `core`; a transient failure is retried (backoff with jitter) up to `max_tries` runs,
    a permanent one (or the last try) fails the Burro job with the upstream's code and words."""
    w = ctx.worker
    attempt = ctx.job_try
    try:
        await core(w, job_id)
        return
    except upload.Busy as exc:
        # Not a failure: the lock's holder finishes, or its lock expires, within retry_after.
        log.info(f"job.{step}_busy", job=job_id, reason=str(exc), retry_after=exc.retry_after)
        if attempt < w.max_tries * 4:
            raise Retry(defer=exc.retry_after + w.backoff(1)) from None
        failure = UpstreamFailure("busy", str(exc), transient=True, status=None)
    except Exception as exc:
        classified = classify(exc)
        if classified is None:
            log.exception(f"job.{step}_error", job=job_id)
            failure = UpstreamFailure(
                "internal_error",
                f"Burro failed to {step}: {type(exc).__name__}",
                transient=True,
                status=None,
            )
        else:
            failure = classified
    if failure.transient and attempt < w.max_tries:
        delay = w.backoff(attempt)
        log.warning(
            f"job.{step}_retry", job=job_id, code=failure.code, status=failure.status, delay=delay
        )
        await record(
            w.queue,
            job_id,
            f"{step.capitalize()} failed ({failure.code}); trying again in {delay:.1f} s "
            f"(try {attempt} of {w.max_tries}).",
            type="retry",
            level="warn",
            data={"code": failure.code, "status": failure.status, "attempt": attempt},
        )
        raise Retry(defer=delay)
    log.warning(f"job.{step}_failed", job=job_id, code=failure.code, status=failure.status)
    with contextlib.suppress(InvalidTransition):  # already terminal
        await transition(
            w.queue,
            job_id,
            "failed",
            message=f"{step.capitalize()} failed: {failure.message}",
            error=JobError(code=failure.code, message=failure.message),
        )


async def upload_job_files(ctx: JobContext, job_id: str) -> None:
    await _with_retries(ctx, job_id, upload.upload_job_files, "upload")


async def create_upstream_job(ctx: JobContext, job_id: str) -> None:
    await _with_retries(ctx, job_id, fine_tuning.create_upstream_job, "create")


async def ask_teacher(ctx: JobContext, job_id: str) -> None:
    """A distillation's teacher phase; a failure of Burro's own (Redis away, a bug) is tried
    again like an upload's, then fails the job, rather than leaving it pending."""
    await _with_retries(ctx, job_id, distillation.ask_teacher, "teacher")


async def refresh_job(ctx: JobContext, job_id: str) -> None:
    """Upstream said something changed: mirror now (a failure waits for the next poll)."""
    try:
        await fine_tuning.refresh_job(ctx.worker, job_id)
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            raise
        log.warning("job.refresh_failed", job=job_id, code=failure.code, status=failure.status)


async def cancel_job(ctx: JobContext, job_id: str) -> None:
    """Cancel upstream: retried while the upstream is unavailable; a refusal (the upstream job
    ended meanwhile) just mirrors the job."""
    w = ctx.worker
    try:
        await fine_tuning.cancel_upstream_job(w, job_id)
    except upload.Busy as exc:
        raise Retry(defer=exc.retry_after + w.backoff(1)) from None
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            raise
        if failure.transient and ctx.job_try < w.max_tries:
            raise Retry(defer=w.backoff(ctx.job_try)) from None
        log.warning("job.cancel_refused", job=job_id, code=failure.code)
        await fine_tuning.refresh_job(w, job_id)


async def poll_provider(ctx: JobContext, provider: str) -> None:
    """Mirror every active job of `provider`, then run again after the poll interval (with
    jitter), or when the upstream expects a job to finish if that is sooner. The loop never
    sleeps: it is rescheduled under the same fixed job id."""
    w = ctx.worker
    try:
        await fine_tuning.poll_provider(w, provider)
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            log.exception("job.poll_error", provider=provider)
        else:
            log.warning("job.poll_failed", provider=provider, code=failure.code)
    raise Retry(defer=fine_tuning.next_pass_in(w, provider))


async def watch_training(ctx: JobContext) -> None:
    """Hand the jobs of dead trainers (and lost queued attempts) to the trainers again."""
    await local_jobs.watch(ctx.worker)


async def resume_unfinished(w: WorkerContext) -> None:
    """At start-up: every unfinished job gets its next step again (fixed ids collapse repeats)."""
    raw = await w.redis.smembers(UNFINISHED_KEY)  # type: ignore[misc]
    ids = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in raw)
    providers = set()
    for job_id, job in zip(ids, await jobs(w.redis).get_many(ids), strict=True):
        if job is None or job.terminal:
            await w.redis.srem(UNFINISHED_KEY, job_id)  # type: ignore[misc]
        elif job.upstream_job_id is None:
            await w.queue.enqueue(tasks.UPLOAD_JOB_FILES, job_id)
        elif w.settings.trains_locally(job.provider):
            pass  # the trainers and the watchdog carry on with it
        else:
            await w.redis.zadd(active_key(job.provider), {job_id: job.created_at})
            providers.add(job.provider)
        if job is not None and not job.terminal:
            # Jobs stored before the per-tenant sets existed count against the limit too.
            await w.redis.sadd(tenant_unfinished_key(job.tenant), job_id)  # type: ignore[misc]
    for provider in providers:
        await fine_tuning.ensure_polling(w, provider)
    if ids:
        log.info("worker.resumed", jobs=len(ids), providers=sorted(providers))


# What the control worker runs: every task of its queue, each by its function.
FUNCTIONS: dict[Task, Core] = {
    tasks.UPLOAD_JOB_FILES: upload_job_files,
    tasks.CREATE_UPSTREAM_JOB: create_upstream_job,
    tasks.REFRESH_JOB: refresh_job,
    tasks.CANCEL_JOB: cancel_job,
    tasks.POLL_PROVIDER: poll_provider,
    tasks.RELAY_EFFECTS: relay.relay_effects,
    tasks.SWEEP_EFFECTS: relay.sweep_effects,
    tasks.DELIVER_WEBHOOK: webhooks.deliver_webhook,
    tasks.RUN_EVALUATION: evaluations.run_evaluation,
    tasks.START_PROMOTION: evaluations.start_promotion,
    tasks.ASK_TEACHER: ask_teacher,
    tasks.WATCH_TRAINING: watch_training,
    tasks.NOTIFY_SHUTDOWNS: shutdowns.notify_shutdowns,
}


def functions(
    settings: Settings, *, max_tries: int, function_timeout: float | None = None
) -> list[Function | CronJob]:
    """arq's functions (and cron jobs) for the control queue: exactly its tasks in the registry.

    A task that bounds its own retries (max_tries None) may run 4 * `max_tries` + 1 times: a
    busy lock is waited on up to four times as often as a failure is retried.
    """
    unserved = {t.name for t in tasks.on_queue(CONTROL_QUEUE)} ^ {t.name for t in FUNCTIONS}
    if unserved:
        raise RuntimeError(f"the control worker's functions and queue differ: {sorted(unserved)}")
    registered: list[Function | CronJob] = []
    for task, core in FUNCTIONS.items():
        timeout = task.timeout
        if function_timeout is not None:
            timeout = function_timeout
        elif timeout is None:
            timeout = settings.webhook_timeout + WEBHOOK_MARGIN
        if task.on_the_clock:
            registered.append(arq_cron(task, core, timeout=timeout))
        else:
            tries = task.max_tries if task.max_tries is not None else 4 * max_tries + 1
            registered.append(arq_function(task, core, timeout=timeout, max_tries=tries))
    return registered


def worker_settings(
    settings: Settings, *, function_timeout: float | None = None, **options: Any
) -> type:
    """arq's WorkerSettings class for `settings`; `options` override WorkerContext's knobs
    (upload_threshold, upload_part_bytes, max_tries, retry_base, retry_cap, poll_jitter,
    events_budget, evaluation_concurrency, evaluation_budget, evaluation_retry, today).

    `function_timeout` replaces every function's timeout (crash tests use a few seconds, so a
    killed worker's jobs run again soon); the locks scale with it.
    """
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set")
    if function_timeout is not None:
        # A time-boxed run hands over to its continuation well within the function's timeout.
        options.setdefault("evaluation_budget", function_timeout / 2)
        options.setdefault("create_lock_ms", int(function_timeout * 1500))
        options.setdefault("upload_lock_ms", int(function_timeout * 1500))

    async def startup(ctx: dict[str, Any]) -> None:
        """Long-lived clients, made once per worker process; then what a dead worker left."""
        w = WorkerContext(
            settings=settings,
            queue=Queue(ctx["redis"]),
            providers=Providers(settings),
            models=ModelTable.load(settings.models_file),
            **options,
        )
        ctx[CTX_KEY] = w
        faults.arm(settings.fault_points)
        await relay.resume(w)
        await resume_unfinished(w)
        log.info("worker.started", providers=[p.name for p in settings.providers])

    async def shutdown(ctx: dict[str, Any]) -> None:
        """Close what startup made (arq closes its own Redis pool)."""
        w = ctx.get(CTX_KEY)
        if isinstance(w, WorkerContext):
            await w.close()

    all_functions = functions(
        settings,
        max_tries=int(options.get("max_tries", WorkerContext.max_tries)),
        function_timeout=function_timeout,
    )
    relay_timeout = next(f.timeout_s for f in all_functions if f.name == tasks.RELAY_EFFECTS.name)
    options.setdefault("effects_lease", (relay_timeout or 0) + EFFECTS_LEASE_MARGIN)

    class WorkerSettings:
        functions: ClassVar[list[Function]] = [f for f in all_functions if isinstance(f, Function)]
        cron_jobs: ClassVar[list[CronJob]] = [f for f in all_functions if isinstance(f, CronJob)]
        queue_name = QUEUE_NAME
        redis_settings = redis_settings(settings.redis_url)  # type: ignore[arg-type]
        on_startup = startup
        on_shutdown = shutdown
        job_serializer = serialize_job
        job_deserializer = deserialize_job
        # Fixed job ids (upload:…, poll:…) must be free again as soon as the job ends.
        keep_result = 0
        # arq locks a dead worker's job for the longest timeout of all, whatever the job: the
        # functions keep theirs short (an evaluation hands over to a continuation instead).
        job_timeout = max(f.timeout_s or 0 for f in all_functions)
        # Jobs wait on the network, not the CPU. A webhook attempt to a hanging receiver holds
        # its slot for up to BURRO_WEBHOOK_TIMEOUT: many slots keep such receivers from
        # delaying everybody else's deliveries (arq's default is 10).
        max_jobs = 200
        # An idle worker looks for due jobs this often (arq's default is 0.5 s): the floor of a
        # webhook's delay after a job's change, for ten cheap reads a second.
        poll_delay = 0.1

    return WorkerSettings


def run(settings: Settings, **options: Any) -> int:
    """Run a worker until SIGTERM/SIGINT (`burro worker`), restarting it when Redis goes away
    (see workers.supervisor); `options` as worker_settings."""
    configure_logging(settings.log_level, settings.log_json)
    return asyncio.run(supervise(worker_settings(settings, **options)))
