"""`POST /v1/jobs` within the tenant's limits: unfinished jobs (BURRO_MAX_ACTIVE_JOBS) and the
month's estimated training spend (BURRO_MONTHLY_BUDGET_USD), both 422 when over, race-safe."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from burro.testing import serve_in_thread
from service.app import create_app
from service.settings import Settings
from tests.jobs.conftest import MODEL, upload_dataset

# One model at a price that makes the small test dataset cost dollars, not fractions of a cent.
PRICEY_TABLE = """
[[models]]
name = "gpt-4.1-mini-2025-04-14"
encoding = "o200k_base"
max_tokens_per_example = 65536
training_usd_per_1m_tokens = 1000.0
input_usd_per_1m_tokens = 0.80
output_usd_per_1m_tokens = 3.20
methods = ["supervised", "dpo"]
"""


TWO_EPOCHS = {"hyperparameters": {"n_epochs": 2}}


@contextmanager
def burro(job_settings: Settings, tmp_path: Path, **changes: Any) -> Iterator[httpx.Client]:
    """Burro's API with `changes` to the settings, as tenant 'acme'."""
    table = tmp_path / "models.toml"
    table.write_text(PRICEY_TABLE)
    custom = msgspec.structs.replace(job_settings, models_file=table, **changes)
    with (
        serve_in_thread(create_app(custom, configure_logs=False)) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": "Bearer key-acme"}, timeout=30
        ) as http,
    ):
        yield http


def new_job(api: httpx.Client, dataset: str, **extra: Any) -> httpx.Response:
    body = {"training_dataset": dataset, "model": MODEL, **extra}
    return api.post("/v1/jobs", json=body)


def problem(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:burro:problem:{code}", body
    return body


def test_a_tenant_at_its_active_job_limit_is_refused_until_a_job_ends(
    job_settings: Settings, tmp_path: Path, other_api: httpx.Client
) -> None:
    with burro(job_settings, tmp_path, max_active_jobs=2) as api:
        dataset = upload_dataset(api)
        first, second = (new_job(api, dataset).json() for _ in range(2))
        refused = problem(new_job(api, dataset), "too_many_active_jobs")
        assert refused["limit"] == 2 and refused["active"] == 2
        assert "2 unfinished jobs" in refused["detail"] and "at most 2" in refused["detail"]

        # The limit is per tenant: another tenant is not held back by acme's jobs.
        assert new_job(other_api, upload_dataset(other_api)).status_code == 202

        assert api.post(f"/v1/jobs/{first['id']}/cancel").json()["status"] == "cancelled"
        assert new_job(api, dataset).status_code == 202
        problem(new_job(api, dataset), "too_many_active_jobs")
        assert api.get(f"/v1/jobs/{second['id']}").json()["status"] == "pending"


def test_a_job_over_the_monthly_budget_is_refused_with_what_is_left(
    job_settings: Settings, tmp_path: Path
) -> None:
    with burro(job_settings, tmp_path, monthly_budget_usd=10.0) as api:
        dataset = upload_dataset(api)
        estimate = new_job(api, dataset, method=TWO_EPOCHS).json()["estimated_cost_usd"]
        assert 0.5 < estimate < 2.5, estimate  # the table makes this dataset cost dollars
        # Jobs until the next one would not fit; each fits on its own.
        spent = estimate
        while spent + estimate <= 10.0:
            assert new_job(api, dataset, method=TWO_EPOCHS).is_success
            spent += estimate
        refused = problem(new_job(api, dataset, method=TWO_EPOCHS), "budget_exceeded")
        assert refused["remaining_usd"] == pytest.approx(10.0 - spent, abs=0.011)
        assert f"${refused['remaining_usd']:.2f}" in refused["detail"]
        assert "$10.00" in refused["detail"]

        # A job cancelled before it reached the upstream gives its estimate back.
        last = api.get("/v1/jobs", params={"limit": 1}).json()["data"][0]
        assert api.post(f"/v1/jobs/{last['id']}/cancel").json()["status"] == "cancelled"
        assert new_job(api, dataset, method=TWO_EPOCHS).is_success

        # A bigger job than what is left is refused even though the tenant has spent less.
        bigger = new_job(api, dataset, method={"hyperparameters": {"n_epochs": 50}})
        assert problem(bigger, "budget_exceeded")["estimated_cost_usd"] > estimate


def test_an_idempotent_replay_is_not_counted_again(job_settings: Settings, tmp_path: Path) -> None:
    with burro(job_settings, tmp_path, max_active_jobs=1) as api:
        dataset = upload_dataset(api)
        headers = {"Idempotency-Key": "quota-replay"}
        body = {"training_dataset": dataset, "model": MODEL}
        first = api.post("/v1/jobs", json=body, headers=headers)
        again = api.post("/v1/jobs", json=body, headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.json()["id"] == first.json()["id"]
        # A refused request frees its key: after the job ends, the same key creates the job.
        refused = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "second"})
        problem(refused, "too_many_active_jobs")
        api.post(f"/v1/jobs/{first.json()['id']}/cancel")
        retried = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "second"})
        assert retried.status_code == 202, retried.text


def test_concurrent_creates_never_pass_the_limits(job_settings: Settings, tmp_path: Path) -> None:
    with burro(job_settings, tmp_path, max_active_jobs=3) as api:
        dataset = upload_dataset(api)
        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = sorted(pool.map(lambda _: new_job(api, dataset).status_code, range(12)))
        assert statuses == [202] * 3 + [422] * 9
        listed = api.get("/v1/jobs").json()["data"]
        assert len(listed) == 3
