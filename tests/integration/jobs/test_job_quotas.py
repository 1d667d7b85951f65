"""`POST /v1/jobs` within the tenant's limits: unfinished jobs (BURRO_MAX_ACTIVE_JOBS) and the
month's estimated training spend (BURRO_MONTHLY_BUDGET_USD), both 422 when over, race-safe."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.api import upload_dataset
from tests.support.data import BASE_MODEL

TWO_EPOCHS = {"hyperparameters": {"n_epochs": 2}}


def new_job(client: httpx.Client, dataset: str, **extra: Any) -> httpx.Response:
    body = {"training_dataset": dataset, "model": BASE_MODEL, **extra}
    return client.post("/v1/jobs", json=body)


def problem(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:burro:problem:{code}", body
    return body


def test_a_tenant_at_its_active_job_limit_is_refused_until_a_job_ends(
    pricey_burro: Callable[..., httpx.Client], other_client: httpx.Client
) -> None:
    client = pricey_burro(max_active_jobs=2)
    dataset = upload_dataset(client)
    first, second = (new_job(client, dataset).json() for _ in range(2))
    refused = problem(new_job(client, dataset), "too_many_active_jobs")
    assert refused["limit"] == 2 and refused["active"] == 2
    assert "2 unfinished jobs" in refused["detail"] and "at most 2" in refused["detail"]

    # The limit is per tenant: another tenant is not held back by acme's jobs.
    assert new_job(other_client, upload_dataset(other_client)).status_code == 202

    assert client.post(f"/v1/jobs/{first['id']}/cancel").json()["status"] == "cancelled"
    assert new_job(client, dataset).status_code == 202
    problem(new_job(client, dataset), "too_many_active_jobs")
    assert client.get(f"/v1/jobs/{second['id']}").json()["status"] == "pending"


def test_a_job_over_the_monthly_budget_is_refused_with_what_is_left(
    pricey_burro: Callable[..., httpx.Client],
) -> None:
    client = pricey_burro(monthly_budget_usd=10.0)
    dataset = upload_dataset(client)
    estimate = new_job(client, dataset, method=TWO_EPOCHS).json()["estimated_cost_usd"]
    assert 0.5 < estimate < 2.5, estimate  # the table makes this dataset cost dollars
    # Jobs until the next one would not fit; each fits on its own.
    spent = estimate
    while spent + estimate <= 10.0:
        assert new_job(client, dataset, method=TWO_EPOCHS).is_success
        spent += estimate
    refused = problem(new_job(client, dataset, method=TWO_EPOCHS), "budget_exceeded")
    assert refused["remaining_usd"] == pytest.approx(10.0 - spent, abs=0.011)
    assert f"${refused['remaining_usd']:.2f}" in refused["detail"]
    assert "$10.00" in refused["detail"]

    # A job cancelled before it reached the upstream gives its estimate back.
    last = client.get("/v1/jobs", params={"limit": 1}).json()["data"][0]
    assert client.post(f"/v1/jobs/{last['id']}/cancel").json()["status"] == "cancelled"
    assert new_job(client, dataset, method=TWO_EPOCHS).is_success

    # A bigger job than what is left is refused even though the tenant has spent less.
    bigger = new_job(client, dataset, method={"hyperparameters": {"n_epochs": 50}})
    assert problem(bigger, "budget_exceeded")["estimated_cost_usd"] > estimate


def test_an_idempotent_replay_is_not_counted_again(
    pricey_burro: Callable[..., httpx.Client],
) -> None:
    client = pricey_burro(max_active_jobs=1)
    dataset = upload_dataset(client)
    headers = {"Idempotency-Key": "quota-replay"}
    body = {"training_dataset": dataset, "model": BASE_MODEL}
    first = client.post("/v1/jobs", json=body, headers=headers)
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    # A refused request frees its key: after the job ends, the same key creates the job.
    refused = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "second"})
    problem(refused, "too_many_active_jobs")
    client.post(f"/v1/jobs/{first.json()['id']}/cancel")
    retried = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "second"})
    assert retried.status_code == 202, retried.text


def test_concurrent_creates_never_pass_the_limits(
    pricey_burro: Callable[..., httpx.Client],
) -> None:
    client = pricey_burro(max_active_jobs=3)
    dataset = upload_dataset(client)
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = sorted(pool.map(lambda _: new_job(client, dataset).status_code, range(12)))
    assert statuses == [202] * 3 + [422] * 9
    listed = client.get("/v1/jobs").json()["data"]
    assert len(listed) == 3
