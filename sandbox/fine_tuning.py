"""Fine-tuning jobs: create, list (with metadata filters), retrieve, cancel, pause, resume,
events and checkpoints, in the shapes of OpenAI's API."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Router, get, post
from litestar.params import FromPath, FromQuery

from sandbox import training
from sandbox.datasets import check_dataset
from sandbox.errors import bad_request, not_found
from sandbox.models_catalog import base_of, can_fine_tune
from sandbox.records import (
    ACTIVE,
    Hyperparameters,
    JobError,
    StoredCheckpoint,
    StoredEvent,
    StoredJob,
)
from sandbox.state import SandboxState, new_id
from sandbox.wire import ListPage, Sandbox, decode_body, page
from service.openai_shapes import OpenAIError

TRAINING_NOT_AVAILABLE = (
    "OpenAI is winding down the fine-tuning platform and your organization is no longer able "
    "to create new fine-tuning training jobs."
)

Auto = Literal["auto"]


class HyperparametersIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=256)] | Auto = "auto"
    learning_rate_multiplier: Annotated[float, msgspec.Meta(gt=0, le=10)] | Auto = "auto"
    n_epochs: Annotated[int, msgspec.Meta(ge=1, le=50)] | Auto = "auto"
    beta: Annotated[float, msgspec.Meta(gt=0, le=2)] | Auto | None = None


class MethodConfigIn(msgspec.Struct, frozen=True):
    hyperparameters: HyperparametersIn | None = None


class MethodIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: MethodConfigIn | None = None
    dpo: MethodConfigIn | None = None
    reinforcement: dict[str, Any] | None = None


class CreateJob(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str
    training_file: str
    validation_file: str | None = None
    suffix: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    seed: Annotated[int, msgspec.Meta(ge=0, le=2147483647)] | None = None
    metadata: dict[str, str] | None = None
    method: MethodIn | None = None
    hyperparameters: HyperparametersIn | None = None
    integrations: list[Any] | None = None


_CREATE = msgspec.json.Decoder(CreateJob)


class HyperparametersOut(msgspec.Struct, frozen=True):
    batch_size: int | str
    learning_rate_multiplier: float | str
    n_epochs: int | str


class DpoHyperparametersOut(msgspec.Struct, frozen=True):
    batch_size: int | str
    learning_rate_multiplier: float | str
    n_epochs: int | str
    beta: float | str


class MethodConfigOut(msgspec.Struct, frozen=True):
    hyperparameters: HyperparametersOut | DpoHyperparametersOut


class MethodOut(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    supervised: MethodConfigOut | None = None
    dpo: MethodConfigOut | None = None


class FineTuningJob(msgspec.Struct, frozen=True):
    id: str
    object: str
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: HyperparametersOut
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: str
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    integrations: list[Any] | None
    metadata: dict[str, str] | None
    method: MethodOut
    user_provided_suffix: str | None


class JobEvent(msgspec.Struct, frozen=True):
    id: str
    object: str
    created_at: int
    level: str
    message: str
    data: dict[str, Any] | None
    type: str


class Checkpoint(msgspec.Struct, frozen=True):
    id: str
    object: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, float]
    step_number: int


def render_job(sandbox: SandboxState, job: StoredJob) -> FineTuningJob:
    hp = job.resolved or job.requested
    base = HyperparametersOut(
        batch_size=hp.batch_size,
        learning_rate_multiplier=hp.learning_rate_multiplier,
        n_epochs=hp.n_epochs,
    )
    if job.method == "dpo":
        dpo = DpoHyperparametersOut(
            batch_size=hp.batch_size,
            learning_rate_multiplier=hp.learning_rate_multiplier,
            n_epochs=hp.n_epochs,
            beta=hp.beta if hp.beta is not None else "auto",
        )
        method = MethodOut(type="dpo", dpo=MethodConfigOut(hyperparameters=dpo))
    else:
        method = MethodOut(type="supervised", supervised=MethodConfigOut(hyperparameters=base))
    return FineTuningJob(
        id=job.id,
        object="fine_tuning.job",
        created_at=int(job.created_at),
        error=job.error,
        fine_tuned_model=job.fine_tuned_model,
        finished_at=int(job.finished_at) if job.finished_at is not None else None,
        hyperparameters=base,
        model=job.model,
        organization_id=sandbox.config.organization_id,
        result_files=list(job.result_files),
        seed=job.seed,
        status=job.status,
        trained_tokens=job.trained_tokens,
        training_file=job.training_file,
        validation_file=job.validation_file,
        estimated_finish=training.estimated_finish(sandbox, job),
        integrations=job.integrations,
        metadata=job.metadata,
        method=method,
        user_provided_suffix=job.suffix,
    )


def _render_event(event: StoredEvent) -> JobEvent:
    return JobEvent(
        id=event.id,
        object="fine_tuning.job.event",
        created_at=event.created_at,
        level=event.level,
        message=event.message,
        data=event.data,
        type=event.type,
    )


def _render_checkpoint(checkpoint: StoredCheckpoint) -> Checkpoint:
    return Checkpoint(
        id=checkpoint.id,
        object="fine_tuning.job.checkpoint",
        created_at=checkpoint.created_at,
        fine_tuned_model_checkpoint=checkpoint.fine_tuned_model_checkpoint,
        fine_tuning_job_id=checkpoint.fine_tuning_job_id,
        metrics=checkpoint.metrics,
        step_number=checkpoint.step_number,
    )


def _job(sandbox: SandboxState, job_id: str) -> StoredJob:
    if job_id not in sandbox.jobs:
        raise not_found(
            f"Could not find fine-tuning job: {job_id}",
            param="fine_tuning_job_id",
            code="fine_tune_not_found",
        )
    return training.advance(sandbox, job_id)


def _check_file(sandbox: SandboxState, file_id: str, param: str, method: str) -> int:
    """Check that a file can train (its content is judged later, when validation ends)."""
    stored = sandbox.files.get(file_id)
    if stored is None:
        raise bad_request(f"invalid {param}: {file_id}", param=param, code=f"invalid_{param}")
    if stored.purpose != "fine-tune":
        raise bad_request(
            f"File {file_id} has purpose '{stored.purpose}'; a file for fine-tuning must be "
            "uploaded with purpose 'fine-tune'.",
            param=param,
            code=f"invalid_{param}",
        )
    key = (file_id, method)
    if key not in sandbox.checks:
        sandbox.checks[key] = check_dataset(stored.content, method=method, param=param)
    return len(stored.content)


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > 16:
        raise bad_request("metadata may have at most 16 keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise bad_request(
                "metadata keys are at most 64 characters and values at most 512.",
                param="metadata",
            )


@post("/", status_code=200)
async def create_job(request: Request[Any, Any, Any], sandbox: Sandbox) -> FineTuningJob:
    if not sandbox.config.training_available:
        raise OpenAIError(403, TRAINING_NOT_AVAILABLE, code="training_not_available")
    body = await decode_body(request, _CREATE)
    if not can_fine_tune(body.model):
        raise bad_request(
            f"Model {body.model} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    method_type = body.method.type if body.method else "supervised"
    if method_type == "reinforcement":
        raise bad_request(
            "The sandbox supports the 'supervised' and 'dpo' methods only.", param="method.type"
        )
    requested = body.hyperparameters
    if body.method is not None:
        config = body.method.dpo if method_type == "dpo" else body.method.supervised
        if config is not None and config.hyperparameters is not None:
            requested = config.hyperparameters
    if requested is not None and requested.beta is not None and method_type != "dpo":
        raise bad_request("beta is a DPO hyperparameter.", param="hyperparameters.beta")
    _check_metadata(body.metadata)
    training_bytes = _check_file(sandbox, body.training_file, "training_file", method_type)
    if body.validation_file is not None:
        _check_file(sandbox, body.validation_file, "validation_file", method_type)
    check = sandbox.checks[(body.training_file, method_type)]
    now = sandbox.now()
    job_id = new_id("ftjob-")
    short = new_id("", 8)
    suffix = body.suffix or ""
    seed = body.seed
    if seed is None:
        seed = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4]) % 2147483647
    job = StoredJob(
        id=job_id,
        created_at=now,
        model=body.model,
        training_file=body.training_file,
        validation_file=body.validation_file,
        suffix=body.suffix,
        seed=seed,
        metadata=body.metadata,
        method="dpo" if method_type == "dpo" else "supervised",
        requested=Hyperparameters(
            batch_size=requested.batch_size if requested else "auto",
            learning_rate_multiplier=requested.learning_rate_multiplier if requested else "auto",
            n_epochs=requested.n_epochs if requested else "auto",
            beta=(requested.beta if requested else None)
            if method_type != "dpo"
            else (requested.beta if requested and requested.beta is not None else "auto"),
        ),
        integrations=body.integrations,
        fine_tuned_model_name=f"ft:{base_of(body.model)}:sandbox:{suffix}:{short}",
        n_examples=check.n_examples,
        training_bytes=training_bytes,
        resumed_at=now,
    )
    sandbox.jobs[job_id] = job
    sandbox.events[job_id] = []
    sandbox.model_jobs[job.fine_tuned_model_name] = job_id
    training.record_event(sandbox, job_id, now, f"Created fine-tuning job: {job_id}")
    training.record_event(sandbox, job_id, now, f"Validating training file: {body.training_file}")
    if body.validation_file:
        training.record_event(
            sandbox, job_id, now, f"Validating validation file: {body.validation_file}"
        )
    training.schedule(sandbox, job)
    return render_job(sandbox, job)


def _metadata_filter(request: Request[Any, Any, Any]) -> tuple[dict[str, str], bool]:
    """`metadata[k]=v` pairs (the SDK's deepObject style), and whether `metadata=null` was sent."""
    wanted: dict[str, str] = {}
    null = False
    for key, value in request.query_params.items():
        if key.startswith("metadata[") and key.endswith("]"):
            wanted[key[len("metadata[") : -1]] = value
        elif key == "metadata" and value == "null":
            null = True
    return wanted, null


@get("/")
async def list_jobs(
    request: Request[Any, Any, Any],
    sandbox: Sandbox,
    after: FromQuery[str | None] = None,
    limit: FromQuery[int] = 20,
) -> ListPage:
    wanted, null = _metadata_filter(request)
    if wanted and null:
        raise bad_request(
            "Do not combine metadata=null with metadata[key] filters.", param="metadata"
        )
    jobs = [
        job
        for job in reversed(sandbox.jobs.values())
        if (not null or not job.metadata)
        and all((job.metadata or {}).get(k) == v for k, v in wanted.items())
    ]
    return page(
        jobs,
        key=lambda job: job.id,
        render=lambda job: render_job(sandbox, training.advance(sandbox, job.id)),
        after=after,
        limit=limit,
    )


@get("/{job_id:str}")
async def retrieve_job(job_id: FromPath[str], sandbox: Sandbox) -> FineTuningJob:
    return render_job(sandbox, _job(sandbox, job_id))


@post("/{job_id:str}/cancel", status_code=200)
async def cancel_job(job_id: FromPath[str], sandbox: Sandbox) -> FineTuningJob:
    job = _job(sandbox, job_id)
    if job.status not in ACTIVE:
        raise bad_request(
            f"Job {job_id} has already {job.status}; only unfinished jobs can be cancelled.",
            param="fine_tuning_job_id",
        )
    job = training.cancel(sandbox, job)
    sandbox.jobs[job_id] = job
    return render_job(sandbox, job)


@post("/{job_id:str}/pause", status_code=200)
async def pause_job(job_id: FromPath[str], sandbox: Sandbox) -> FineTuningJob:
    job = _job(sandbox, job_id)
    if job.status != "running":
        raise bad_request(
            f"Job {job_id} is {job.status}; only running jobs can be paused.",
            param="fine_tuning_job_id",
        )
    job = training.pause(sandbox, job)
    sandbox.jobs[job_id] = job
    return render_job(sandbox, job)


@post("/{job_id:str}/resume", status_code=200)
async def resume_job(job_id: FromPath[str], sandbox: Sandbox) -> FineTuningJob:
    job = _job(sandbox, job_id)
    if job.status != "paused":
        raise bad_request(
            f"Job {job_id} is {job.status}; only paused jobs can be resumed.",
            param="fine_tuning_job_id",
        )
    job = training.resume(sandbox, job)
    sandbox.jobs[job_id] = job
    training.schedule(sandbox, job)
    return render_job(sandbox, job)


@get("/{job_id:str}/events")
async def list_events(
    job_id: FromPath[str],
    sandbox: Sandbox,
    after: FromQuery[str | None] = None,
    limit: FromQuery[int] = 20,
) -> ListPage:
    _job(sandbox, job_id)
    events = list(reversed(sandbox.events.get(job_id, [])))
    return page(events, key=lambda e: e.id, render=_render_event, after=after, limit=limit)


@get("/{job_id:str}/checkpoints")
async def list_checkpoints(
    job_id: FromPath[str],
    sandbox: Sandbox,
    after: FromQuery[str | None] = None,
    limit: FromQuery[int] = 10,
) -> ListPage:
    _job(sandbox, job_id)
    checkpoints = list(reversed(sandbox.checkpoints.get(job_id, [])))
    return page(
        checkpoints, key=lambda c: c.id, render=_render_checkpoint, after=after, limit=limit
    )


router = Router(
    path="/v1/fine_tuning/jobs",
    route_handlers=[
        create_job,
        list_jobs,
        retrieve_job,
        cancel_job,
        pause_job,
        resume_job,
        list_events,
        list_checkpoints,
    ],
)
