"""Fixtures for the page tests: the sandbox as the upstream, a model fine-tuned on it, Burro
over HTTP, and a tenant with a succeeded job, its curve and a finished evaluation."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import openai
import pytest
from ui_helpers import BASE_MODEL, JSONL, Seeded, jsonl, seed, training_examples

from burro.testing import serve_in_thread
from sandbox.config import SandboxConfig
from sandbox.testing import running_sandbox, wait_for
from service.app import create_app
from service.settings import ProviderSettings, Settings


@pytest.fixture(scope="session")
def ui_sandbox_url() -> Iterator[str]:
    with running_sandbox(SandboxConfig(step_seconds=0.1)) as url:
        yield url


@pytest.fixture(scope="session")
def ui_sandbox_model(ui_sandbox_url: str) -> str:
    with openai.OpenAI(base_url=ui_sandbox_url, api_key="sk-sandbox", max_retries=0) as client:
        file_id = client.files.create(
            file=("train.jsonl", jsonl(training_examples())), purpose="fine-tune"
        ).id
        job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id)
        done = wait_for(
            lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status == "succeeded" and j
        )
    assert done.fine_tuned_model is not None
    return done.fine_tuned_model


@pytest.fixture
def ui_settings(settings: Settings, ui_sandbox_url: str) -> Settings:
    return msgspec.structs.replace(
        settings,
        providers=(
            ProviderSettings(name="sandbox", base_url=ui_sandbox_url, api_key="sk-sandbox"),
        ),
        default_provider="sandbox",
    )


@pytest.fixture
def burro(ui_settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(ui_settings, configure_logs=False)) as url:
        yield url


@pytest.fixture
def acme(burro: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=burro, headers={"Authorization": "Bearer key-acme"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def anonymous(burro: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=burro, timeout=30) as http:
        yield http


@pytest.fixture
def seeded(acme: httpx.Client, ui_settings: Settings, ui_sandbox_model: str) -> Seeded:
    """Acme's succeeded job (timeline, loss curve), a failed job, and a finished evaluation."""
    response = acme.post("/v1/datasets", content=jsonl(training_examples()[:10]), headers=JSONL)
    assert response.status_code == 201, response.text
    return seed(
        ui_settings, tenant="acme", model=ui_sandbox_model, dataset_id=response.json()["id"]
    )
