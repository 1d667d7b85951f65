"""Fixtures for the evaluation tests: the sandbox as a real upstream, a model fine-tuned on it
and registered for a job of 'acme', Burro in front of it, and a test set drawn from training."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from evaluation_helpers import BASE_MODEL, JSONL, jsonl, register, training_examples

from burro.testing import serve_in_thread
from sandbox.testing import fine_tune
from service.app import create_app
from service.ids import new_id
from service.settings import Settings


@pytest.fixture
def sandbox_controls(sandbox_url: str) -> Iterator[httpx.Client]:
    """The sandbox's test controls (`/sandbox/faults`); faults left over are cleared."""
    with httpx.Client(base_url=sandbox_url.removesuffix("/v1"), timeout=10) as http:
        yield http
        http.delete("/sandbox/faults")


@pytest.fixture(scope="session")
def sandbox_model(sandbox_url: str) -> str:
    """A model fine-tuned on the sandbox once per session, on `training_examples()`."""
    return fine_tune(sandbox_url, jsonl(training_examples()), BASE_MODEL)


@pytest.fixture
def burro(sandbox_settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(sandbox_settings, configure_logs=False)) as url:
        yield url


@pytest.fixture
def acme(burro: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=burro, headers={"Authorization": "Bearer key-acme"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def globex(burro: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=burro, headers={"Authorization": "Bearer key-globex"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def acme_job(redis_url: str, sandbox_model: str) -> str:
    """A succeeded job of 'acme', registered as the jobs code registers it."""
    job_id = new_id("job_")
    register(redis_url, "acme", job_id, sandbox_model)
    return job_id


@pytest.fixture
def test_set(acme: httpx.Client) -> str:
    """Acme's test set: ten examples drawn from the training set."""
    response = acme.post(
        "/v1/datasets", content=jsonl(training_examples()[:10]), headers=JSONL, params={"name": "t"}
    )
    assert response.status_code == 201, response.text
    dataset_id: str = response.json()["id"]
    return dataset_id
