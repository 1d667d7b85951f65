"""OpenAI's shapes (as the official SDK parses them) and the views that show Burro's records in
them: a dataset is a `file`, a job is a `fine_tuning.job`, its timeline `fine_tuning.job.event`s
and its checkpoints `fine_tuning.job.checkpoint`s."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from service.datasets.records import Dataset
from service.jobs.events import Checkpoint, JobEvent
from service.jobs.records import Hyperparameters, Job, JobStatus

FineTuningStatus = Literal[
    "validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"
]
FilePurpose = Literal["fine-tune", "fine-tune-results"]

# Burro's statuses as OpenAI names them: before the upstream job exists, Burro is checking and
# uploading the files, which is what OpenAI calls validating them.
STATUS_MAP: dict[JobStatus, FineTuningStatus] = {
    "pending": "validating_files",
    "uploading": "validating_files",
    "validating_files": "validating_files",
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
# Failures about a file name it in `param`, as OpenAI's do (`invalid_training_file`, …).
_FILE_PARAMS = ("training_file", "validation_file")


# --- Files -----------------------------------------------------------------------------------


class FileObject(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's `file`. `status` is always `processed`: Burro keeps only files that passed."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: FilePurpose
    status: Literal["processed"] = "processed"
    status_details: None = None
    expires_at: None = None


class FileList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool
    first_id: str | None
    last_id: str | None


class FileDeleted(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


def file_of_dataset(dataset: Dataset) -> FileObject:
    """A stored dataset as the `fine-tune` file it is."""
    return FileObject(
        id=dataset.id,
        bytes=dataset.bytes,
        created_at=dataset.created_at,
        filename=dataset.name,
        purpose="fine-tune",
    )


# --- Fine-tuning jobs: requests --------------------------------------------------------------

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class FineTuningHyperparametersIn(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """OpenAI's hyperparameters; Burro checks their ranges when it makes the job."""

    n_epochs: PositiveInt | Literal["auto"] = "auto"
    batch_size: PositiveInt | Literal["auto"] = "auto"
    learning_rate_multiplier: PositiveFloat | Literal["auto"] = "auto"
    beta: PositiveFloat | Literal["auto"] | None = None  # DPO only


class FineTuningMethodConfigIn(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    hyperparameters: FineTuningHyperparametersIn | None = None


class FineTuningMethodIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: FineTuningMethodConfigIn | None = None
    dpo: FineTuningMethodConfigIn | None = None
    reinforcement: dict[str, Any] | None = None


class FineTuningJobCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of OpenAI's `POST /fine_tuning/jobs`. `integrations` are accepted and ignored
    (Burro reports to no Weights & Biases); `hyperparameters` is OpenAI's legacy place for the
    supervised method's hyperparameters."""

    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    training_file: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    validation_file: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    suffix: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    seed: Annotated[int, msgspec.Meta(ge=0, le=2_147_483_647)] | None = None
    method: FineTuningMethodIn | None = None
    hyperparameters: FineTuningHyperparametersIn | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None


# --- Fine-tuning jobs: answers ---------------------------------------------------------------


class FineTuningHyperparameters(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    batch_size: int | Literal["auto"]
    learning_rate_multiplier: float | Literal["auto"]
    n_epochs: int | Literal["auto"]
    beta: float | Literal["auto"] | None = None  # DPO only


class FineTuningMethodConfig(msgspec.Struct, frozen=True, kw_only=True):
    hyperparameters: FineTuningHyperparameters


class FineTuningMethod(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    type: Literal["supervised", "dpo"]
    supervised: FineTuningMethodConfig | None = None
    dpo: FineTuningMethodConfig | None = None


class FineTuningJobError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str
    param: str | None


class FineTuningJob(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's `fine_tuning.job`, with the fields the official SDK parses."""

    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: FineTuningJobError | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: FineTuningHyperparameters
    model: str
    organization_id: str
    result_files: list[str]
    seed: int | None
    status: FineTuningStatus
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    integrations: list[dict[str, Any]] | None
    metadata: dict[str, str] | None
    method: FineTuningMethod
    user_provided_suffix: str | None


class FineTuningJobList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class FineTuningJobEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: dict[str, Any] | None
    type: Literal["message", "metrics"]


class FineTuningJobEventList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class FineTuningCheckpointMetrics(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: FineTuningCheckpointMetrics
    step_number: int


class FineTuningJobCheckpointList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None
    last_id: str | None


def openai_status(job: Job) -> FineTuningStatus:
    """The job's status in OpenAI's words; `paused` while its upstream job is paused."""
    if job.upstream_status == "paused" and not job.terminal:
        return "paused"
    return STATUS_MAP[job.status]


def _hyperparameters(hp: Hyperparameters, *, dpo: bool) -> FineTuningHyperparameters:
    return FineTuningHyperparameters(
        batch_size=hp.batch_size,
        learning_rate_multiplier=hp.learning_rate_multiplier,
        n_epochs=hp.n_epochs,
        beta=(hp.beta if hp.beta is not None else "auto") if dpo else None,
    )


def job_view(job: Job, result_files: list[str]) -> FineTuningJob:
    """A Burro job as OpenAI's `fine_tuning.job` (its result files' ids given).

    Hyperparameters read as asked ("auto" included) until the provider resolves them, then
    resolved, as OpenAI shows them; `organization_id` is the tenant.
    """
    hp = job.resolved_hyperparameters or job.method.hyperparameters
    dpo = job.method.type == "dpo"
    shown = _hyperparameters(hp, dpo=dpo)
    config = FineTuningMethodConfig(hyperparameters=shown)
    method = (
        FineTuningMethod(type="dpo", dpo=config)
        if dpo
        else FineTuningMethod(type="supervised", supervised=config)
    )
    error = None
    if job.error is not None:
        param = next((p for p in _FILE_PARAMS if p in job.error.code), None)
        error = FineTuningJobError(code=job.error.code, message=job.error.message, param=param)
    return FineTuningJob(
        id=job.id,
        created_at=job.created_at,
        error=error,
        fine_tuned_model=job.fine_tuned_model,
        finished_at=job.finished_at,
        hyperparameters=_hyperparameters(hp, dpo=False),
        model=job.model,
        organization_id=job.tenant,
        result_files=result_files,
        seed=job.seed,
        status=openai_status(job),
        trained_tokens=job.trained_tokens,
        training_file=job.training_dataset,
        validation_file=job.validation_dataset,
        estimated_finish=None if job.terminal else job.estimated_finish,
        integrations=None,
        metadata=job.metadata or None,
        method=method,
        user_provided_suffix=job.suffix,
    )


def event_view(event: JobEvent) -> FineTuningJobEvent:
    """One line of a job's timeline (Burro's or the upstream's) as OpenAI's event."""
    return FineTuningJobEvent(
        id=event.id,
        created_at=event.created_at,
        level=event.level,
        message=event.message,
        data=event.data,
        type="metrics" if event.type == "metrics" else "message",
    )


_METRIC_NAMES = frozenset(FineTuningCheckpointMetrics.__struct_fields__)


def checkpoint_view(job_id: str, checkpoint: Checkpoint) -> FineTuningJobCheckpoint:
    metrics = {k: v for k, v in checkpoint.metrics.items() if k in _METRIC_NAMES}
    metrics.setdefault("step", float(checkpoint.step_number))
    return FineTuningJobCheckpoint(
        id=checkpoint.id,
        created_at=checkpoint.created_at,
        fine_tuned_model_checkpoint=checkpoint.fine_tuned_model_checkpoint,
        fine_tuning_job_id=job_id,
        metrics=FineTuningCheckpointMetrics(**metrics),
        step_number=checkpoint.step_number,
    )
