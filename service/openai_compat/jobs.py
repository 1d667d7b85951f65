"""`/v1/fine_tuning/jobs`, OpenAI's fine-tuning API over Burro's jobs: a job made here is a Burro
job (it shows in `/v1/jobs`, fires Burro's webhooks, moves aliases), and every Burro job reads
back here in OpenAI's shape."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any, Literal

import msgspec
import openai
import structlog
from litestar import Request, Router, get, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from service.context import Resources, Tenant, UsesResources, provide_tenant
from service.errors import BurroError, Conflict, NotFound, UpstreamUnavailable
from service.jobs import events as timeline
from service.jobs.records import Job, JobCreate
from service.jobs.routes import request_cancel, start_job
from service.jobs.transitions import jobs, record, update
from service.models import ModelTable
from service.openai_compat import results
from service.openai_compat.errors import from_burro, invalid_request, job_not_found
from service.openai_compat.wire import (
    FineTuningHyperparametersIn,
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobCreate,
    FineTuningJobEventList,
    FineTuningJobList,
    checkpoint_view,
    event_view,
    job_view,
    openai_status,
)
from service.problems import OpenAIErrorBody

log = structlog.get_logger("burro.openai_compat")

# `metadata.burro_provider` names the provider that trains a job made here (OpenAI's body has no
# field for it); it stays in the job's metadata, so it reads back and filters like any key.
PROVIDER_METADATA_KEY = "burro_provider"
# The provider kinds whose jobs answer OpenAI's pause and resume calls.
_PAUSING_KINDS = frozenset({"openai", "azure"})
_MAX_BODY = 1024 * 1024
_SEED_LIMIT = 2_147_483_648
_AT_PATH = re.compile(r" - at `\$\.([^`]*)`$")


def trained_by(models: ModelTable, model: str) -> str | None:
    """The provider the model table says trains `model`, when its entry names one."""
    info = models.get(model)
    return info.provider if info is not None else None


def _requested_hyperparameters(
    data: FineTuningJobCreate,
) -> tuple[str, FineTuningHyperparametersIn | None]:
    """The method and its hyperparameters, from `method` or from OpenAI's legacy top-level
    `hyperparameters` (supervised), with the OpenAI name of where they were given."""
    if data.method is None:
        return "supervised", data.hyperparameters
    if data.hyperparameters is not None:
        raise invalid_request(
            "Give the hyperparameters either in method.<type>.hyperparameters or in the "
            "deprecated top-level hyperparameters, not both.",
            param="hyperparameters",
            code="conflicting_parameters",
        )
    if data.method.type == "reinforcement":
        raise invalid_request(
            "Burro runs the 'supervised' and 'dpo' methods; 'reinforcement' is not one of them.",
            param="method.type",
            code="unsupported_method",
        )
    config = data.method.dpo if data.method.type == "dpo" else data.method.supervised
    return data.method.type, config.hyperparameters if config is not None else None


def job_request(data: FineTuningJobCreate, models: ModelTable, default_seed: int) -> JobCreate:
    """OpenAI's job request as Burro's (400 in OpenAI's terms for what Burro will not take).

    The provider is `metadata.burro_provider` when set, else the one the model table says trains
    the model, else (None here) the deployment's default. Without a seed, `default_seed` is the
    job's, as OpenAI picks one for every job.
    """
    method_type, hyperparameters = _requested_hyperparameters(data)
    metadata = dict(data.metadata or {})
    provider = metadata.get(PROVIDER_METADATA_KEY) or trained_by(models, data.model)
    request: dict[str, Any] = {
        "training_dataset": data.training_file,
        "validation_dataset": data.validation_file,
        "model": data.model,
        "suffix": data.suffix or None,
        "seed": data.seed if data.seed is not None else default_seed,
        "method": {
            "type": method_type,
            "hyperparameters": None
            if hyperparameters is None
            else msgspec.to_builtins(hyperparameters, builtin_types=None),
        },
        "metadata": metadata or None,
        "provider": provider,
    }
    try:
        return msgspec.convert(request, JobCreate)
    except msgspec.ValidationError as exc:
        message = str(exc)
        found = _AT_PATH.search(message)
        where = found.group(1) if found else None
        param = _openai_param(where, method_type, legacy=data.method is None)
        problem = _AT_PATH.sub("", message)
        if param == "suffix":
            problem = "use letters, digits, '_', '.' and '-' only, up to 64 characters"
        raise invalid_request(
            f"Invalid {param or 'request'}: {problem}.",
            param=param,
            code="invalid_value",
        ) from None


def _openai_param(where: str | None, method_type: str, *, legacy: bool) -> str | None:
    if where is None:
        return None
    if where.startswith("method.hyperparameters."):
        name = where.removeprefix("method.hyperparameters.")
        return (
            f"hyperparameters.{name}" if legacy else f"method.{method_type}.hyperparameters.{name}"
        )
    if where == "provider":
        return f"metadata.{PROVIDER_METADATA_KEY}"
    renames = {"training_dataset": "training_file", "validation_dataset": "validation_file"}
    head, dot, rest = where.partition(".")
    return renames.get(head, head) + dot + rest


async def _view(resources: Resources, job: Job) -> FineTuningJob:
    files = await results.result_files(resources.redis, job.tenant, [job])
    return job_view(job, files[job.id])


async def _job(resources: Resources, tenant: str, job_id: str) -> Job:
    try:
        return await jobs(resources.redis).get_for(tenant, job_id)
    except NotFound:
        raise job_not_found(job_id) from None


@post(
    "/",
    status_code=200,
    request_max_body_size=_MAX_BODY,
    summary="Create a fine-tuning job (OpenAI's API): a Burro job, trained by the provider chosen",
)
async def create_fine_tuning_job(
    resources: UsesResources, tenant: Tenant, data: JSONBody[FineTuningJobCreate]
) -> FineTuningJob:
    request = job_request(data, resources.models, secrets.randbelow(_SEED_LIMIT))
    try:
        job = await start_job(resources, tenant, request)
    except BurroError as exc:
        raise from_burro(exc) from None
    if data.integrations:
        kinds = sorted({str(i.get("type", "unknown")) for i in data.integrations})
        await record(
            resources.queue,
            job.id,
            f"Integrations are accepted and ignored: Burro reports to none ({', '.join(kinds)}).",
            level="warn",
        )
    log.info("fine_tuning_job.created", job=job.id, tenant=tenant, provider=job.provider)
    return job_view(job, [])


def _metadata_filter(request: Request[Any, Any, Any]) -> tuple[dict[str, str], bool]:
    """The `metadata[k]=v` pairs (the SDK's deepObject style), and whether `metadata=null`
    (jobs without metadata) was asked for."""
    wanted: dict[str, str] = {}
    null = False
    for key, value in request.query_params.items():
        if key.startswith("metadata[") and key.endswith("]"):
            wanted[key[len("metadata[") : -1]] = value
        elif key == "metadata" and value == "null":
            null = True
    if wanted and null:
        raise invalid_request(
            "Do not combine metadata=null with metadata[key]=value filters.",
            param="metadata",
            code="conflicting_parameters",
        )
    return wanted, null


@get("/", summary="List fine-tuning jobs, newest first (OpenAI's API; metadata[k]=v filters)")
async def list_fine_tuning_jobs(
    request: Request[Any, Any, Any],
    resources: UsesResources,
    tenant: Tenant,
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
) -> FineTuningJobList:
    wanted, null = _metadata_filter(request)

    def where(job: Job) -> bool:
        if null:
            return not job.metadata
        return all(job.metadata.get(k) == v for k, v in wanted.items())

    try:
        page = await jobs(resources.redis).page(
            tenant, limit=limit, after=after, where=where if wanted or null else None
        )
    except NotFound:
        raise invalid_request(
            f"No fine-tuning job {after!r} to page after.", param="after", code="invalid_after"
        ) from None
    files = await results.result_files(resources.redis, tenant, page.data)
    return FineTuningJobList(
        data=[job_view(job, files[job.id]) for job in page.data], has_more=page.has_more
    )


@get("/{fine_tuning_job_id:str}", summary="Get a fine-tuning job (OpenAI's API)")
async def retrieve_fine_tuning_job(
    resources: UsesResources, tenant: Tenant, fine_tuning_job_id: FromPath[str]
) -> FineTuningJob:
    return await _view(resources, await _job(resources, tenant, fine_tuning_job_id))


@post(
    "/{fine_tuning_job_id:str}/cancel",
    status_code=200,
    request_max_body_size=_MAX_BODY,
    summary="Cancel a fine-tuning job (OpenAI's API; 400 once it has ended)",
)
async def cancel_fine_tuning_job(
    resources: UsesResources, tenant: Tenant, fine_tuning_job_id: FromPath[str]
) -> FineTuningJob:
    job = await _job(resources, tenant, fine_tuning_job_id)
    if not job.terminal:
        try:
            return await _view(resources, await request_cancel(resources, tenant, job.id))
        except Conflict:
            job = await _job(resources, tenant, fine_tuning_job_id)  # it ended meanwhile
            if not job.terminal:
                raise
    raise invalid_request(
        f"Job {job.id} has already {job.status}; only unfinished jobs can be cancelled.",
        param="fine_tuning_job_id",
        code="job_finished",
    )


async def _pause_or_resume(
    resources: Resources, tenant: str, job_id: str, action: Literal["pause", "resume"]
) -> FineTuningJob:
    """Ask the job's provider to pause or resume its upstream job, and mirror the answer."""
    job = await _job(resources, tenant, job_id)
    provider = resources.settings.provider(job.provider)
    if provider is None or provider.kind not in _PAUSING_KINDS or not provider.supports_pause:
        raise _cannot_pause(job, action)
    before = "running" if action == "pause" else "paused"
    if job.terminal or job.upstream_job_id is None or job.upstream_status != before:
        raise invalid_request(
            f"Job {job.id} is {openai_status(job)}; only {before} jobs can be {action}d.",
            param="fine_tuning_job_id",
            code="invalid_job_status",
        )
    client = resources.providers.client(job.provider)
    call = client.fine_tuning.jobs.pause if action == "pause" else client.fine_tuning.jobs.resume
    try:
        upstream = await call(job.upstream_job_id)
    except openai.APIStatusError as exc:
        if exc.status_code in (404, 405, 501):
            raise _cannot_pause(job, action) from None
        if exc.status_code < 500 and exc.status_code != 429:
            raise invalid_request(
                f"Provider {job.provider!r} refused to {action} the job: {exc.message}",
                param="fine_tuning_job_id",
                code=exc.code or "provider_refused",
            ) from None
        raise UpstreamUnavailable(
            f"Provider {job.provider!r} could not {action} the job now; try again."
        ) from None
    except openai.APIConnectionError:
        raise UpstreamUnavailable(
            f"Provider {job.provider!r} did not answer; try to {action} the job again."
        ) from None
    job = await update(resources.queue, job.id, upstream_status=upstream.status)
    await record(
        resources.queue,
        job.id,
        f"The job was {action}d at the caller's request",
        data={"upstream_status": upstream.status},
    )
    log.info(f"fine_tuning_job.{action}d", job=job.id, tenant=tenant)
    return await _view(resources, job)


def _cannot_pause(job: Job, action: str) -> BurroError:
    return invalid_request(
        f"Job {job.id} is trained by provider {job.provider!r}, which cannot {action} jobs.",
        param="fine_tuning_job_id",
        code="unsupported_by_provider",
    )


_PAUSE_RESPONSES = {
    503: ResponseSpec(
        data_container=OpenAIErrorBody,
        description="The job's provider could not be reached; try again",
        generate_examples=False,
    )
}


@post(
    "/{fine_tuning_job_id:str}/pause",
    status_code=200,
    request_max_body_size=_MAX_BODY,
    responses=_PAUSE_RESPONSES,
    summary="Pause a running fine-tuning job, where its provider can (OpenAI's API)",
)
async def pause_fine_tuning_job(
    resources: UsesResources, tenant: Tenant, fine_tuning_job_id: FromPath[str]
) -> FineTuningJob:
    return await _pause_or_resume(resources, tenant, fine_tuning_job_id, "pause")


@post(
    "/{fine_tuning_job_id:str}/resume",
    status_code=200,
    request_max_body_size=_MAX_BODY,
    responses=_PAUSE_RESPONSES,
    summary="Resume a paused fine-tuning job (OpenAI's API)",
)
async def resume_fine_tuning_job(
    resources: UsesResources, tenant: Tenant, fine_tuning_job_id: FromPath[str]
) -> FineTuningJob:
    return await _pause_or_resume(resources, tenant, fine_tuning_job_id, "resume")


@get(
    "/{fine_tuning_job_id:str}/events",
    summary="A fine-tuning job's events, newest first (OpenAI's API)",
)
async def list_fine_tuning_events(
    resources: UsesResources,
    tenant: Tenant,
    fine_tuning_job_id: FromPath[str],
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 20,
) -> FineTuningJobEventList:
    job = await _job(resources, tenant, fine_tuning_job_id)
    redis = resources.redis
    if after is not None and await timeline.known_events(redis, job.id, [after]) == [False]:
        raise invalid_request(
            f"No event {after!r} of job {job.id} to page after.",
            param="after",
            code="invalid_after",
        )
    events, has_more = await timeline.list_events(
        redis, job.id, after=after, limit=limit, newest_first=True
    )
    return FineTuningJobEventList(data=[event_view(e) for e in events], has_more=has_more)


@get(
    "/{fine_tuning_job_id:str}/checkpoints",
    summary="A fine-tuning job's checkpoints, newest first (OpenAI's API)",
)
async def list_fine_tuning_checkpoints(
    resources: UsesResources,
    tenant: Tenant,
    fine_tuning_job_id: FromPath[str],
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 10,
) -> FineTuningJobCheckpointList:
    job = await _job(resources, tenant, fine_tuning_job_id)
    newest_first = list(reversed(await timeline.load_checkpoints(resources.redis, job.id)))
    start = 0
    if after is not None:
        start = next((i + 1 for i, c in enumerate(newest_first) if c.id == after), -1)
        if start < 0:
            raise invalid_request(
                f"No checkpoint {after!r} of job {job.id} to page after.",
                param="after",
                code="invalid_after",
            )
    data = [checkpoint_view(job.id, c) for c in newest_first[start : start + limit]]
    return FineTuningJobCheckpointList(
        data=data,
        has_more=start + limit < len(newest_first),
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )


router = Router(
    path="/v1/fine_tuning/jobs",
    route_handlers=[
        create_fine_tuning_job,
        list_fine_tuning_jobs,
        retrieve_fine_tuning_job,
        cancel_fine_tuning_job,
        pause_fine_tuning_job,
        resume_fine_tuning_job,
        list_fine_tuning_events,
        list_fine_tuning_checkpoints,
    ],
    dependencies={"tenant": Provide(provide_tenant)},
    tags=["openai: fine-tuning"],
)
