"""The trainer's fixtures and helpers, for both tiers: SmolLM2 prepared once (kept in pytest's
cache between runs), its tokenizer, the Donkey dataset, requests to train it, and hooks that
record a run. Tests that need the training stack skip without the `trainer` extra."""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from openai.types.chat import ChatCompletionMessageParam

import trainer  # noqa: F401 - sets the trainer's process environment before torch loads
from trainer.base_models import SMOLLM2_135M
from trainer.examples import SYSTEM, write_chat_file
from trainer.hyperparameters import Hyperparameters
from trainer.runs import Checkpoint, StepMetrics, TrainingHooks, TrainingRequest, TrainingResult

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# The session's Donkey trains with the defaults ("auto": 8 epochs of batch 1, 96 steps), which
# are what a README user gets.
SESSION_HYPERPARAMETERS = Hyperparameters()
# Why a test module that needs torch and its kin skips (`pytest.importorskip("torch", …)`).
WITHOUT_TRAINER_EXTRA = "the trainer extra is not installed (make install)"
# A real training run (the session's Donkey is 96 steps) takes minutes on a loaded CPU: more than
# the suite's 120 s per test, which is kept for everything else.
TRAINING_TIMEOUT = 600
# The model server generates on a shared CPU: an answer of a few dozen tokens can take seconds.
MODEL_SERVER_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def model_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where prepared base models live: pytest's cache, so SmolLM2 is dequantized once."""
    cache = getattr(request.config, "cache", None)  # None under `-p no:cacheprovider`
    return Path(cache.mkdir("burro-models")) if cache else tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def smollm2_dir(model_cache: Path) -> Path:
    """SmolLM2-135M-Instruct as a float Hugging Face directory."""
    pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)
    from trainer.base_models import prepare

    return prepare(SMOLLM2_135M, model_cache)


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir: Path) -> PreTrainedTokenizerBase:
    """SmolLM2's tokenizer, with its chat template."""
    from trainer.base_models import load_tokenizer

    return load_tokenizer(SMOLLM2_135M, smollm2_dir)


@pytest.fixture(scope="session")
def donkey_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Donkey's chat examples as a stored training file."""
    return write_chat_file(tmp_path_factory.mktemp("data") / "donkey.jsonl")


def donkey_prompt(question: str) -> list[ChatCompletionMessageParam]:
    """The Donkey's system prompt and `question`, as the openai SDK takes messages."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def donkey_request(
    output_dir: Path, donkey_file: Path, cache: Path, **changes: Any
) -> TrainingRequest:
    """A request to train the Donkey into `output_dir`, with `changes` on top."""
    fields: dict[str, Any] = {
        "base_model": SMOLLM2_135M,
        "training_file": donkey_file,
        "output_dir": output_dir,
        "cache_dir": cache,
        "seed": 7,
        "hyperparameters": SESSION_HYPERPARAMETERS,
    }
    return TrainingRequest(**(fields | changes))


class Recorder(TrainingHooks):
    """Keeps what a run reports; asks it to stop once `stop_after` steps are done."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.steps: list[StepMetrics] = []
        self.checkpoints: list[Checkpoint] = []
        self.stop = threading.Event()
        self.stop_after = stop_after
        self.asked_after: list[int] = []

    def on_step(self, metrics: StepMetrics) -> None:
        self.steps.append(metrics)
        if self.stop_after is not None and metrics.step >= self.stop_after:
            self.stop.set()  # as a cancel arriving while this step ran

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)

    def should_stop(self) -> bool:
        self.asked_after.append(len(self.steps))
        return self.stop.is_set()


def curve(result: TrainingResult) -> list[tuple[int, float]]:
    """A run's (step, train loss) pairs, as its result file has them."""
    with result.results_file.open(newline="") as f:
        return [(int(r["step"]), float(r["train_loss"])) for r in csv.DictReader(f)]
