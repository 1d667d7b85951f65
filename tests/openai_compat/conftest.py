"""The drop-in OpenAI API against real parts: Burro served over HTTP with the sandbox as its
provider, driven by the official `openai` SDK as an OpenAI customer's code drives OpenAI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import msgspec
import openai
import pytest

from burro.testing import serve_in_thread
from service.app import create_app
from service.settings import Settings
from tests.jobs.conftest import StartWorker, start_worker  # noqa: F401 (fixtures used here)

MODEL = "gpt-4o-mini"  # the tutorial's model, an alias in Burro's model table


def training_jsonl(n: int = 12, salt: str = "") -> bytes:
    """A chat fine-tuning file: `n` conversations with Donkey, valid for every check."""
    lines = []
    for i in range(n):
        messages = [
            {"role": "system", "content": "You are Donkey from Shrek."},
            {"role": "user", "content": f"Question {i}{salt}: how are you?"},
            {"role": "assistant", "content": f"Oh, I'm great, answer {i}{salt}!"},
        ]
        lines.append(json.dumps({"messages": messages}))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def compat_settings(sandbox_settings: Settings) -> Settings:
    """The sandbox as the default provider, polled often so jobs end in seconds."""
    return msgspec.structs.replace(sandbox_settings, poll_interval=0.2)


@pytest.fixture
def burro(compat_settings: Settings) -> Iterator[str]:
    """Burro's base URL (…/v1 is where an OpenAI client points)."""
    with serve_in_thread(create_app(compat_settings, configure_logs=False)) as url:
        yield url


def sdk(burro: str, key: str) -> openai.OpenAI:
    """The official SDK pointed at Burro: only `base_url` and the key differ from OpenAI."""
    return openai.OpenAI(base_url=f"{burro}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture
def acme(burro: str) -> Iterator[openai.OpenAI]:
    with sdk(burro, "key-acme") as client:
        yield client


@pytest.fixture
def globex(burro: str) -> Iterator[openai.OpenAI]:
    with sdk(burro, "key-globex") as client:
        yield client


@pytest.fixture
def acme_http(burro: str) -> Iterator[httpx.Client]:
    """Burro's own API as tenant 'acme', to see the same records from the other side."""
    with httpx.Client(
        base_url=burro, headers={"Authorization": "Bearer key-acme"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def job_settings(compat_settings: Settings) -> Settings:
    """The settings the jobs suite's `start_worker` runs its workers on."""
    return compat_settings


@pytest.fixture
def training_file(acme: openai.OpenAI) -> str:
    """A fine-tune file of tenant 'acme', uploaded with the SDK."""
    return acme.files.create(file=("donkey.jsonl", training_jsonl()), purpose="fine-tune").id
