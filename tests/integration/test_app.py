"""The service's bones: health, keys and tenants, problem details, request ids, OpenAPI."""

from __future__ import annotations

import subprocess
import sys

import httpx
import redis

from service.settings import Settings
from tests.support.fixtures import MakeClient


def test_liveness_needs_no_key(anonymous: httpx.Client) -> None:
    response = anonymous.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_fails_without_a_live_worker(anonymous: httpx.Client) -> None:
    response = anonymous.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["redis"] is True
    assert response.json()["worker"] is False


def test_a_request_without_a_key_gets_a_401_problem(anonymous: httpx.Client) -> None:
    response = anonymous.get("/v1/datasets")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 401
    assert {"type", "title", "detail"} <= problem.keys()


def test_an_unknown_key_gets_a_401(make_client: MakeClient) -> None:
    response = make_client(key="nope").get("/v1/datasets")
    assert response.status_code == 401


def test_the_request_id_is_echoed_or_made(client: httpx.Client) -> None:
    given = client.get("/health/live", headers={"X-Request-ID": "req-from-caller"})
    assert given.headers["x-request-id"] == "req-from-caller"
    made = client.get("/health/live")
    assert made.headers["x-request-id"].startswith("req_")


def test_an_unknown_route_is_a_404_problem(client: httpx.Client) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_bad_query_parameter_is_a_400_problem(client: httpx.Client) -> None:
    response = client.get("/v1/datasets", params={"limit": "0"})
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_keys_create_prints_a_key_once_and_stores_only_its_hash(
    settings: Settings, make_client: MakeClient
) -> None:
    assert settings.redis_url is not None
    result = subprocess.run(
        [sys.executable, "-m", "burro", "keys", "create", "--tenant", "initech"],
        env={"REDIS_URL": settings.redis_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = result.stdout.strip()
    assert key.startswith("bk_")
    stored = redis.Redis.from_url(settings.redis_url)
    try:
        everything = b"".join(
            k + (stored.get(k) or b"") for k in stored.scan_iter("burro:api-keys:*")
        )
    finally:
        stored.close()
    assert key.encode() not in everything
    response = make_client(key=key).get("/v1/datasets")
    assert response.status_code == 200
    assert response.json() == {"object": "list", "data": [], "has_more": False}
