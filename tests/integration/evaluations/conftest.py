"""Evaluations against real parts: the session's sandbox as the upstream with a model fine-tuned
on it, that model registered for a succeeded job of 'acme', and Burro in front of it."""

from __future__ import annotations

import httpx
import pytest

from service.settings import Settings
from tests.support.api import upload_dataset
from tests.support.data import chat_file
from tests.support.fixtures import with_sandbox


@pytest.fixture
def settings(settings: Settings, sandbox_url: str) -> Settings:
    return with_sandbox(settings, sandbox_url)


@pytest.fixture
def test_set(client: httpx.Client) -> str:
    """Acme's test set: the first ten examples the model was trained on."""
    return upload_dataset(client, chat_file(10), name="t")
