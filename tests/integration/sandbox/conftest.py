"""The sandbox's own tests: a fresh sandbox per test (its lists start empty), driven through
the official SDK (`upstream`)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.support.fixtures import StartSandbox
from tests.support.sandboxes import upstream_sdk


@pytest.fixture
def sandbox_url(start_sandbox: StartSandbox) -> str:
    return start_sandbox()


@pytest.fixture
def upstream(sandbox_url: str) -> Iterator[openai.OpenAI]:
    """The official SDK on this test's sandbox."""
    with upstream_sdk(sandbox_url) as client:
        yield client
