"""Jobs against real parts: the session's sandbox as the upstream, polled often; Burro over
HTTP; arq workers running production's functions (`worker`, or `running_worker`)."""

from __future__ import annotations

import httpx
import pytest

from service.settings import Settings
from tests.support.api import upload_dataset
from tests.support.fixtures import with_sandbox


@pytest.fixture
def settings(settings: Settings, sandbox_url: str) -> Settings:
    return with_sandbox(settings, sandbox_url, poll_interval=0.2)


@pytest.fixture
def dataset(client: httpx.Client) -> str:
    """Acme's dataset of 12 chat examples."""
    return upload_dataset(client)
