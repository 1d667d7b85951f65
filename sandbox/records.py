"""What the sandbox stores: frozen records, never handed to the wire as they are."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

JobStatus = Literal[
    "validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"
]
ACTIVE: frozenset[str] = frozenset({"validating_files", "queued", "running", "paused"})
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class StoredFile(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    created_at: int
    filename: str
    purpose: str
    content: bytes


class StoredUpload(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    bytes: int
    mime_type: str
    status: Literal["pending", "completed", "cancelled", "expired"] = "pending"
    file_id: str | None = None


class StoredPart(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    upload_id: str
    created_at: int
    data: bytes


class JobError(msgspec.Struct, frozen=True):
    code: str
    message: str
    param: str | None


class Hyperparameters(msgspec.Struct, frozen=True, kw_only=True):
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    n_epochs: int | str = "auto"
    # DPO only.
    beta: float | str | None = None


class Example(msgspec.Struct, frozen=True):
    """The last user message of a training example and the reply it teaches."""

    prompt: str
    reply: str


class DatasetCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of checking one file's content, computed once per file (files never change)."""

    n_examples: int
    error: JobError | None
    examples: tuple[Example, ...] = ()


class StoredJob(msgspec.Struct, frozen=True, kw_only=True):
    """A fine-tuning job. Its progress is a function of the clock: `elapsed` seconds of training
    time had passed at `resumed_at` (None while paused or finished)."""

    id: str
    created_at: float
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    method: Literal["supervised", "dpo"]
    requested: Hyperparameters
    integrations: list[Any] | None
    fine_tuned_model_name: str
    n_examples: int
    training_bytes: int
    status: JobStatus = "validating_files"
    elapsed: float = 0.0
    resumed_at: float | None = None
    finished_at: float | None = None
    resolved: Hyperparameters | None = None
    error: JobError | None = None
    fine_tuned_model: str | None = None
    result_files: tuple[str, ...] = ()
    trained_tokens: int | None = None
    # The last training step already turned into events and checkpoints.
    progress_step: int = 0


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None


class StoredCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: dict[str, float]
