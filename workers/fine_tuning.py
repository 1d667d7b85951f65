"""Job → upstream fine-tuning job: create exactly one, mirror it (poll, refresh), cancel it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import io
import math
import secrets
import time
from typing import Any

import msgspec
import openai
import structlog
from openai import AsyncOpenAI, Omit, omit
from openai.types.fine_tuning import FineTuningJob

from service import tasks
from service.jobs import events as timeline
from service.jobs.records import (
    BURRO_METADATA_KEY,
    RANK,
    TERMINAL,
    Hyperparameters,
    Job,
    JobError,
    JobStatus,
    active_key,
    by_upstream_key,
    create_lock_key,
    events_read_key,
)
from service.jobs.transitions import InvalidTransition, jobs, record, release, transition, update
from service.providers import classify
from service.store import now
from workers import local_jobs
from workers.context import WorkerContext
from workers.upload import Busy

log = structlog.get_logger("burro.worker")

# Upstream statuses Burro mirrors. Others (OpenAI's `paused`, anything new) leave the status as
# it is and are shown in `upstream.status`; Azure's `pending` means accepted, not yet running.
STATUS_MAP: dict[str, JobStatus] = {
    "validating_files": "validating_files",
    "queued": "queued",
    "pending": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
STUCK_STATUSES = frozenset({"validating_files", "queued"})
# The earliest a poll pass starts after the one before started, however soon a job is expected
# to finish: each pass costs the list's pages.
MIN_POLL_SECONDS = 1.0
# Estimated finishes are whole seconds, and late: look this long after one.
_FINISH_MARGIN = 1.0
_LOOKUP_PAGES = 20
_LIST_PAGES = 50
_PAGE_SIZE = 100
# How much earlier than its Burro job an upstream job may say it was created (clock skew).
_SKEW_SECONDS = 300


async def _lock_left(w: WorkerContext, key: str) -> float:
    """Seconds until a lock is free at the latest (it expires when its holder died)."""
    left = int(await w.redis.pttl(key))
    return max(0.1, left / 1000) if left > 0 else 0.1


def _client(w: WorkerContext, job: Job) -> AsyncOpenAI:
    return w.providers.client(job.provider)


def create_params(job: Job) -> dict[str, Any]:
    """The upstream create call for `job`, tagged with Burro's id in `metadata`."""
    assert job.training_file is not None
    hyperparameters = msgspec.to_builtins(job.method.hyperparameters)  # "auto" ones omitted
    params: dict[str, Any] = {
        "model": job.model,
        "training_file": job.training_file,
        "metadata": {**job.metadata, BURRO_METADATA_KEY: job.id},
        "method": {"type": job.method.type, job.method.type: {"hyperparameters": hyperparameters}},
    }
    if job.validation_file is not None:
        params["validation_file"] = job.validation_file
    if job.suffix is not None:
        params["suffix"] = job.suffix
    if job.seed is not None:
        params["seed"] = job.seed
    return params


async def find_upstream_job(client: AsyncOpenAI, job: Job) -> FineTuningJob | None:
    """The upstream job already made for `job`, found by its metadata tag (None: none yet).

    Each result's metadata is checked too, so an upstream that ignores the filter is scanned
    instead; the scan stops at jobs older than the Burro job.
    """
    page = await client.fine_tuning.jobs.list(
        metadata={BURRO_METADATA_KEY: job.id}, limit=_PAGE_SIZE
    )
    for _ in range(_LOOKUP_PAGES):
        for upstream in page.data:
            if (upstream.metadata or {}).get(BURRO_METADATA_KEY) == job.id:
                return upstream
        if not page.data or page.data[-1].created_at < job.created_at - _SKEW_SECONDS:
            return None
        if not page.has_next_page():
            return None
        page = await page.get_next_page()
    return None


async def create_upstream_job(w: WorkerContext, job_id: str) -> None:
    """Make the one upstream job for `job_id` (or find the one a dead worker made). Safe to repeat.

    Under the job's create lock it reads the record again: a job cancelled before this point
    never reaches the upstream.
    """
    redis = w.redis
    job = await jobs(redis).get(job_id)
    if job is None or job.status in TERMINAL:
        return
    if job.upstream_job_id is None:
        token = secrets.token_hex(8)
        key = create_lock_key(job_id)
        if not await redis.set(key, token, nx=True, px=w.create_lock_ms):
            raise Busy(f"job {job_id} is being created", await _lock_left(w, key))
        # A create that got no answer (cancelled, timed out, connection lost) may still land
        # upstream. Its lock is then left to expire (create_lock_ms, longer than any request)
        # instead of released, so the next run looks the job up only after a late create has
        # landed and finds it, rather than making a second one.
        release_lock = True
        try:
            job = await jobs(redis).get(job_id)
            if job is None or job.status in TERMINAL:
                return
            if job.upstream_job_id is None:
                if job.training_file is None:
                    raise RuntimeError(f"job {job_id} reached create without a training file")
                client = _client(w, job)
                upstream = await find_upstream_job(client, job)
                if upstream is None:
                    release_lock = False
                    try:
                        upstream = await client.fine_tuning.jobs.create(**create_params(job))
                    except openai.APIStatusError:
                        release_lock = True  # an answer, even a 5xx: the request is over
                        raise
                    release_lock = True
                    log.info("job.upstream_created", job=job_id, upstream=upstream.id)
                else:
                    log.info("job.upstream_found", job=job_id, upstream=upstream.id)
                await redis.set(by_upstream_key(upstream.id), job_id)
                job = await update(
                    w.queue, job_id, upstream_job_id=upstream.id, upstream_status=upstream.status
                )
                await redis.zadd(active_key(job.provider), {job_id: job.created_at})
                # Its events come with the polls: a job just created has little to tell.
                job = await mirror(w, job, upstream, details=False)
        finally:
            if release_lock:
                await release(redis, key, token)
            else:
                log.warning("job.create_unanswered", job=job_id, lock_ms=w.create_lock_ms)
    if job.status not in TERMINAL:
        await redis.zadd(active_key(job.provider), {job_id: job.created_at})
        await ensure_polling(w, job.provider)
        if job.cancel_requested:
            await cancel_upstream_job(w, job_id)


async def ensure_polling(w: WorkerContext, provider: str) -> None:
    """Start the provider's poll loop unless it runs already (a fixed job id)."""
    await w.queue.enqueue(tasks.POLL_PROVIDER, provider)


def _ends(job: Job, upstream: FineTuningJob) -> bool:
    """Mirroring `upstream` makes `job` terminal (checkpoints and results are final then)."""
    target = STATUS_MAP.get(upstream.status)
    return target is not None and target in TERMINAL and RANK[target] > RANK[job.status]


async def mirror(
    w: WorkerContext, job: Job, upstream: FineTuningJob, *, details: bool = True
) -> Job:
    """Bring `job` up to date with its upstream job: its new events first (when `details`), and
    when it ends its checkpoints and training curve, then fields and status, so whoever hears
    of a change finds them in place. Checkpoints and the result file are read once, at the end:
    that is when they are complete, and a poll pass over many jobs does not pay for them."""
    client = _client(w, job)
    reads = []
    if details:
        reads.append(sync_events(w, client, job, upstream.id))
    if _ends(job, upstream):
        reads.append(sync_checkpoints(w, client, job, upstream.id))
        if upstream.status == "succeeded" and upstream.result_files:
            reads.append(sync_metrics(w, client, job, upstream.result_files[0]))
    await asyncio.gather(*reads)
    changes: dict[str, Any] = {
        "upstream_status": upstream.status,
        "fine_tuned_model": upstream.fine_tuned_model,
        "trained_tokens": upstream.trained_tokens,
        "estimated_finish": upstream.estimated_finish,
        "result_files": list(upstream.result_files or []),
    }
    resolved = resolved_hyperparameters(upstream)
    if resolved is not None:
        changes["resolved_hyperparameters"] = resolved
    target = STATUS_MAP.get(upstream.status)
    if target is None and upstream.status != job.upstream_status:
        await record(
            w.queue,
            job.id,
            f"The upstream job is {upstream.status}; Burro keeps the job {job.status}.",
            data={"upstream_status": upstream.status},
        )
    if target is not None and RANK[target] > RANK[job.status]:
        if target == "succeeded":
            changes["cost_usd"] = _cost(w, job, upstream.trained_tokens)
        if target in TERMINAL and upstream.finished_at:
            changes["finished_at"] = upstream.finished_at
        if target == "failed":
            error = upstream.error
            changes["error"] = JobError(
                code=(error.code if error and error.code else "upstream_failed"),
                message=(error.message if error and error.message else "The upstream job failed."),
            )
        try:
            return await transition(
                w.queue, job.id, target, message=_status_message(job, target, upstream), **changes
            )
        except InvalidTransition:
            fresh = await jobs(w.redis).get(job.id)
            return fresh or job
    if any(getattr(job, k) != v for k, v in changes.items()):
        return await update(w.queue, job.id, **changes)
    return job


def resolved_hyperparameters(upstream: FineTuningJob) -> Hyperparameters | None:
    """The upstream's hyperparameters once it resolved "auto" into numbers (None before, or
    when it reports values Burro would not accept)."""
    config = None
    if upstream.method is not None:
        config = getattr(upstream.method, upstream.method.type, None)
    reported = getattr(config, "hyperparameters", None) or upstream.hyperparameters
    if reported is None:
        return None
    values = {k: v for k, v in reported.model_dump().items() if v is not None}
    if not any(v != "auto" for v in values.values()):
        return None
    try:
        return msgspec.convert(values, Hyperparameters)
    except msgspec.ValidationError:
        return None


def _status_message(job: Job, target: str, upstream: FineTuningJob) -> str:
    if target == "succeeded":
        return f"Fine-tuned model {upstream.fine_tuned_model} is ready"
    if target == "failed" and upstream.error is not None:
        return f"The upstream job failed: {upstream.error.message}"
    return f"The upstream job {upstream.id} is {upstream.status}"


def _cost(w: WorkerContext, job: Job, trained_tokens: int | None) -> float | None:
    info = w.models.get(job.model)
    if info is None or trained_tokens is None:
        return None
    return round(trained_tokens * info.training_usd_per_1m_tokens / 1e6, 2)


# The upstream's event and checkpoint pages, decoded by msgspec into what Burro keeps: a poll
# pass reads many of them, and the SDK's own models cost twice the CPU to build.
class _UpstreamEvent(msgspec.Struct):
    id: str
    created_at: int
    message: str = ""
    level: str = "info"  # info, warn or error (anything else is shown as info)
    type: str | None = None
    data: Any = None


class _UpstreamCheckpoint(msgspec.Struct):
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    step_number: int
    metrics: dict[str, Any] | None = None


class _EventPage(msgspec.Struct):
    data: list[_UpstreamEvent]
    has_more: bool = False


class _CheckpointPage(msgspec.Struct):
    data: list[_UpstreamCheckpoint]
    has_more: bool = False


_EVENT_PAGE = msgspec.json.Decoder(_EventPage)
_LEVELS: dict[str, timeline.EventLevel] = {"info": "info", "warn": "warn", "error": "error"}
_CHECKPOINT_PAGE = msgspec.json.Decoder(_CheckpointPage)


async def sync_events(w: WorkerContext, client: AsyncOpenAI, job: Job, upstream_id: str) -> None:
    """Store the upstream events not seen yet (the list is newest first: stop at a known one)."""
    new: list[timeline.JobEvent] = []
    after: str | Omit = omit
    for _ in range(_LIST_PAGES):
        raw = await client.fine_tuning.jobs.with_raw_response.list_events(
            upstream_id, limit=_PAGE_SIZE, after=after
        )
        page = _EVENT_PAGE.decode(raw.content)
        known = False
        stored = await timeline.known_events(w.redis, job.id, [e.id for e in page.data])
        for event, seen_before in zip(page.data, stored, strict=True):
            if seen_before:
                known = True
                break
            new.append(
                timeline.JobEvent(
                    id=event.id,
                    created_at=event.created_at,
                    level=_LEVELS.get(event.level, "info"),
                    type=event.type or "message",
                    source="upstream",
                    message=event.message,
                    data=event.data if isinstance(event.data, dict) else None,
                )
            )
        if known or not page.has_more or not page.data:
            break
        after = page.data[-1].id
    new.reverse()
    new.sort(key=lambda e: e.created_at)  # stable: keeps the upstream's order within a second
    await timeline.add_events(w.redis, job.id, new)


async def sync_checkpoints(
    w: WorkerContext, client: AsyncOpenAI, job: Job, upstream_id: str
) -> None:
    found: list[timeline.Checkpoint] = []
    after: str | Omit = omit
    for _ in range(_LIST_PAGES):
        raw = await client.fine_tuning.jobs.checkpoints.with_raw_response.list(
            upstream_id, limit=_PAGE_SIZE, after=after
        )
        page = _CHECKPOINT_PAGE.decode(raw.content)
        for c in page.data:
            metrics = {
                k: float(v) for k, v in (c.metrics or {}).items() if isinstance(v, int | float)
            }
            found.append(
                timeline.Checkpoint(
                    id=c.id,
                    created_at=c.created_at,
                    fine_tuned_model_checkpoint=c.fine_tuned_model_checkpoint,
                    step_number=c.step_number,
                    metrics=metrics,
                )
            )
        if not page.has_more or not page.data:
            break
        after = page.data[-1].id
    found.sort(key=lambda c: c.step_number)
    await timeline.save_checkpoints(w.redis, job.id, found)


async def sync_metrics(w: WorkerContext, client: AsyncOpenAI, job: Job, file_id: str) -> None:
    """Parse the result file (OpenAI serves it base64-encoded) into the training curve."""
    response = await client.files.content(file_id)
    await timeline.save_metrics(w.redis, job.id, parse_result_file(response.content))


def parse_result_file(content: bytes) -> list[timeline.MetricsRow]:
    """Rows of a result CSV, base64-encoded or not; cells that are empty or not numbers: None."""
    try:
        text = base64.b64decode(content, validate=True).decode()
    except (binascii.Error, ValueError):
        text = content.decode(errors="replace")

    def number(value: str | None) -> float | None:
        try:
            return float(value) if value not in (None, "") else None
        except ValueError:
            return None

    rows = []
    for row in csv.DictReader(io.StringIO(text.strip())):
        step = number(row.get("step"))
        if step is None:
            continue
        rows.append(
            timeline.MetricsRow(
                step=int(step),
                train_loss=number(row.get("train_loss")),
                valid_loss=number(row.get("valid_loss")),
                train_mean_token_accuracy=number(
                    row.get("train_mean_token_accuracy") or row.get("train_accuracy")
                ),
                valid_mean_token_accuracy=number(row.get("valid_mean_token_accuracy")),
            )
        )
    return rows


async def refresh_job(w: WorkerContext, job_id: str) -> None:
    """Mirror one job at once (OpenAI's webhook said it changed). Safe to repeat."""
    job = await jobs(w.redis).get(job_id)
    if job is None or job.status in TERMINAL or job.upstream_job_id is None:
        return
    if w.settings.trains_locally(job.provider):
        return  # its trainer reports every change itself
    upstream = await _client(w, job).fine_tuning.jobs.retrieve(job.upstream_job_id)
    await mirror(w, job, upstream)
    log.info("job.refreshed", job=job_id, upstream_status=upstream.status)


async def poll_provider(w: WorkerContext, provider: str) -> int:
    """One pass over the provider's active jobs; returns the number of upstream calls made.

    The jobs' statuses come from the upstream's job list, newest first, paged until every
    active job was seen or the page is older than the oldest of them: the cost grows with pages,
    not with jobs. Only a job that ended costs more calls (its events, checkpoints and result
    file), and a running one its new events, at most once per poll interval. The jobs are
    mirrored concurrently, `settings.poll_concurrency` at a time: those that ended first, the
    earliest ended first; then the running ones whose events are due, the least recently read
    first: all of them, or for `w.events_budget` seconds when a job is expected to end before the
    next pass of the usual rhythm (the rest are read by the next passes). The earliest finish
    the upstream expects of a job still active is kept for the loop's next pass
    (`w.polling.next_finish`).
    """
    started = time.perf_counter()
    w.polling.next_finish.pop(provider, None)
    w.polling.started[provider] = time.time()
    active, events_read = await _active_jobs(w, provider)
    if not active:
        return 0
    client = w.providers.client(provider)
    seen: dict[str, FineTuningJob] = {}
    calls = 0
    if w.providers.supports_list_polling(provider):
        seen, calls = await _listed(client, active)
    poll = _Pass(w, client, seen, events_read, calls=calls)

    def order(job: Job) -> tuple[int, float]:
        upstream = seen.get(job.upstream_job_id or "")
        if upstream is not None and _ends(job, upstream):
            return 0, float(upstream.finished_at or 0)
        return 1, events_read.get(job.id, 0.0)

    # The jobs that end go first, those waiting longest first: theirs is the news that callers
    # wait for. The semaphore lets them in in this order.
    await asyncio.gather(*(poll.one(job) for job in sorted(active, key=order)))
    await poll.save(provider)
    log.info(
        "job.polled",
        provider=provider,
        jobs=len(active),
        ended=len(poll.ended),
        events_left=poll.events_left,
        calls=poll.calls,
        seconds=round(time.perf_counter() - started, 3),
    )
    return poll.calls


async def _active_jobs(w: WorkerContext, provider: str) -> tuple[list[Job], dict[str, float]]:
    """The provider's jobs to poll (those that ended or never reached it leave the set), and
    when each one's events were last read."""
    redis = w.redis
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrange(active_key(provider), 0, -1)
        pipe.zrange(events_read_key(provider), 0, -1, withscores=True)
        raw_ids, raw_read = await pipe.execute()
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids]
    events_read = {(i.decode() if isinstance(i, bytes) else str(i)): t for i, t in raw_read}
    if not ids:
        return [], events_read
    active: list[Job] = []
    gone: list[str] = []
    for job_id, job in zip(ids, await jobs(redis).get_many(ids), strict=True):
        if job is None or job.status in TERMINAL or job.upstream_job_id is None:
            gone.append(job_id)
        else:
            active.append(job)
    if gone:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zrem(active_key(provider), *gone)
            pipe.zrem(events_read_key(provider), *gone)
            await pipe.execute()
    return active, events_read


async def _listed(client: AsyncOpenAI, active: list[Job]) -> tuple[dict[str, FineTuningJob], int]:
    """The upstream jobs of `active` found in the upstream's job list (by upstream id), and the
    pages read."""
    wanted = {job.upstream_job_id for job in active}
    oldest = min(job.created_at for job in active) - _SKEW_SECONDS
    seen: dict[str, FineTuningJob] = {}
    page = await client.fine_tuning.jobs.list(limit=_PAGE_SIZE)
    calls = 1
    for _ in range(_LIST_PAGES):
        seen.update((u.id, u) for u in page.data if u.id in wanted)
        if len(seen) == len(wanted) or not page.data or page.data[-1].created_at < oldest:
            break
        if not page.has_next_page():
            break
        page = await page.get_next_page()
        calls += 1
    return seen, calls


class _Pass:
    """One poll pass over a provider's active jobs: mirrors each, counts the upstream calls,
    and keeps what the next pass needs."""

    def __init__(
        self,
        w: WorkerContext,
        client: AsyncOpenAI,
        seen: dict[str, FineTuningJob],
        events_read: dict[str, float],
        *,
        calls: int,
    ) -> None:
        self.w, self.client, self.seen, self.events_read = w, client, seen, events_read
        self.calls = calls
        self.limit = asyncio.Semaphore(max(1, w.settings.poll_concurrency))
        self.now = time.time()
        self.events_until = time.perf_counter() + w.events_budget
        if not self._end_expected_soon():
            self.events_until = math.inf  # no end to wait for: read every due job's events
        self.events_left = 0
        self.finishes: list[float] = []
        self.read: dict[str, float] = {}
        self.ended: list[str] = []

    def _end_expected_soon(self) -> bool:
        """Whether the upstream expects one of the jobs to finish before the next pass of the
        usual rhythm: that pass then comes sooner, and must not wait for running jobs' events
        (those the budget leaves are read by the passes after it, the least recently read
        first). Without one, a pass reads every due job's events, however long that takes."""
        before = self.now + self.w.settings.poll_interval
        expected = (
            u.estimated_finish + _FINISH_MARGIN
            for u in self.seen.values()
            if u.estimated_finish is not None and STATUS_MAP.get(u.status) not in TERMINAL
        )
        return any(self.now < moment < before for moment in expected)

    async def one(self, job: Job) -> None:
        """Mirror `job` from its upstream job (read on its own when the list had not it)."""
        assert job.upstream_job_id is not None
        upstream = self.seen.get(job.upstream_job_id)
        async with self.limit:
            try:
                if upstream is None:
                    upstream = await self.client.fine_tuning.jobs.retrieve(job.upstream_job_id)
                    self.calls += 1
                job = await self._mirror(job, upstream)
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
                log.warning("job.poll_failed", job=job.id, code=failure.code, status=failure.status)
                return
            await notice_if_stuck(self.w, job)
        expected = upstream.estimated_finish
        if not job.terminal and expected is not None and expected + _FINISH_MARGIN > self.now:
            self.finishes.append(expected + _FINISH_MARGIN)

    async def _mirror(self, job: Job, upstream: FineTuningJob) -> Job:
        ends = _ends(job, upstream)
        details = ends or (
            upstream.status == "running"
            and _events_due(self.w, self.events_read.get(job.id), self.now)
        )
        if details and not ends and time.perf_counter() > self.events_until:
            details = False  # still due: among the first read by the next pass
            self.events_left += 1
        results = ends and upstream.status == "succeeded" and bool(upstream.result_files)
        self.calls += int(details) + int(ends) + int(results)
        job = await mirror(self.w, job, upstream, details=details)
        if job.terminal:
            self.ended.append(job.id)
        elif details:
            self.read[job.id] = self.now
        return job

    async def save(self, provider: str) -> None:
        """Keep when events were read, and the earliest finish expected, for the next pass."""
        if self.read or self.ended:
            async with self.w.redis.pipeline(transaction=False) as pipe:
                if self.read:
                    pipe.zadd(events_read_key(provider), self.read)
                if self.ended:
                    pipe.zrem(events_read_key(provider), *self.ended)
                await pipe.execute()
        if self.finishes:
            self.w.polling.next_finish[provider] = min(self.finishes)


def _events_due(w: WorkerContext, last_read: float | None, now: float) -> bool:
    """A running job's events are read again once a poll interval (less its jitter) has passed
    since the last time: at every pass of the usual rhythm, not at the extra ones."""
    every = w.settings.poll_interval * (1 - w.poll_jitter)
    return last_read is None or now - last_read >= every


def next_pass_in(w: WorkerContext, provider: str) -> float:
    """Seconds until the provider's next poll pass: the poll interval (with jitter), or sooner
    when the upstream expects a job to finish before that, so its end is seen when it comes
    (but not sooner than `MIN_POLL_SECONDS` after the last pass started: a long pass is not
    followed by a wait on top of it)."""
    delay = w.poll_delay()
    expected = w.polling.next_finish.get(provider)
    if expected is not None:
        moment = time.time()
        floor = min(MIN_POLL_SECONDS, w.settings.poll_interval)
        earliest = w.polling.started.get(provider, moment) + floor
        delay = min(delay, max(earliest, expected) - moment)
    return max(0.0, delay)


async def notice_if_stuck(w: WorkerContext, job: Job) -> None:
    """One event when a job has waited in validating_files or queued longer than stuck_after."""
    if job.status not in STUCK_STATUSES or job.stuck_noticed == job.status:
        return
    waited = now() - (job.status_changed_at or job.created_at)
    if waited < w.settings.stuck_after:
        return
    await record(
        w.queue,
        job.id,
        f"The job has been {job.status.replace('_', ' ')} for {waited} s, longer than the "
        f"expected {w.settings.stuck_after:g} s; the upstream may be slow or stuck.",
        type="stuck",
        level="warn",
        data={"status": job.status, "seconds": waited},
    )
    await update(w.queue, job.id, stuck_noticed=job.status)
    log.warning("job.stuck", job=job.id, status=job.status, seconds=waited)


async def cancel_upstream_job(w: WorkerContext, job_id: str) -> None:
    """Cancel the upstream job and mirror it; before one exists, cancel the job alone."""
    job = await jobs(w.redis).get(job_id)
    if job is None or job.status in TERMINAL:
        return
    if w.settings.trains_locally(job.provider):
        await local_jobs.cancel(w, job_id)
        return
    if job.upstream_job_id is None:
        key = create_lock_key(job_id)
        token = secrets.token_hex(8)
        if not await w.redis.set(key, token, nx=True, px=w.create_lock_ms):
            # A create is under way: come back when it has recorded the upstream job.
            raise Busy(f"job {job_id} is being created", await _lock_left(w, key))
        try:
            job = await jobs(w.redis).get(job_id)
            if job is not None and job.status not in TERMINAL and job.upstream_job_id is None:
                await transition(
                    w.queue, job_id, "cancelled", message="Cancelled before any upstream job"
                )
                return
        finally:
            await release(w.redis, key, token)
        if job is None or job.upstream_job_id is None:
            return
    upstream = await _client(w, job).fine_tuning.jobs.cancel(job.upstream_job_id)
    log.info("job.upstream_cancelled", job=job_id, upstream=upstream.id)
    await mirror(w, job, upstream)
