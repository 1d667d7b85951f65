"""Fixtures for the sandbox tests: a real sandbox over HTTP and an official OpenAI client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import openai
import pytest
from sandbox_helpers import StartSandbox

from sandbox.config import SandboxConfig
from sandbox.state import Clock
from sandbox.testing import running_sandbox

FAST = SandboxConfig(step_seconds=0.2)


@pytest.fixture
def start_sandbox() -> Iterator[StartSandbox]:
    """Start sandboxes with any config (and clock); all stop at the end of the test."""
    with contextlib.ExitStack() as stack:

        def start(config: SandboxConfig = FAST, clock: Clock | None = None) -> str:
            return stack.enter_context(running_sandbox(config, clock=clock))

        yield start


@pytest.fixture
def sandbox_url(start_sandbox: StartSandbox) -> str:
    return start_sandbox()


@pytest.fixture
def client(sandbox_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sandbox_url, api_key="sk-test", max_retries=0) as c:
        yield c
