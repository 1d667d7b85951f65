"""A training run's request, progress and outcome: the types the trainer and its driver share.

Nothing here imports torch, so the code that drives runs (and its tests) can build requests and
read results without loading the training stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from trainer.base_models import BaseModelSpec
from trainer.hyperparameters import Hyperparameters, ResolvedHyperparameters

__all__ = [
    "Checkpoint",
    "LoraSettings",
    "StepMetrics",
    "TrainingHooks",
    "TrainingPlan",
    "TrainingRequest",
    "TrainingResult",
]


class LoraSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The adapter's shape. Defaults: rank 16 on every linear layer (what learned the Donkey)."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"


class TrainingRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One run: the base model, the stored dataset files, and where to write."""

    base_model: BaseModelSpec
    training_file: Path
    output_dir: Path
    # Prepared (dequantized) base models, shared by runs; see `trainer.base_models.prepare`.
    cache_dir: Path
    validation_file: Path | None = None
    method: Literal["supervised", "dpo"] = "supervised"
    hyperparameters: Hyperparameters = Hyperparameters()
    seed: int | None = None
    lora: LoraSettings = LoraSettings()


class TrainingPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What the run will do, known before its first step."""

    hyperparameters: ResolvedHyperparameters
    n_examples: int  # training examples used
    truncated: int  # examples cut at the model's per-example token limit
    skipped: int  # examples with nothing left to learn after the cut
    steps_per_epoch: int
    total_steps: int
    trained_tokens: int  # tokens of the examples (after the cut) times epochs, as OpenAI bills
    resumed_from_step: int | None = None


class StepMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """One optimizer step: its losses and accuracies, and how long it took."""

    step: int
    total_steps: int
    epoch: int
    train_loss: float
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None  # at the last step of an epoch
    full_valid_mean_token_accuracy: float | None = None
    step_seconds: float
    remaining_seconds: float  # smoothed step time times the steps left

    @property
    def message(self) -> str:
        """As a job event: "step 12/36: train loss 1.2300, valid loss 1.4100"."""
        text = f"step {self.step}/{self.total_steps}: train loss {self.train_loss:.4f}"
        if self.valid_loss is not None:
            text += f", valid loss {self.valid_loss:.4f}"
        return text


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The adapter saved at the end of an epoch (servable as `…:ckpt-step-{step}`)."""

    step: int
    epoch: int
    path: Path
    metrics: StepMetrics | None = None


class TrainingResult(msgspec.Struct, frozen=True, kw_only=True):
    """How a run ended. `adapter_dir` is None when it was cancelled."""

    status: Literal["succeeded", "cancelled"]
    plan: TrainingPlan
    steps: int  # the last step done
    adapter_dir: Path | None
    checkpoints: tuple[Checkpoint, ...]
    results_file: Path
    seconds: float  # wall time of this call

    @property
    def hyperparameters(self) -> ResolvedHyperparameters:
        return self.plan.hyperparameters


class TrainingHooks:
    """What a run reports to, and asks, whoever drives it; subclass what you need.

    Called from the training thread: an async caller hands results over with
    `loop.call_soon_threadsafe` or a thread-safe flag, never awaits here.
    """

    def on_start(self, plan: TrainingPlan) -> None:
        """Before the first step (of this call: a resumed run starts past step 0)."""

    def on_step(self, metrics: StepMetrics) -> None:
        """After every optimizer step."""

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        """After each epoch's adapter is on disk."""

    def should_stop(self) -> bool:
        """Asked after every step (and before the first); True cancels the run."""
        return False
