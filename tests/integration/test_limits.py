"""Per-tenant rate limits: a burst passes, then 429 with Retry-After, each tenant on its own."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec
import pytest
import redis
from redis.asyncio import Redis

from service.limits import RateLimiter
from service.settings import Settings
from tests.support.fixtures import ServeBurro


@pytest.fixture
def limited_url(settings: Settings, serve_burro: ServeBurro) -> str:
    """Burro allowing each tenant a burst of 3, then one request every 10 s."""
    return serve_burro(msgspec.structs.replace(settings, rate_limit=0.1, rate_limit_burst=3))


def get(base_url: str, path: str, key: str) -> httpx.Response:
    return httpx.get(f"{base_url}{path}", headers={"Authorization": f"Bearer {key}"})


def test_a_tenant_over_its_limit_gets_a_429_problem_with_retry_after(limited_url: str) -> None:
    for _ in range(3):
        assert get(limited_url, "/v1/datasets", "key-acme").status_code == 200
    refused = get(limited_url, "/v1/datasets", "key-acme")
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    problem = refused.json()
    assert problem["status"] == 429
    assert problem["type"] == "urn:burro:problem:rate_limited"
    assert problem["retry_after"] == int(refused.headers["retry-after"])


def test_one_tenant_over_its_limit_does_not_slow_another(limited_url: str) -> None:
    for _ in range(4):
        get(limited_url, "/v1/datasets", "key-acme")
    assert get(limited_url, "/v1/datasets", "key-acme").status_code == 429
    assert get(limited_url, "/v1/datasets", "key-globex").status_code == 200


def test_the_openai_compatible_paths_answer_429_in_openai_shape(limited_url: str) -> None:
    for _ in range(3):
        get(limited_url, "/v1/datasets", "key-acme")
    refused = get(limited_url, "/v1/models", "key-acme")
    assert refused.status_code == 429
    assert "retry-after" in refused.headers  # the openai SDK waits this long before retrying
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


def test_health_metrics_and_bad_keys_are_never_limited(limited_url: str) -> None:
    for _ in range(4):
        get(limited_url, "/v1/datasets", "key-acme")
    assert httpx.get(f"{limited_url}/health/live").status_code == 200
    assert httpx.get(f"{limited_url}/metrics").status_code == 200
    assert get(limited_url, "/v1/datasets", "not-a-key").status_code == 401


def test_a_limit_of_zero_is_off_and_touches_no_redis(
    settings: Settings, client: httpx.Client, redis_url: str
) -> None:
    assert settings.rate_limit == 0  # the test's own settings: no limit
    assert all(client.get("/v1/datasets").status_code == 200 for _ in range(20))
    store = redis.Redis.from_url(redis_url)
    try:
        assert store.keys("burro:rate:*") == []
    finally:
        store.close()


def test_the_bucket_refills_at_the_rate(redis_url: str) -> None:
    """4 requests/s, burst 2: the third at once waits up to a quarter second, then passes."""

    async def main() -> None:
        client = Redis.from_url(redis_url)
        try:
            # Slow enough that no token comes back between two calls, however loaded the machine.
            limiter = RateLimiter(client, rate=4, burst=2)
            assert await limiter.wait_for("acme") == 0
            assert await limiter.wait_for("acme") == 0
            wait = await limiter.wait_for("acme")
            assert 0 < wait <= 0.25
            deadline = time.monotonic() + 5
            while await limiter.wait_for("acme") > 0:  # polls Redis' clock, no fixed sleep
                assert time.monotonic() < deadline
            # the key expires once the bucket is full again (two tokens at 250 ms each, and the
            # millisecond rounded up): idle tenants cost no memory
            ttl = await client.pttl("burro:rate:acme")
            assert 0 < ttl <= 2 * 250 + 1
        finally:
            await client.aclose()

    asyncio.run(main())


def test_the_limit_fails_open_when_redis_is_down() -> None:
    """A limiter is no reason to turn a Redis outage into an outage of the chat path."""

    async def main() -> None:
        client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        try:
            await RateLimiter(client, rate=1, burst=1).check("acme")
            await RateLimiter(client, rate=1, burst=1).check("acme")
        finally:
            await client.aclose()

    asyncio.run(main())
