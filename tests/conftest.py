"""Shared fixtures: a private Redis, settings for a test, and Burro served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import redis

from burro.redis_server import RedisServer
from burro.testing import serve_in_thread
from sandbox.config import SandboxConfig
from sandbox.testing import running_sandbox
from service.app import create_app
from service.settings import ProviderSettings, Settings

TENANT_KEYS = (("acme", "key-acme"), ("globex", "key-globex"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session, on a free port; never the machine's own."""
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    if redis_server.process is None:  # a test killed it: bring it back
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        api_keys=TENANT_KEYS,
        webhook_allow_private=True,
        # Tests poll the API in loops; the limit itself is tested in tests/test_limits.py.
        rate_limit=0,
        log_level="WARNING",
        log_json=True,
    )


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """One sandbox for the session (`…/v1`), fast; its state outlives each test's Redis flush.

    Suites that need a sandbox of their own per test (faults, stats) override this fixture."""
    with running_sandbox(SandboxConfig(step_seconds=0.1)) as url:
        yield url


@pytest.fixture
def sandbox_settings(settings: Settings, sandbox_url: str) -> Settings:
    """The test's settings with the sandbox as the one, default provider."""
    return msgspec.structs.replace(
        settings,
        providers=(ProviderSettings(name="sandbox", base_url=sandbox_url, api_key="sk-sandbox"),),
        default_provider="sandbox",
    )


@pytest.fixture
def burro_url(settings: Settings) -> Iterator[str]:
    """Burro's API on a loopback port."""
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture
def client(burro_url: str) -> Iterator[httpx.Client]:
    """An HTTP client authenticated as tenant 'acme'."""
    with httpx.Client(
        base_url=burro_url, headers={"Authorization": "Bearer key-acme"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def other_client(burro_url: str) -> Iterator[httpx.Client]:
    """An HTTP client authenticated as tenant 'globex'."""
    with httpx.Client(
        base_url=burro_url, headers={"Authorization": "Bearer key-globex"}, timeout=30
    ) as http:
        yield http
