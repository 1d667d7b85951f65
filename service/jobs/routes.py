"""`/v1/jobs`: create (checked and priced at once), list, read, cancel, events, checkpoints,
metrics; and `/v1/upstream/openai/webhooks`, OpenAI's own news about its jobs."""

from __future__ import annotations

import asyncio
import base64
import functools
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
import openai
import structlog
from litestar import Request, Response, Router, get, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from service import tasks
from service.context import Resources, Tenant, UsesResources, provide_tenant, today
from service.datasets.checks import training_cost, training_seconds
from service.datasets.records import Dataset
from service.distillation import requests as distillation_requests
from service.errors import BadRequest, Conflict, NotFound, Unprocessable
from service.evaluations import promotion as gate
from service.idempotency import IdempotencyKeys, fingerprint
from service.ids import new_id
from service.inference.model_names import check_alias_name
from service.jobs import events as timeline
from service.jobs import quotas, rules
from service.jobs.records import (
    TERMINAL,
    Job,
    JobCreate,
    JobList,
    JobOut,
    JobStatus,
    Method,
    by_upstream_key,
    create_lock_key,
)
from service.jobs.transitions import (
    InvalidTransition,
    create,
    jobs,
    redis_lock,
    transition,
    update,
)
from service.models import ModelInfo
from service.store import PREFIX, Collection, now
from service.webhooks.addresses import UnsafeWebhookUrl, resolve_public

log = structlog.get_logger("burro.jobs")

# A cancel waits this long for a create in progress to finish, then lets the worker clean up.
_CANCEL_WAIT_SECONDS = 10.0
_SSE_PAUSE_SECONDS = 0.25
_WEBHOOK_DEDUPE_SECONDS = 7 * 24 * 3600
_MAX_BODY = 1024 * 1024  # a job request or an OpenAI webhook is a few kB


def _datasets(resources: Resources) -> Collection[Dataset]:
    return Collection(resources.redis, "datasets", Dataset)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def check_webhook_url(url: str, allow_private: bool) -> None:
    """Refuse a webhook URL Burro will not send to (422 naming `webhook.url`)."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ("http", "https"):
        raise Unprocessable("webhook.url: must be an http or https URL.", param="webhook.url")
    try:
        await resolve_public(url, allow_private=allow_private)
    except UnsafeWebhookUrl as exc:
        raise Unprocessable(f"webhook.url: {exc.reason}", param="webhook.url") from None


async def _dataset(resources: Resources, tenant: str, dataset_id: str, field: str) -> Dataset:
    dataset = await _datasets(resources).get(dataset_id)
    if dataset is None or dataset.tenant != tenant:  # another tenant's: the same answer
        raise Unprocessable(f"{field}: no dataset {dataset_id!r}.", param=field)
    if dataset.examples <= 0:
        raise Unprocessable(f"{field}: dataset {dataset_id} has no examples.", param=field)
    return dataset


class _JobEstimate(msgspec.Struct, frozen=True, kw_only=True):
    trained_tokens: int | None = None
    cost_usd: float | None = None
    duration_seconds: int | None = None


def _estimate(
    dataset: Dataset, info: ModelInfo, n_epochs: int | None, trainer_usd_per_hour: float
) -> _JobEstimate:
    """The dataset's estimate for `info`, redone with the job's epochs (empty without one)."""
    found = next((e for e in dataset.estimates if e.model == info.name), None)
    if found is None:
        return _JobEstimate()
    trained = found.billing_tokens * (n_epochs if n_epochs is not None else found.n_epochs)
    return _JobEstimate(
        trained_tokens=trained,
        cost_usd=training_cost(info, trained, trainer_usd_per_hour=trainer_usd_per_hour),
        duration_seconds=training_seconds(info, trained),
    )


async def _build_job(
    resources: Resources, tenant: str, data: JobCreate, request_id: str | None
) -> Job:
    """Check every field of the request (422 naming the field and why) and make the record."""
    settings = resources.settings
    provider = rules.check_provider(settings, data.provider, resources.models, data.model)
    info = rules.check_model(resources.models, data.model, provider, today(), settings)
    if data.promote_to is not None:
        check_alias_name(
            data.promote_to, resources.models, settings.allowed_base_models, param="promote_to"
        )
    training = await _dataset(resources, tenant, data.training_dataset, "training_dataset")
    validation = None
    if data.validation_dataset is not None:
        validation = await _dataset(
            resources, tenant, data.validation_dataset, "validation_dataset"
        )
    method_type, hyperparameters = rules.check_method(info, data.method, training, validation)
    rules.check_examples_fit(info, {"training_dataset": training, "validation_dataset": validation})
    metadata = rules.check_metadata(data.metadata)
    webhook_url = webhook_secret = None
    if data.webhook is not None:
        await check_webhook_url(data.webhook.url, settings.webhook_allow_private)
        webhook_url = data.webhook.url
        webhook_secret = data.webhook.secret or new_webhook_secret()
    promotion = None
    if data.promotion is not None:
        promotion = await gate.check(
            resources.redis,
            settings,
            resources.models,
            tenant=tenant,
            data=data.promotion,
            promote_to=data.promote_to,
        )
    distillation = await distillation_requests.check(
        resources.redis, settings, resources.models, tenant=tenant, data=data, prompts=training
    )
    n_epochs = hyperparameters.n_epochs if isinstance(hyperparameters.n_epochs, int) else None
    estimate = _estimate(training, info, n_epochs, settings.trainer_usd_per_hour)
    stamp = now()
    return Job(
        id=new_id("job_"),
        tenant=tenant,
        status="pending",
        provider=provider,
        model=data.model,
        training_dataset=training.id,
        validation_dataset=validation.id if validation else None,
        suffix=data.suffix,
        seed=data.seed,
        method=Method(type=method_type, hyperparameters=hyperparameters),
        metadata=metadata,
        promote_to=data.promote_to,
        promotion=promotion,
        distillation=distillation,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        estimated_cost_usd=estimate.cost_usd,
        estimated_trained_tokens=estimate.trained_tokens,
        estimated_duration_seconds=estimate.duration_seconds,
        created_at=stamp,
        updated_at=stamp,
        status_changed_at=stamp,
        request_id=request_id,
    )


async def start_job(resources: Resources, tenant: str, data: JobCreate) -> Job:
    """Check a job request (422 naming the field), count it against the tenant's limits, store
    it and queue its upload: what `POST /v1/jobs` does, for every API that starts jobs."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    job = await _build_job(resources, tenant, data, request_id)
    # Counted against the tenant's limits atomically, before the job exists (422 when over).
    await quotas.reserve(resources.redis, resources.settings, job)
    try:
        await create(resources.queue, job)
    except BaseException:
        await quotas.release(resources.redis, job, refund=True)
        raise
    # Record first, then the work: a lost enqueue is found again by the worker's sweep.
    await resources.queue.enqueue(tasks.UPLOAD_JOB_FILES, job.id)
    return job


_job_out_encoder = msgspec.json.Encoder()


@post(
    "/",
    status_code=202,
    summary="Start a fine-tuning job",
    request_max_body_size=_MAX_BODY,
)
async def create_job(
    request: Request[Any, Any, Any],
    resources: UsesResources,
    tenant: Tenant,
    data: JSONBody[JobCreate],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> Response[Any]:
    keys = IdempotencyKeys(resources.redis)
    request_fingerprint = fingerprint(msgspec.json.encode(data))
    if idempotency_key is not None:
        replay = await keys.begin(tenant, "jobs", idempotency_key, request_fingerprint)
        if replay is not None:
            return Response(
                replay.body, status_code=replay.status_code, media_type="application/json"
            )
    try:
        job = await start_job(resources, tenant, data)
    except BaseException:
        if idempotency_key is not None:
            await keys.abandon(tenant, "jobs", idempotency_key)
        raise
    body = _job_out_encoder.encode(JobOut.of(job, show_secret=True))
    if idempotency_key is not None:
        await keys.finish(tenant, "jobs", idempotency_key, request_fingerprint, 202, body)
    return Response(body, status_code=202, media_type="application/json")


@get("/", summary="List jobs, newest first")
async def list_jobs(
    resources: UsesResources,
    tenant: Tenant,
    status: FromQuery[JobStatus | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    after: FromQuery[str | None] = None,
) -> JobList:
    page = await jobs(resources.redis).page(
        tenant,
        limit=limit,
        after=after,
        where=None if status is None else (lambda job: job.status == status),
    )
    return JobList(object="list", data=[JobOut.of(j) for j in page.data], has_more=page.has_more)


@get("/{job_id:str}", summary="Get a job")
async def get_job(resources: UsesResources, tenant: Tenant, job_id: FromPath[str]) -> JobOut:
    return JobOut.of(await jobs(resources.redis).get_for(tenant, job_id))


@post(
    "/{job_id:str}/cancel",
    status_code=200,
    request_max_body_size=_MAX_BODY,
    summary="Cancel a job (409 once it has ended)",
)
async def cancel_job(resources: UsesResources, tenant: Tenant, job_id: FromPath[str]) -> JobOut:
    return JobOut.of(await request_cancel(resources, tenant, job_id))


async def request_cancel(resources: Resources, tenant: str, job_id: str) -> Job:
    """Cancel the tenant's job: at once before its upstream job exists (nothing is created
    upstream then), else by the worker. Conflict (`job_finished`) once the job has ended."""
    collection = jobs(resources.redis)
    job = await collection.get_for(tenant, job_id)
    if job.terminal:
        raise Conflict(f"Job {job.id} is already {job.status}.", code="job_finished")
    queue = resources.queue
    if job.upstream_job_id is None:
        # The worker creates the upstream job under this lock and reads the record again after
        # taking it: cancelled here, nothing is ever created upstream.
        try:
            async with redis_lock(
                resources.redis, create_lock_key(job.id), ttl_ms=120_000, wait=_CANCEL_WAIT_SECONDS
            ):
                job = await collection.get_for(tenant, job_id)
                if job.upstream_job_id is None and not job.terminal:
                    job = await transition(
                        queue, job.id, "cancelled", message="Cancelled before any upstream job"
                    )
                    log.info("job.cancel_requested", job=job.id, upstream=False)
                    return job
        except TimeoutError:
            pass  # a create is slow: the worker cancels whatever it created (cancel_requested)
        except InvalidTransition:
            job = await collection.get_for(tenant, job_id)
            if job.terminal:
                raise Conflict(
                    f"Job {job.id} is already {job.status}.", code="job_finished"
                ) from None
            raise
    if job.terminal:
        raise Conflict(f"Job {job.id} is already {job.status}.", code="job_finished")
    job = await update(queue, job.id, cancel_requested=True)
    await timeline.add_events(
        resources.redis, job.id, [timeline.burro_event("Cancellation requested")]
    )
    await queue.enqueue(tasks.CANCEL_JOB, job.id)
    log.info("job.cancel_requested", job=job.id, upstream=True)
    return job


@get("/{job_id:str}/events", summary="The job's events, oldest first (SSE with stream=true)")
async def job_events(
    request: Request[Any, Any, Any],
    resources: UsesResources,
    tenant: Tenant,
    job_id: FromPath[str],
    stream: FromQuery[bool] = False,
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> Response[Any]:
    job = await jobs(resources.redis).get_for(tenant, job_id)
    if not stream:
        data, has_more = await timeline.list_events(
            resources.redis, job.id, after=after, limit=limit
        )
        return Response(timeline.EventList(object="list", data=data, has_more=has_more))
    last = request.headers.get("last-event-id") or after
    stream_response = ServerSentEvent(_event_stream(resources, job.id, last))
    stream_response.media_type = "text/event-stream"
    return stream_response


async def _event_stream(
    resources: Resources, job_id: str, after: str | None
) -> AsyncIterator[ServerSentEventMessage]:
    """Every event after `after`, then new ones as they come; ends when the job has ended."""
    collection = jobs(resources.redis)
    while True:
        job = await collection.get(job_id)
        finished = job is None or job.status in TERMINAL
        events, _ = await timeline.list_events(resources.redis, job_id, after=after, limit=1000)
        for event in events:
            after = event.id
            yield ServerSentEventMessage(
                data=msgspec.json.encode(event).decode(), event="job.event", id=event.id
            )
        if finished and not events:
            end = {"status": job.status if job else "gone"}
            yield ServerSentEventMessage(data=msgspec.json.encode(end).decode(), event="end")
            return
        if not events:
            await asyncio.sleep(_SSE_PAUSE_SECONDS)


@get("/{job_id:str}/checkpoints", summary="The job's checkpoints, as the upstream reported them")
async def job_checkpoints(
    resources: UsesResources, tenant: Tenant, job_id: FromPath[str]
) -> timeline.CheckpointList:
    job = await jobs(resources.redis).get_for(tenant, job_id)
    data = await timeline.load_checkpoints(resources.redis, job.id)
    return timeline.CheckpointList(object="list", data=data, has_more=False)


@get("/{job_id:str}/metrics", summary="The training curve: loss and accuracy per step")
async def job_metrics(
    resources: UsesResources, tenant: Tenant, job_id: FromPath[str]
) -> timeline.Metrics:
    job = await jobs(resources.redis).get_for(tenant, job_id)
    return await timeline.load_metrics(resources.redis, job.id)


# --- OpenAI's webhooks -----------------------------------------------------------------------


@functools.cache
def _verifier() -> openai.OpenAI:
    # Only its `webhooks.unwrap` is used: it never makes a request.
    return openai.OpenAI(api_key="webhook-verification-only", max_retries=0)


class WebhookReceipt(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    job: str | None = None


@post(
    "/openai/webhooks",
    status_code=200,
    request_max_body_size=_MAX_BODY,
    summary="OpenAI's fine-tuning webhooks (signed by OpenAI, not by a Burro key)",
    security=[],
)
async def openai_webhook(
    request: Request[Any, Any, Any], resources: UsesResources
) -> WebhookReceipt:
    secret = resources.settings.openai_webhook_secret
    if secret is None:
        raise NotFound("OpenAI webhooks are not configured (OPENAI_WEBHOOK_SECRET).")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        event = _verifier().webhooks.unwrap(body, headers, secret=secret)
    except (openai.InvalidWebhookSignatureError, ValueError, TypeError) as exc:
        log.warning("upstream_webhook.rejected", reason=type(exc).__name__)
        raise BadRequest(
            "The webhook signature is missing or wrong.", code="invalid_signature"
        ) from None
    webhook_id = headers.get("webhook-id", "")
    fresh = await resources.redis.set(
        f"{PREFIX}:upstream-webhooks:openai:{webhook_id}", 1, nx=True, ex=_WEBHOOK_DEDUPE_SECONDS
    )
    if not fresh:
        log.info("upstream_webhook.duplicate", webhook_id=webhook_id)
        return WebhookReceipt(status="duplicate")
    if not event.type.startswith("fine_tuning.job."):
        return WebhookReceipt(status="ignored")
    upstream_id = getattr(event.data, "id", None)
    raw = await resources.redis.get(by_upstream_key(upstream_id)) if upstream_id else None
    if raw is None:
        log.info("upstream_webhook.unknown_job", upstream=upstream_id)
        return WebhookReceipt(status="unknown_job")
    job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
    await resources.queue.enqueue(tasks.REFRESH_JOB, job_id)
    log.info("upstream_webhook.received", job=job_id, type=event.type)
    return WebhookReceipt(status="refreshing", job=job_id)


router = Router(
    path="/v1/jobs",
    route_handlers=[
        create_job,
        list_jobs,
        get_job,
        cancel_job,
        job_events,
        job_checkpoints,
        job_metrics,
    ],
    dependencies={"tenant": Provide(provide_tenant)},
    tags=["jobs"],
)

upstream_router = Router(path="/v1/upstream", route_handlers=[openai_webhook], tags=["jobs"])

# Everything this module serves, for `service.app` to register.
routers = Router(path="/", route_handlers=[router, upstream_router])
