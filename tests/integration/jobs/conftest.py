"""Jobs against real parts: the session's sandbox as the upstream, polled often; Burro over
HTTP; arq workers running production's functions (`worker`, or `running_worker`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from service.settings import Settings
from tests.support.api import upload_dataset
from tests.support.data import PRICEY_TABLE
from tests.support.fixtures import MakeClient, ServeBurro, with_sandbox


@pytest.fixture
def settings(settings: Settings, sandbox_url: str) -> Settings:
    return with_sandbox(settings, sandbox_url, poll_interval=0.2)


@pytest.fixture
def dataset(client: httpx.Client) -> str:
    """Acme's dataset of 12 chat examples."""
    return upload_dataset(client)


@pytest.fixture
def pricey_burro(
    settings: Settings, tmp_path: Path, serve_burro: ServeBurro, make_client: MakeClient
) -> Callable[..., httpx.Client]:
    """Burro's API with the pricey model table (`data.PRICEY_TABLE`) and `changes` to the
    settings, as tenant 'acme': `pricey_burro(max_active_jobs=2)`."""
    table = tmp_path / "models.toml"
    table.write_text(PRICEY_TABLE)

    def serve(**changes: Any) -> httpx.Client:
        custom = msgspec.structs.replace(settings, models_file=table, **changes)
        return make_client("acme", base_url=serve_burro(custom))

    return serve
