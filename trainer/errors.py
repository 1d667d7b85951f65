"""Why a training run or a model load failed: one typed error per cause, each with a code.

Phase 2 turns these into a job's `error` (`{"code", "message"}`) or a 422; the message says
what a person can do about it.
"""

from __future__ import annotations

__all__ = [
    "BaseModelUnavailable",
    "InvalidTrainingData",
    "OutOfMemory",
    "TrainingError",
    "UnsupportedMethod",
]


class TrainingError(Exception):
    """A training run (or a model load) that cannot go on; `code` names the cause."""

    code = "training_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BaseModelUnavailable(TrainingError):
    """The base model's weights cannot be found or read."""

    code = "base_model_unavailable"


class InvalidTrainingData(TrainingError):
    """A training or validation file that cannot be trained on (after Burro's checks passed)."""

    code = "invalid_training_data"


class OutOfMemory(TrainingError):
    """The trainer ran out of memory (host RAM or accelerator memory)."""

    code = "out_of_memory"


class UnsupportedMethod(TrainingError):
    """A fine-tuning method or setting this trainer does not do."""

    code = "unsupported_method"
