"""OpenAI's fine-tuning hyperparameters, with `"auto"` resolved as OpenAI resolves them.

- `n_epochs`: the cookbook's rule that Burro's estimates already use
  (`service.datasets.checks.default_epochs`): 3, raised so the run sees at least 100 examples
  and lowered so it sees at most 25,000, within 1 to 25 epochs.
- `batch_size`: about 0.2% of the training examples, at least 1 and at most 256 (OpenAI's
  documented default).
- `learning_rate_multiplier`: OpenAI scales its default with the batch size ("larger learning
  rates tend to perform better with larger batch sizes"); Burro uses the square-root rule,
  `sqrt(batch_size)` between 1 and 8. The learning rate is the multiplier times
  `BASE_LEARNING_RATE`, a LoRA rate (LoRA adapters train at rates about ten times a full
  fine-tune's).
- `seed`: a random one, reported back so the run can be repeated.
- `beta` (DPO only): 0.1, TRL's and OpenAI's default.
"""

from __future__ import annotations

import math
import secrets
from typing import Annotated, Literal

import msgspec

from service.datasets.checks import default_epochs

__all__ = [
    "BASE_LEARNING_RATE",
    "Hyperparameters",
    "ResolvedHyperparameters",
    "resolve",
]

# The learning rate of `learning_rate_multiplier: 1`. With the square-root rule, OpenAI's
# batch size of 1 for a small set trains at 5e-4 (the Donkey learns its twelve answers in the
# default 8 epochs); a batch of 16 at 2e-3.
BASE_LEARNING_RATE = 5e-4
MAX_AUTO_MULTIPLIER = 8.0
BATCH_FRACTION = 0.002
MAX_AUTO_BATCH_SIZE = 256
DEFAULT_BETA = 0.1
SEED_LIMIT = 2**31  # OpenAI's seeds are 32-bit signed integers

Auto = Literal["auto"]


class Hyperparameters(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a job asks for: numbers or "auto" (OpenAI's `method.*.hyperparameters`)."""

    n_epochs: Annotated[int, msgspec.Meta(ge=1, le=50)] | Auto = "auto"
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=256)] | Auto = "auto"
    learning_rate_multiplier: Annotated[float, msgspec.Meta(gt=0, le=10)] | Auto = "auto"
    beta: Annotated[float, msgspec.Meta(gt=0, le=2)] | Auto = "auto"


class ResolvedHyperparameters(msgspec.Struct, frozen=True, kw_only=True):
    """The values a run uses, as the job shows them."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float
    seed: int
    beta: float | None = None  # DPO only


def resolve(
    requested: Hyperparameters,
    *,
    n_examples: int,
    seed: int | None,
    method: Literal["supervised", "dpo"] = "supervised",
) -> ResolvedHyperparameters:
    """Turn every "auto" in `requested` into the number OpenAI's rules give for the dataset."""
    n_epochs = requested.n_epochs if requested.n_epochs != "auto" else default_epochs(n_examples)
    batch_size = (
        requested.batch_size
        if requested.batch_size != "auto"
        else max(1, min(MAX_AUTO_BATCH_SIZE, math.ceil(n_examples * BATCH_FRACTION)))
    )
    # Never more than the examples: a batch larger than the dataset is the dataset.
    batch_size = min(batch_size, n_examples)
    multiplier = (
        float(requested.learning_rate_multiplier)
        if requested.learning_rate_multiplier != "auto"
        else min(MAX_AUTO_MULTIPLIER, max(1.0, math.sqrt(batch_size)))
    )
    beta = None
    if method == "dpo":
        beta = DEFAULT_BETA if requested.beta == "auto" else float(requested.beta)
    return ResolvedHyperparameters(
        n_epochs=n_epochs,
        batch_size=batch_size,
        learning_rate_multiplier=round(multiplier, 4),
        learning_rate=BASE_LEARNING_RATE * multiplier,
        seed=seed if seed is not None else secrets.randbelow(SEED_LIMIT),
        beta=beta,
    )
