"""Fixtures for the trainer: SmolLM2 prepared once (kept in pytest's cache between runs), the
Donkey dataset, one adapter trained on it for the whole session, and the model server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import trainer  # noqa: F401 - sets the trainer's process environment before torch loads
from trainer.examples import write_chat_file

pytest.importorskip("torch", reason="the trainer extra is not installed (make install)")

from trainer.base_models import SMOLLM2_135M, load_tokenizer, prepare
from trainer.hyperparameters import Hyperparameters
from trainer.runs import TrainingRequest, TrainingResult

# The session's Donkey trains with the defaults ("auto": 8 epochs of batch 1, 96 steps), which
# are what a README user gets.
SESSION_HYPERPARAMETERS = Hyperparameters()


@pytest.fixture(scope="session")
def model_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where prepared base models live: pytest's cache, so SmolLM2 is dequantized once."""
    cache = getattr(request.config, "cache", None)  # None under `-p no:cacheprovider`
    return Path(cache.mkdir("burro-models")) if cache else tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def smollm2_dir(model_cache: Path) -> Path:
    return prepare(SMOLLM2_135M, model_cache)


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir: Path) -> Any:
    return load_tokenizer(SMOLLM2_135M, smollm2_dir)


@pytest.fixture(scope="session")
def donkey_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chat_file(tmp_path_factory.mktemp("data") / "donkey.jsonl")


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


@pytest.fixture(scope="session")
def trained_donkey(
    tmp_path_factory: pytest.TempPathFactory,
    donkey_file: Path,
    model_cache: Path,
    smollm2_dir: Path,
) -> TrainingResult:
    """One real LoRA run on the Donkey, shared by the tests that only read its outcome."""
    from trainer.training import train

    output = tmp_path_factory.mktemp("runs") / "ft:SmolLM2-135M-Instruct:test:donkey:1"
    return train(donkey_request(output, donkey_file, model_cache))


@pytest.fixture(scope="session")
def served(engine: Any) -> Iterator[str]:
    """The model server on 127.0.0.1 with the base model and the Donkey's adapters (`…/v1`)."""
    from burro.testing import serve_in_thread
    from trainer.serving.app import create_app

    with serve_in_thread(create_app(engine)) as url:
        yield url + "/v1"


@pytest.fixture(scope="session")
def engine(trained_donkey: TrainingResult, smollm2_dir: Path) -> Any:
    """The base model with the Donkey's adapters, loaded once (the server uses it too)."""
    from trainer.serving.adapters import DirectoryResolver
    from trainer.serving.engine import Engine

    return Engine(
        SMOLLM2_135M, smollm2_dir, DirectoryResolver(trained_donkey.results_file.parent.parent)
    )
