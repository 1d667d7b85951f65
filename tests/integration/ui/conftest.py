"""Fixtures for the page tests: the sandbox as the upstream, a model fine-tuned on it, Burro
over HTTP, and a tenant with a succeeded job, its curve and a finished evaluation."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from ui_helpers import BASE_MODEL, JSONL, Seeded, jsonl, seed, training_examples

from burro.testing import serve_in_thread
from sandbox.testing import fine_tune
from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="session")
def sandbox_model(sandbox_url: str) -> str:
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
def anonymous(burro: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=burro, timeout=30) as http:
        yield http


@pytest.fixture
def seeded(acme: httpx.Client, sandbox_settings: Settings, sandbox_model: str) -> Seeded:
    """Acme's succeeded job (timeline, loss curve), a failed job, and a finished evaluation."""
    response = acme.post("/v1/datasets", content=jsonl(training_examples()[:10]), headers=JSONL)
    assert response.status_code == 201, response.text
    return seed(
        sandbox_settings, tenant="acme", model=sandbox_model, dataset_id=response.json()["id"]
    )
