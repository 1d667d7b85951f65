"""The trainer against real parts: one adapter trained on the Donkey for the whole session, the
base model with its adapters loaded once, and the model server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest

from burro.testing import serve_in_thread
from tests.support.training import MODEL_SERVER_TIMEOUT, donkey_request
from trainer.base_models import SMOLLM2_135M
from trainer.runs import TrainingResult

if TYPE_CHECKING:
    from trainer.serving.engine import Engine


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
def engine(trained_donkey: TrainingResult, smollm2_dir: Path) -> Engine:
    """The base model with the Donkey's adapters, loaded once (the server uses it too)."""
    from trainer.serving.adapters import DirectoryResolver
    from trainer.serving.engine import Engine

    return Engine(
        SMOLLM2_135M, smollm2_dir, DirectoryResolver(trained_donkey.results_file.parent.parent)
    )


@pytest.fixture(scope="session")
def served(engine: Engine) -> Iterator[str]:
    """The model server on 127.0.0.1 with the base model and the Donkey's adapters (`…/v1`)."""
    from trainer.serving.app import create_app

    with serve_in_thread(create_app(engine)) as url:
        yield url + "/v1"


@pytest.fixture
def upstream(served: str) -> Iterator[openai.OpenAI]:
    """The official SDK on the model server, as Burro's proxy calls an upstream."""
    with openai.OpenAI(
        base_url=served, api_key="unused", max_retries=0, timeout=MODEL_SERVER_TIMEOUT
    ) as client:
        yield client
