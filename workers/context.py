"""What every background function gets: the worker's long-lived clients (`WorkerContext`, made
once per process at start-up) and what the queue says about this run (`JobContext`).

arq hands functions a dict; `arq_function` is the one place that reads it. It turns a task of
the registry (`service.tasks`) and a function taking a `JobContext` into what arq registers,
and binds `job_id`, `function`, `job_try` and the enqueuing request's `request_id` to every
line the run logs, so one request can be followed from the API into the workers.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from arq.cron import CronJob, cron
from arq.typing import WorkerCoroutine
from arq.worker import Function, func
from redis.asyncio import Redis

from service.evaluations.runner import DEFAULT_CONCURRENCY
from service.models import ModelTable
from service.models import today as models_today
from service.providers import Providers
from service.queue import REQUEST_ID, Queue
from service.retries import RetryPolicy, backoff
from service.settings import Settings
from service.tasks import Task
from service.webhooks.delivery import WebhookSender

MiB = 1024 * 1024
# The key of the WorkerContext in arq's per-process dict.
CTX_KEY = "burro"
# More than any worker's max_jobs: the worker's slots bound concurrent webhook attempts, never
# the connection pool, or a hundred hanging receivers would hold every connection and make the
# healthy ones wait in the pool until the hanging ones time out.
WEBHOOK_CONNECTIONS = 1000


@dataclass
class PollState:
    """What a poll pass tells the loop that runs it (in the same process, at once)."""

    next_finish: dict[str, float] = field(default_factory=dict)
    """Provider → the earliest time one of its active jobs is expected to finish (or the last
    pass's start, when that pass left running jobs' events to read)."""
    started: dict[str, float] = field(default_factory=dict)
    """Provider → when its last pass started."""


@dataclass
class WorkerContext:
    """The worker's clients and knobs, made once per process (`close()` at shutdown)."""

    settings: Settings
    queue: Queue
    providers: Providers
    models: ModelTable
    # Files at least this big go up through the Uploads API, in parts of `upload_part_bytes`.
    upload_threshold: int = 64 * MiB
    upload_part_bytes: int = 64 * MiB
    # Explicit retries of upload/create: at most `max_tries` runs, backoff base * 2^try, capped.
    max_tries: int = 8
    retry_base: float = 2.0
    retry_cap: float = 300.0
    poll_jitter: float = 0.2
    # How long into a poll pass running jobs' events are still read when a job is expected to
    # end before the next pass of the usual rhythm (those left are read by the passes after):
    # reading a thousand jobs' events must not hold up the pass that sees that end.
    events_budget: float = 1.0
    # Locks outlive the function that holds them (its timeout), so a live holder never loses
    # one; a dead holder's lock expires and the step runs again.
    create_lock_ms: int = 90_000
    upload_lock_ms: int = 150_000
    # An evaluation's run: chat requests in flight, seconds before it hands over to a
    # continuation, and the retries of each request.
    evaluation_concurrency: int = DEFAULT_CONCURRENCY
    evaluation_budget: float = 90.0
    evaluation_retry: RetryPolicy = field(default_factory=RetryPolicy)
    # How long a relay holds an outbox entry it works on: longer than a relay may run (its
    # timeout), so only a dead relay's entry is taken up by another.
    effects_lease: float = 60.0
    polling: PollState = field(default_factory=PollState)
    # Today's date, by the clock model retirement is judged by (tests set their own day).
    today: Callable[[], datetime.date] = models_today
    _sender: WebhookSender | None = field(default=None, init=False, repr=False)

    @property
    def redis(self) -> Redis:
        return self.queue.redis

    @property
    def sender(self) -> WebhookSender:
        """One HTTP client for every webhook receiver (made on first use, inside the loop)."""
        if self._sender is None:
            self._sender = WebhookSender(max_connections=WEBHOOK_CONNECTIONS)
        return self._sender

    def backoff(self, attempt: int) -> float:
        """Seconds before try `attempt + 1` of an upload, a create or a cancel."""
        return backoff(attempt, base=self.retry_base, cap=self.retry_cap)

    def poll_delay(self) -> float:
        """The poll interval with ±`poll_jitter` jitter, so many workers do not poll in step."""
        interval = self.settings.poll_interval
        return max(0.05, interval * random.uniform(1 - self.poll_jitter, 1 + self.poll_jitter))

    async def close(self) -> None:
        await self.providers.close()
        if self._sender is not None:
            await self._sender.close()
            self._sender = None


@dataclass(frozen=True, slots=True)
class JobContext:
    """One run of one queued function."""

    worker: WorkerContext
    function: str
    job_id: str
    """The queue's id of this job (a fixed one, like `upload:job_…`, where the task has one)."""
    job_try: int
    """1 for the first run, n for the n-th (a retry, or a rerun after a worker died)."""

    @property
    def redis(self) -> Redis:
        return self.worker.redis


Core = Callable[..., Awaitable[Any]]
"""A background function: `(JobContext, *ids) -> result`."""


def arq_coroutine(task: Task, core: Core) -> WorkerCoroutine:
    """What arq calls for `task`: `core`, with a JobContext, its logs bound."""

    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        job = JobContext(
            worker=ctx[CTX_KEY],
            function=task.name,
            job_id=str(ctx["job_id"]),
            job_try=int(ctx.get("job_try", 1)),
        )
        bound = {"job_id": job.job_id, "function": task.name, "job_try": job.job_try}
        if kwargs.get(REQUEST_ID) is not None:
            bound[REQUEST_ID] = kwargs[REQUEST_ID]
        with structlog.contextvars.bound_contextvars(**bound):
            return await core(job, *args)

    run.__qualname__ = run.__name__ = task.name
    return run


def arq_function(task: Task, core: Core, *, timeout: float, max_tries: int) -> Function:
    """What arq registers for an enqueued `task`."""
    return func(arq_coroutine(task, core), name=task.name, timeout=timeout, max_tries=max_tries)


def arq_cron(task: Task, core: Core, *, timeout: float) -> CronJob:
    """What arq registers for a `task` run on the clock (`Task.on_the_clock`)."""
    return cron(
        arq_coroutine(task, core),
        name=task.name,
        second=set(task.on_the_clock),
        microsecond=0,
        timeout=timeout,
        max_tries=task.max_tries or 1,
    )
