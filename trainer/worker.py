"""`burro trainer`: the arq worker that trains local jobs, one at a time, from the shared Redis.

Any number of trainers, on any machines, serve the `burro:trainer` queue. Each takes one job at
a time (`max_jobs = 1`), holds it by a lease it renews (`service.jobs.local.Lease`), and reports
as it trains: a `metrics` event per step, `estimated_finish` from the measured step time, each
epoch's checkpoint (chat-able as `…:ckpt-step-N`), and at the end the job's status by the same
`transition()` every other provider's jobs go through, so webhooks, aliases, usage and pages
follow as usual.

Training runs in a thread (`trainer.training.train` is synchronous); the event loop meanwhile
renews the lease and reads the job's `cancel_requested`, and the run stops within one step
when either says so. A trainer killed mid-run stops renewing; the control worker's watchdog
queues the job again and the next trainer resumes from the run's latest checkpoint, which lives
in the shared data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import anyio
import httpx
import msgspec
import structlog
from arq import run_worker
from arq.worker import Function
from redis.exceptions import RedisError

from service import tasks
from service.datasets.records import content_path
from service.inference.catalog import register_checkpoint
from service.jobs import events as timeline
from service.jobs import local
from service.jobs.records import Hyperparameters, Job, JobError, JobStatus
from service.jobs.transitions import InvalidTransition, jobs, record, transition, update
from service.logging import configure_logging
from service.models import ModelInfo, ModelTable
from service.openai_compat.results import result_file_id
from service.providers import Providers
from service.queue import Queue, deserialize_job, redis_settings, serialize_job
from service.settings import Settings
from service.store import now
from trainer import hyperparameters as trainer_hyperparameters
from trainer.base_models import BaseModelSpec
from trainer.errors import TrainingError
from trainer.runs import Checkpoint, StepMetrics, TrainingHooks, TrainingPlan, TrainingRequest
from trainer.runs import TrainingResult as RunResult
from trainer.serving.vllm import register_adapter
from workers.context import CTX_KEY, JobContext, WorkerContext, arq_function
from workers.fine_tuning import parse_result_file

log = structlog.get_logger("burro.trainer")

__all__ = ["FUNCTIONS", "base_model_spec", "worker_settings"]

# How often the loop renews the lease and reads the job (for a cancel), at most: a cancel is
# seen within this and one step.
_WATCH_SECONDS = 1.0


def base_model_spec(info: ModelInfo) -> BaseModelSpec:
    """The trainer's view of a local model-table entry."""
    if info.weights is None:
        raise TrainingError(f"{info.name} is not a local model (its entry names no weights)")
    return BaseModelSpec(
        name=info.name,
        weights=info.weights,
        package=info.package,
        chat_template=info.chat_template,
        max_tokens_per_example=info.max_tokens_per_example,
    )


def _holder(attempt: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:attempt-{attempt}"


async def train_job(ctx: JobContext, job_id: str, attempt: int) -> None:
    """Train one local job to its end, unless another trainer holds it or it has ended."""
    w = ctx.worker
    job = await jobs(w.redis).get(job_id)
    if job is None or job.terminal:
        await local.finished(w.redis, job_id)
        return
    lease = local.Lease(w.redis, job_id, _holder(attempt), w.settings.trainer_lease_seconds)
    if not await lease.take():
        log.info("training.held_elsewhere", job=job_id, attempt=attempt)
        return
    try:
        await _Run(w, job, lease, attempt).run()
    finally:
        await lease.release()


class _Run:
    """One attempt at one job on this trainer, holding its lease."""

    def __init__(self, w: WorkerContext, job: Job, lease: local.Lease, attempt: int) -> None:
        self.w, self.job, self.lease, self.attempt = w, job, lease, attempt
        self.stop = threading.Event()
        self.lease_lost = False
        info = w.models.get(job.model)
        self.info = info
        self.model_name = local.trained_model_name(
            info.name if info is not None else job.model, job.tenant, job.suffix, job.id
        )
        self.run_dir = local.run_dir(w.settings.data_dir, job.id)
        self.checkpoints: list[timeline.Checkpoint] = []
        self.started = time.monotonic()

    async def run(self) -> None:
        w, job = self.w, self.job
        if job.cancel_requested:
            await self._end("cancelled", message="Cancelled before training began")
            return
        if self.info is None:
            await self._fail(TrainingError(f"{job.model} is not in the model table"))
            return
        try:
            request = self._request()
        except TrainingError as exc:
            await self._fail(exc)
            return
        if job.status != "running":
            try:
                await transition(w.queue, job.id, "running", message="Training started")
            except InvalidTransition:
                return  # cancelled meanwhile
        watcher = asyncio.create_task(self._watch())
        reporter = _Reporter(asyncio.get_running_loop())
        hooks = _JobHooks(self, reporter)
        try:
            result = await _in_thread(request, hooks)
        except TrainingError as exc:
            await reporter.drain()
            await self._fail(exc)
            return
        except Exception as exc:  # a bug, or the machine: the job fails and says which
            log.exception("training.error", job=job.id)
            await reporter.drain()
            await self._fail(TrainingError(f"the trainer failed: {type(exc).__name__}: {exc}"))
            return
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await reporter.drain()
        await self._finish(result)

    def _request(self) -> TrainingRequest:
        job, settings = self.job, self.w.settings
        assert self.info is not None
        requested = msgspec.convert(
            msgspec.to_builtins(job.method.hyperparameters), trainer_hyperparameters.Hyperparameters
        )
        validation = None
        if job.validation_dataset is not None:
            validation = content_path(settings.data_dir, job.validation_dataset)
        return TrainingRequest(
            base_model=base_model_spec(self.info),
            training_file=content_path(settings.data_dir, job.training_dataset),
            validation_file=validation,
            output_dir=self.run_dir,
            cache_dir=local.base_models_dir(settings),
            method=job.method.type,
            hyperparameters=requested,
            seed=job.seed,
        )

    async def _watch(self) -> None:
        """Renew the lease and look for a cancel until the run ends."""
        every = min(_WATCH_SECONDS, self.w.settings.trainer_lease_seconds / 3)
        while not self.stop.is_set():
            await asyncio.sleep(every)
            try:
                kept = await self.lease.renew()
                current = await jobs(self.w.redis).get(self.job.id)
            except RedisError as exc:
                # Redis away for a moment: the lease outlives a few missed renewals, and a
                # lease that lapsed meanwhile is seen as lost at the next one.
                log.warning("training.watch_failed", job=self.job.id, error=str(exc))
                continue
            if not kept:
                log.warning("training.lease_lost", job=self.job.id)
                self.lease_lost = True
                self.stop.set()
                return
            if current is None or current.terminal or current.cancel_requested:
                self.stop.set()

    async def _finish(self, result: RunResult) -> None:
        if self.lease_lost:
            return  # another trainer has the job now
        if result.status == "cancelled":
            await self._end("cancelled", message=f"Cancelled at step {result.steps}")
            return
        if result.adapter_dir is not None:
            await self._serve_on_vllm(self.model_name, result.adapter_dir)
        # The whole curve, steps before a resume included: the run's result file.
        rows = parse_result_file(await anyio.Path(result.results_file).read_bytes())
        await timeline.save_metrics(self.w.redis, self.job.id, rows)
        hyper = result.hyperparameters
        trained_hours = (time.monotonic() - self.started) / 3600
        await self._end(
            "succeeded",
            message=f"Fine-tuned model {self.model_name} is ready",
            fine_tuned_model=self.model_name,
            trained_tokens=result.plan.trained_tokens,
            result_files=[result_file_id(self.job.id)],
            estimated_finish=None,
            cost_usd=round(trained_hours * self.w.settings.trainer_usd_per_hour, 2),
            resolved_hyperparameters=Hyperparameters(
                n_epochs=hyper.n_epochs,
                batch_size=hyper.batch_size,
                learning_rate_multiplier=hyper.learning_rate_multiplier,
                beta=hyper.beta,
            ),
        )

    async def _fail(self, exc: TrainingError) -> None:
        await self._end(
            "failed",
            message=f"Training failed: {exc.message}",
            level="error",
            error=JobError(code=exc.code, message=exc.message),
        )

    async def _end(
        self, status: JobStatus, *, message: str, level: str = "info", **changes: Any
    ) -> None:
        try:
            await transition(
                self.w.queue,
                self.job.id,
                status,
                message=message,
                level=level,
                finished_at=now(),
                **changes,
            )
        except InvalidTransition:
            log.info("training.already_ended", job=self.job.id, status=status)
        await local.finished(self.w.redis, self.job.id)
        log.info("training.ended", job=self.job.id, status=status, attempt=self.attempt)

    # --- what the hooks report, run on the loop in order ---------------------------------

    async def started_plan(self, plan: TrainingPlan) -> None:
        hyper = plan.hyperparameters
        text = (
            f"Training {plan.n_examples} examples for {plan.total_steps} steps "
            f"({hyper.n_epochs} epochs, batch size {hyper.batch_size})"
        )
        if plan.resumed_from_step is not None:
            text = f"Resumed from the checkpoint at step {plan.resumed_from_step}: " + text
        if plan.truncated:
            text += f"; {plan.truncated} examples were cut at the model's per-example limit"
        data = {"total_steps": plan.total_steps, "trained_tokens": plan.trained_tokens}
        if plan.resumed_from_step is not None:
            data["resumed_from_step"] = plan.resumed_from_step
        await record(self.w.queue, self.job.id, text, type="training_plan", data=data)

    async def stepped(self, metrics: StepMetrics) -> None:
        data = {k: v for k, v in msgspec.to_builtins(metrics).items() if v is not None}
        await record(self.w.queue, self.job.id, metrics.message, type="metrics", data=data)
        await update(
            self.w.queue,
            self.job.id,
            estimated_finish=int(time.time() + metrics.remaining_seconds) + 1,
        )

    async def checkpointed(self, checkpoint: Checkpoint) -> None:
        name = local.checkpoint_model(self.model_name, checkpoint.step)
        metrics: dict[str, float] = {}
        if checkpoint.metrics is not None:
            metrics = {
                k: float(v)
                for k, v in msgspec.to_builtins(checkpoint.metrics).items()
                if isinstance(v, int | float) and k not in ("step", "total_steps", "epoch")
            }
        self.checkpoints = [c for c in self.checkpoints if c.step_number != checkpoint.step]
        self.checkpoints.append(
            timeline.Checkpoint(
                id=f"ftckpt_{self.job.id.removeprefix('job_')}_{checkpoint.step}",
                created_at=now(),
                fine_tuned_model_checkpoint=name,
                step_number=checkpoint.step,
                metrics=metrics,
            )
        )
        await timeline.save_checkpoints(self.w.redis, self.job.id, self.checkpoints)
        await self._serve_on_vllm(name, checkpoint.path)
        await register_checkpoint(
            self.w.redis,
            tenant=self.job.tenant,
            job_id=self.job.id,
            model=name,
            provider=self.job.provider,
            base_model=self.job.model,
        )

    async def _serve_on_vllm(self, model: str, adapter_dir: Path) -> None:
        """With BURRO_VLLM_URL, load the adapter into vLLM; a refusal is a warning on the job
        (the model is trained, only not servable there yet)."""
        if self.w.settings.vllm_url is None:
            return
        async with httpx.AsyncClient() as client:
            problem = await register_adapter(client, self.w.settings.vllm_url, model, adapter_dir)
        if problem is not None:
            await record(
                self.w.queue,
                self.job.id,
                f"vLLM did not load {model}: {problem}",
                type="serving",
                level="warn",
            )


async def _in_thread(request: TrainingRequest, hooks: TrainingHooks) -> RunResult:
    return await asyncio.to_thread(_train, request, hooks)


def _train(request: TrainingRequest, hooks: TrainingHooks) -> RunResult:
    # Imported in the trainer only, off the event loop: loading torch and its kin takes seconds,
    # and a loop that stalls that long lets the lease lapse. The worker's start-up loads it
    # first (`_load_training_stack`); importing this module (the command line, the job
    # registry's test) stays light.
    from trainer.training import train

    return train(request, hooks)


async def _load_training_stack() -> None:
    await asyncio.to_thread(importlib.import_module, "trainer.training")


class _Reporter:
    """Carries the training thread's reports to the loop, where they run one after another in
    the order they came (events must not overtake each other)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self.task = loop.create_task(self._consume())

    def submit(self, report: Callable[[], Awaitable[None]]) -> None:
        self.loop.call_soon_threadsafe(self.pending.put_nowait, report)

    async def _consume(self) -> None:
        while (report := await self.pending.get()) is not None:
            try:
                await report()
            except Exception:  # a lost report must not lose the run
                log.exception("training.report_failed")

    async def drain(self) -> None:
        """Wait for every report submitted so far, then stop."""
        if self.task.done():
            return
        self.pending.put_nowait(None)
        await self.task


class _JobHooks(TrainingHooks):
    def __init__(self, run: _Run, reporter: _Reporter) -> None:
        self.run, self.reporter = run, reporter

    def on_start(self, plan: TrainingPlan) -> None:
        self.reporter.submit(lambda: self.run.started_plan(plan))

    def on_step(self, metrics: StepMetrics) -> None:
        self.reporter.submit(lambda: self.run.stepped(metrics))

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.reporter.submit(lambda: self.run.checkpointed(checkpoint))

    def should_stop(self) -> bool:
        return self.run.stop.is_set()


FUNCTIONS: dict[tasks.Task, Callable[..., Awaitable[Any]]] = {tasks.TRAIN_JOB: train_job}
"""What a trainer runs: every task of the trainers' queue, each by its function."""


async def _register_finished_on_vllm(w: WorkerContext) -> None:
    """vLLM forgets runtime adapters when it restarts: load every finished job's again."""
    if w.settings.vllm_url is None:
        return
    root = anyio.Path(w.settings.data_dir / local.TRAINING_DIR)
    if not await root.is_dir():
        return
    run_ids = [run.name async for run in root.iterdir()]
    async with httpx.AsyncClient() as client:
        for job in await jobs(w.redis).get_many(run_ids):
            if job is None or job.status != "succeeded" or job.fine_tuned_model is None:
                continue
            adapter = local.run_dir(w.settings.data_dir, job.id) / "adapter"
            problem = await register_adapter(
                client, w.settings.vllm_url, job.fine_tuned_model, adapter
            )
            if problem is not None:
                log.warning("vllm.adapter_refused", job=job.id, problem=problem)


def worker_settings(settings: Settings) -> type:
    """arq's WorkerSettings for a trainer."""
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set")
    unserved = {t.name for t in tasks.on_queue(tasks.TRAINER_QUEUE)} ^ {t.name for t in FUNCTIONS}
    if unserved:
        raise RuntimeError(f"the trainer's functions and queue differ: {sorted(unserved)}")

    async def startup(ctx: dict[str, Any]) -> None:
        ctx[CTX_KEY] = WorkerContext(
            settings=settings,
            queue=Queue(ctx["redis"]),
            providers=Providers(settings),
            models=ModelTable.load(settings.models_file),
        )
        await _load_training_stack()
        await _register_finished_on_vllm(ctx[CTX_KEY])
        log.info("trainer.started", host=socket.gethostname(), pid=os.getpid())

    async def shutdown(ctx: dict[str, Any]) -> None:
        w = ctx.get(CTX_KEY)
        if isinstance(w, WorkerContext):
            await w.close()

    registered = [
        arq_function(task, core, timeout=task.timeout or 0, max_tries=task.max_tries or 1)
        for task, core in FUNCTIONS.items()
    ]

    class WorkerSettings:
        functions: ClassVar[list[Function]] = registered
        queue_name = tasks.TRAINER_QUEUE
        redis_settings = redis_settings(settings.redis_url)  # type: ignore[arg-type]
        on_startup = startup
        on_shutdown = shutdown
        job_serializer = serialize_job
        job_deserializer = deserialize_job
        keep_result = 0
        job_timeout = max(f.timeout_s or 0 for f in registered)
        # One run at a time: a run takes the machine's cores (or its GPU) by itself.
        max_jobs = 1
        # A trainer that finished a job and is idle looks for the next one this often.
        poll_delay = 0.5

    return WorkerSettings


def run() -> int:
    """`burro trainer`'s worker: configure logs, then serve the trainers' queue until stopped."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    run_worker(worker_settings(settings))
    return 0
