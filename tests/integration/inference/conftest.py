"""Inference against real parts: the session's sandbox as the upstream with a model fine-tuned
on it, registered for a succeeded job of 'acme', and Burro in front of it."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from service.settings import Settings
from tests.support.fixtures import ServeBurro, with_sandbox


@pytest.fixture
def settings(settings: Settings, sandbox_url: str) -> Settings:
    return msgspec.structs.replace(
        with_sandbox(settings, sandbox_url), allowed_base_models=("gpt-4o-mini",)
    )


@pytest.fixture
def donkey(client: httpx.Client, acme_job: str) -> str:
    """Acme's alias 'donkey', pointing at `acme_job`."""
    response = client.put("/v1/aliases/donkey", json={"job": acme_job})
    assert response.status_code == 201, response.text
    return "donkey"


@pytest.fixture
def burro_url(serve_burro: ServeBurro, settings: Settings) -> str:
    """Burro of this test's own: chat usage is written to Redis in the background, and a
    server shared with the test before could write that test's usage into this one's Redis."""
    return serve_burro(settings)
