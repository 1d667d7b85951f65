"""Fixtures for the inference tests: the sandbox as a real upstream, a model fine-tuned on it,
and Burro in front of it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import openai
import pytest
from inference_helpers import BASE_MODEL, jsonl, register, training_examples

from burro.testing import serve_in_thread
from sandbox.testing import fine_tune
from service.app import create_app
from service.ids import new_id
from service.settings import Settings


@pytest.fixture(scope="session")
def sandbox_model(sandbox_url: str) -> str:
    """A model fine-tuned on the sandbox (once per session), as a Burro job would make it."""
    return fine_tune(sandbox_url, jsonl(training_examples()), BASE_MODEL)


@pytest.fixture
def inference_settings(sandbox_settings: Settings) -> Settings:
    return msgspec.structs.replace(
        sandbox_settings,
        allowed_base_models=("gpt-4o-mini",),
    )


@pytest.fixture
def burro(inference_settings: Settings) -> Iterator[str]:
    """Burro's base URL, in front of the sandbox."""
    with serve_in_thread(create_app(inference_settings, configure_logs=False)) as url:
        yield url


@pytest.fixture
def acme(burro: str) -> Iterator[openai.OpenAI]:
    """The official SDK pointed at Burro, as tenant 'acme'."""
    with openai.OpenAI(base_url=f"{burro}/v1", api_key="key-acme", max_retries=0) as client:
        yield client


@pytest.fixture
def acme_http(burro: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=burro, headers={"Authorization": "Bearer key-acme"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def acme_job(redis_url: str, sandbox_model: str) -> str:
    """A succeeded job of 'acme', registered as the jobs code registers it."""
    job_id = new_id("job_")
    register(redis_url, "acme", job_id, sandbox_model)
    return job_id


@pytest.fixture
def donkey(acme_http: httpx.Client, acme_job: str) -> str:
    """Acme's alias 'donkey', pointing at `acme_job`."""
    response = acme_http.put("/v1/aliases/donkey", json={"job": acme_job})
    assert response.status_code == 201, response.text
    return "donkey"
