"""The drop-in OpenAI API against real parts: Burro over HTTP with the session's sandbox as its
provider, polled often, driven by the official `openai` SDK (`sdk`, `other_sdk`) as an OpenAI
customer's code drives OpenAI; `running_worker` runs the jobs."""

from __future__ import annotations

import openai
import pytest

from service.settings import Settings
from tests.support.data import chat_file
from tests.support.fixtures import with_sandbox


@pytest.fixture
def settings(settings: Settings, sandbox_url: str) -> Settings:
    return with_sandbox(settings, sandbox_url, poll_interval=0.2)


@pytest.fixture
def training_file(sdk: openai.OpenAI) -> str:
    """A fine-tune file of tenant 'acme', uploaded with the SDK."""
    return sdk.files.create(file=("donkey.jsonl", chat_file()), purpose="fine-tune").id
