"""The chat path under a rate limit: the request is booked and its model looked up in one Redis
round trip (wrong keys, limited per address, are counted only when one comes), and a tenant over
its limit gets OpenAI's 429."""

from __future__ import annotations

import httpx
import msgspec
import pytest
import redis

from service.settings import Settings
from tests.support.fixtures import MakeClient, ServeBurro
from tests.support.store import commands_during

QUESTION = {"messages": [{"role": "user", "content": "Question number 7: what colour?"}]}


@pytest.fixture
def limited(settings: Settings, serve_burro: ServeBurro, make_client: MakeClient) -> httpx.Client:
    """Burro allowing each tenant a burst of 3, then one request every 10 s, as acme; wrong keys
    are limited too (as in production), which costs a right key nothing."""
    limits = {"rate_limit": 0.1, "rate_limit_burst": 3, "auth_failures_per_minute": 10.0}
    return make_client("acme", base_url=serve_burro(msgspec.structs.replace(settings, **limits)))


def test_a_chat_request_costs_one_round_trip_for_its_limit_and_its_model(
    limited: httpx.Client, acme_job: str, redis_url: str
) -> None:
    body = {"model": acme_job, **QUESTION}
    assert limited.post("/v1/chat/completions", json=body).status_code == 200  # scripts loaded

    sent = commands_during(
        redis_url,
        lambda: limited.post("/v1/chat/completions", json=body).raise_for_status(),
    )

    # The usage counters are flushed in the background, off the request's path.
    on_the_path = [c for c in sent if c not in ("HINCRBY", "HSETNX", "MULTI", "EXEC", "ECHO")]
    assert on_the_path == ["EVALSHA"], sent


def test_a_tenant_over_its_limit_gets_openais_429_on_the_chat_path(
    limited: httpx.Client, acme_job: str
) -> None:
    body = {"model": acme_job, **QUESTION}
    answers = [limited.post("/v1/chat/completions", json=body) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    # Over its limit, a tenant is refused before any model is looked up, even an unknown one.
    assert (
        limited.post("/v1/chat/completions", json={"model": "nope", **QUESTION}).status_code == 429
    )


def test_only_a_wrong_key_on_the_chat_path_is_counted_against_the_address(
    limited: httpx.Client, acme_job: str, redis_url: str
) -> None:
    body = {"model": acme_job, **QUESTION}
    limited.post("/v1/chat/completions", json=body).raise_for_status()
    failures = redis.Redis.from_url(redis_url)
    try:
        assert failures.keys("burro:auth-failures:*") == []

        wrong = limited.post(
            "/v1/chat/completions", json=body, headers={"Authorization": "Bearer guess"}
        )

        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_api_key"
        assert failures.keys("burro:auth-failures:*") == [b"burro:auth-failures:127.0.0.1"]
    finally:
        failures.close()
