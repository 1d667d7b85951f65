"""The Job: its stored record, its statuses and their one table of moves, and its wire shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from service.store import PREFIX

JobStatus = Literal[
    "pending",
    "uploading",
    "validating_files",
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# The statuses that mirror an upstream job.
UPSTREAM_STATUSES: frozenset[str] = frozenset({"validating_files", "queued", "running"})

_AFTER_UPLOAD: frozenset[JobStatus] = frozenset(
    {"validating_files", "queued", "running", "succeeded", "failed", "cancelled"}
)
# The one table of allowed moves. A terminal status has none: it never changes again.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    "pending": frozenset({"uploading", "failed", "cancelled"}),
    "uploading": _AFTER_UPLOAD,
    "validating_files": _AFTER_UPLOAD - {"validating_files"},
    "queued": frozenset({"running", "succeeded", "failed", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
# How far along each status is: mirroring an upstream job only ever moves forward, so a stale
# list page can never take a job back.
RANK: dict[str, int] = {
    "pending": 0,
    "uploading": 1,
    "validating_files": 2,
    "queued": 3,
    "running": 4,
    "succeeded": 5,
    "failed": 5,
    "cancelled": 5,
}

MethodType = Literal["supervised", "dpo"]
# OpenAI allows 16 metadata keys; Burro keeps one to tag the upstream job with its own id.
BURRO_METADATA_KEY = "burro_job"
MAX_CALLER_METADATA_KEYS = 15

JOBS = "jobs"


def active_key(provider: str) -> str:
    """Sorted set of the provider's Burro jobs that have an upstream job still running."""
    return f"{PREFIX}:jobs:active:{provider}"


def events_read_key(provider: str) -> str:
    """Sorted set of the provider's active jobs by when their upstream events were last read
    (Unix seconds): a poll pass reads a running job's events at most once per interval."""
    return f"{PREFIX}:jobs:events-read:{provider}"


UNFINISHED_KEY = f"{PREFIX}:jobs:unfinished"
"""Set of every job not yet terminal: a worker starting up resumes each of them."""


def by_upstream_key(upstream_job_id: str) -> str:
    """The Burro job behind an upstream job id (for OpenAI's webhooks)."""
    return f"{PREFIX}:jobs:by-upstream:{upstream_job_id}"


def create_lock_key(job_id: str) -> str:
    """Held while a worker creates the upstream job, and by a cancel that comes before it."""
    return f"{PREFIX}:jobs:create-lock:{job_id}"


class JobError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


class Hyperparameters(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Training knobs; "auto" lets the upstream choose."""

    n_epochs: Annotated[int, msgspec.Meta(ge=1, le=50)] | Literal["auto"] = "auto"
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=256)] | Literal["auto"] = "auto"
    learning_rate_multiplier: Annotated[float, msgspec.Meta(gt=0, le=10)] | Literal["auto"] = "auto"
    beta: Annotated[float, msgspec.Meta(gt=0, le=2)] | Literal["auto"] | None = None  # DPO only


class Method(msgspec.Struct, frozen=True, kw_only=True):
    type: MethodType = "supervised"
    hyperparameters: Hyperparameters = msgspec.field(default_factory=Hyperparameters)


PromotionStatus = Literal["pending", "evaluating", "promoted", "not_promoted"]
# An evaluation of at most this many examples gates a promotion unless the job says otherwise.
DEFAULT_PROMOTION_EXAMPLES = 50
MAX_PROMOTION_EXAMPLES = 1000


class Promotion(msgspec.Struct, frozen=True, kw_only=True):
    """A gate on `promote_to`: after the job succeeds, evaluate its model on a test set and move
    the alias only if it scores at least as well as the baseline (or `min_similarity`).

    `status` goes pending (the job has not succeeded) → evaluating → promoted | not_promoted;
    `reason` says why, in the words the alias history keeps.
    """

    evaluation_dataset: str
    min_similarity: float | None = None
    baseline_model: str | None = None
    max_examples: int = DEFAULT_PROMOTION_EXAMPLES
    status: PromotionStatus = "pending"
    evaluation: str | None = None
    reason: str | None = None
    # Each answer of the evaluation at most this long (a distillation's teacher's limit).
    max_tokens: int | None = None


DistillationPhase = Literal["teacher", "student"]
# A distillation keeps this share of its prompts for the evaluation unless the job says otherwise.
DEFAULT_HOLDOUT = 0.2
DEFAULT_DISTILLATION_SIMILARITY = 0.6
DEFAULT_TEACHER_CONCURRENCY = 4
MAX_TEACHER_CONCURRENCY = 64


class Distillation(msgspec.Struct, frozen=True, kw_only=True):
    """A job that first asks a teacher model every prompt of `prompts_dataset`, then trains its
    student (the job's `model`) on the answers (`service.distillation`).

    `phase` is `teacher` until both datasets are written, then `student`: from there on the job
    is a normal job on `dataset`, gated on `holdout_dataset`. The teacher is pinned when the job
    is created (`teacher_model` on `teacher_provider`), so an alias that moves meanwhile does
    not change who answers.
    """

    teacher: str
    teacher_model: str
    teacher_provider: str
    teacher_base_model: str
    prompts_dataset: str
    holdout: float | int = DEFAULT_HOLDOUT
    min_similarity: float = DEFAULT_DISTILLATION_SIMILARITY
    max_concurrency: int = DEFAULT_TEACHER_CONCURRENCY
    max_tokens: int | None = None
    phase: DistillationPhase = "teacher"
    prompts: int = 0
    answered: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    teacher_cost_usd: float = 0.0
    dataset: str | None = None
    holdout_dataset: str | None = None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A fine-tuning job as stored in Redis. New fields get defaults; types never change."""

    id: str
    tenant: str
    status: JobStatus
    provider: str
    model: str
    training_dataset: str
    validation_dataset: str | None = None
    suffix: str | None = None
    seed: int | None = None
    method: Method = msgspec.field(default_factory=Method)
    metadata: dict[str, str] = {}
    promote_to: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    upstream_job_id: str | None = None
    upstream_status: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    estimated_cost_usd: float | None = None
    cost_usd: float | None = None
    error: JobError | None = None
    created_at: int
    updated_at: int
    finished_at: int | None = None
    estimated_finish: int | None = None
    # From the training dataset's estimate at creation, with the job's n_epochs: the tokens it
    # trains, and for local models how long one trainer takes (None: no estimate).
    estimated_trained_tokens: int | None = None
    estimated_duration_seconds: int | None = None
    status_changed_at: int = 0
    result_files: list[str] = []
    # The status a "stuck" notice was recorded for (one notice per status).
    stuck_noticed: str | None = None
    cancel_requested: bool = False
    request_id: str | None = None
    promotion: Promotion | None = None
    # The hyperparameters the provider settled on ("auto" resolved), once it says.
    resolved_hyperparameters: Hyperparameters | None = None
    distillation: Distillation | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


# --- Requests --------------------------------------------------------------------------------

DatasetId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
MetadataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
MetadataValue = Annotated[str, msgspec.Meta(max_length=512)]


class WebhookIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    secret: (
        Annotated[str, msgspec.Meta(pattern=r"^whsec_[A-Za-z0-9+/]{16,}={0,2}$", max_length=256)]
        | None
    ) = None


class HyperparametersIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    n_epochs: Annotated[int, msgspec.Meta(ge=1, le=50)] | Literal["auto"] = "auto"
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=256)] | Literal["auto"] = "auto"
    learning_rate_multiplier: Annotated[float, msgspec.Meta(gt=0, le=10)] | Literal["auto"] = "auto"
    beta: Annotated[float, msgspec.Meta(gt=0, le=2)] | Literal["auto"] | None = None


class MethodIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: MethodType = "supervised"
    hyperparameters: HyperparametersIn | None = None


class PromotionIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Promote to `promote_to` only after an evaluation on `evaluation_dataset` (a chat set):
    the fine-tuned model's mean similarity must reach the baseline's (`baseline_model`, by
    default the job's base model) or, when given, `min_similarity` (above 1 never promotes)."""

    evaluation_dataset: DatasetId
    min_similarity: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    baseline_model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    max_examples: Annotated[int, msgspec.Meta(ge=1, le=MAX_PROMOTION_EXAMPLES)] = (
        DEFAULT_PROMOTION_EXAMPLES
    )


class TeacherIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The model whose answers the student learns: any model the tenant can chat with (one of
    its fine-tuned models, a job id, an alias, or a base model Burro serves)."""

    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class DistillationIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a distillation runs. `holdout`: the prompts kept out of training for the evaluation
    that gates `promote_to`, a fraction (0 < x < 1) or a count; `min_similarity`: the mean
    similarity of the student's answers to the teacher's that the gate asks for;
    `max_concurrency`: teacher requests in flight; `max_tokens`: per teacher answer."""

    holdout: (
        Annotated[float, msgspec.Meta(gt=0, lt=1)]
        | Annotated[int, msgspec.Meta(ge=1, le=MAX_PROMOTION_EXAMPLES)]
    ) = DEFAULT_HOLDOUT
    min_similarity: Annotated[float, msgspec.Meta(ge=0, le=2)] = DEFAULT_DISTILLATION_SIMILARITY
    max_concurrency: Annotated[int, msgspec.Meta(ge=1, le=MAX_TEACHER_CONCURRENCY)] = (
        DEFAULT_TEACHER_CONCURRENCY
    )
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=32_768)] | None = None


class JobCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /v1/jobs`."""

    training_dataset: DatasetId
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    validation_dataset: DatasetId | None = None
    suffix: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
        | None
    ) = None
    seed: Annotated[int, msgspec.Meta(ge=0, le=2_147_483_647)] | None = None
    method: MethodIn | None = None
    webhook: WebhookIn | None = None
    metadata: dict[MetadataKey, MetadataValue] | None = None
    promote_to: (
        Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] | None
    ) = None
    provider: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    promotion: PromotionIn | None = None
    teacher: TeacherIn | None = None
    distillation: DistillationIn | None = None


# --- Responses -------------------------------------------------------------------------------


class WebhookOut(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    url: str
    secret: str | UnsetType = UNSET  # only in the 202 answer, when Burro made the secret


class UpstreamOut(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str | None
    status: str | None
    training_file: str | None
    validation_file: str | None


class PromotionOut(msgspec.Struct, frozen=True, kw_only=True):
    """The promotion gate as callers see it: what it asks, how far it is, and why."""

    evaluation_dataset: str
    min_similarity: float | None
    baseline_model: str | None
    max_examples: int
    status: PromotionStatus
    evaluation: str | None
    reason: str | None

    @classmethod
    def of(cls, promotion: Promotion) -> PromotionOut:
        shown = msgspec.structs.asdict(promotion)
        del shown["max_tokens"]  # the job's distillation shows it
        return cls(**shown)


DistillationStep = Literal["teacher", "student", "evaluation", "finished"]


class DistillationOut(msgspec.Struct, frozen=True, kw_only=True):
    """A distillation as callers see it: which step it is at (`teacher`: asking the teacher;
    `student`: training the student; `evaluation`: the gate compares the student with the
    teacher on the held-out prompts; `finished`), its progress, datasets and cost."""

    teacher: str
    teacher_model: str
    prompts_dataset: str
    phase: DistillationStep
    prompts: int
    answered: int
    failed: int
    holdout: float | int
    min_similarity: float
    max_concurrency: int
    max_tokens: int | None
    dataset: str | None
    holdout_dataset: str | None
    prompt_tokens: int
    completion_tokens: int
    teacher_cost_usd: float

    @classmethod
    def of(cls, job: Job) -> DistillationOut:
        d = job.distillation
        assert d is not None
        step: DistillationStep = d.phase
        if d.phase == "student" and job.terminal:
            gate = job.promotion
            step = "evaluation" if gate is not None and gate.status == "evaluating" else "finished"
        elif job.terminal:
            step = "finished"
        return cls(
            teacher=d.teacher,
            teacher_model=d.teacher_model,
            prompts_dataset=d.prompts_dataset,
            phase=step,
            prompts=d.prompts,
            answered=d.answered,
            failed=d.failed,
            holdout=d.holdout,
            min_similarity=d.min_similarity,
            max_concurrency=d.max_concurrency,
            max_tokens=d.max_tokens,
            dataset=d.dataset,
            holdout_dataset=d.holdout_dataset,
            prompt_tokens=d.prompt_tokens,
            completion_tokens=d.completion_tokens,
            teacher_cost_usd=d.teacher_cost_usd,
        )


class JobOut(msgspec.Struct, frozen=True, kw_only=True):
    """A job as callers see it (never its webhook secret, except once in the 202)."""

    id: str
    object: Literal["job"]
    status: JobStatus
    provider: str
    model: str
    training_dataset: str
    validation_dataset: str | None
    suffix: str | None
    seed: int | None
    method: Method
    metadata: dict[str, str]
    promote_to: str | None
    webhook: WebhookOut | None
    upstream: UpstreamOut
    fine_tuned_model: str | None
    trained_tokens: int | None
    estimated_cost_usd: float | None
    cost_usd: float | None
    error: JobError | None
    created_at: int
    updated_at: int
    finished_at: int | None
    estimated_finish: int | None
    promotion: PromotionOut | None = None
    estimated_trained_tokens: int | None = None
    estimated_duration_seconds: int | None = None
    distillation: DistillationOut | None = None

    @classmethod
    def of(cls, job: Job, *, show_secret: bool = False) -> JobOut:
        webhook = None
        if job.webhook_url is not None:
            secret: str | UnsetType = UNSET
            if show_secret and job.webhook_secret is not None:
                secret = job.webhook_secret
            webhook = WebhookOut(url=job.webhook_url, secret=secret)
        return cls(
            id=job.id,
            object="job",
            status=job.status,
            provider=job.provider,
            model=job.model,
            training_dataset=job.training_dataset,
            validation_dataset=job.validation_dataset,
            suffix=job.suffix,
            seed=job.seed,
            method=job.method,
            metadata=job.metadata,
            promote_to=job.promote_to,
            webhook=webhook,
            upstream=UpstreamOut(
                job_id=job.upstream_job_id,
                status=job.upstream_status,
                training_file=job.training_file,
                validation_file=job.validation_file,
            ),
            fine_tuned_model=job.fine_tuned_model,
            trained_tokens=job.trained_tokens,
            estimated_cost_usd=job.estimated_cost_usd,
            cost_usd=job.cost_usd,
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
            estimated_finish=job.estimated_finish,
            promotion=None if job.promotion is None else PromotionOut.of(job.promotion),
            estimated_trained_tokens=job.estimated_trained_tokens,
            estimated_duration_seconds=job.estimated_duration_seconds,
            distillation=None if job.distillation is None else DistillationOut.of(job),
        )


class JobList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[JobOut]
    has_more: bool


def to_builtins(job: Job) -> dict[str, Any]:
    """The job's wire JSON as plain Python (the body of webhook payloads)."""
    result: dict[str, Any] = msgspec.to_builtins(JobOut.of(job))
    return result
