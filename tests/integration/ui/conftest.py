"""The pages against real parts: the session's sandbox as the upstream with a model fine-tuned
on it, Burro over HTTP, and a tenant with a succeeded job, its curve and a finished evaluation."""

from __future__ import annotations

import httpx
import pytest

from service.settings import Settings
from tests.support.api import upload_dataset
from tests.support.data import chat_file
from tests.support.fixtures import with_sandbox
from tests.support.seeds import Seeded, seed


@pytest.fixture
def settings(settings: Settings, sandbox_url: str) -> Settings:
    return with_sandbox(settings, sandbox_url)


@pytest.fixture
def seeded(client: httpx.Client, settings: Settings, sandbox_model: str) -> Seeded:
    """Acme's succeeded job (timeline, loss curve), a failed job, and a finished evaluation."""
    dataset_id = upload_dataset(client, chat_file(10))
    return seed(settings, tenant="acme", model=sandbox_model, dataset_id=dataset_id)
