"""A job's training spend: its estimate while it runs, its real cost once it succeeded, nothing
when it ended before reaching the upstream; `GET /v1/usage` shows it per month."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.jobs.transitions import transition
from service.queue import Queue
from tests.support.api import create_job, upload_dataset
from tests.support.data import BASE_MODEL
from tests.support.store import on_queue


@pytest.fixture
def api(pricey_burro: Callable[..., httpx.Client]) -> httpx.Client:
    """Burro with the pricey model table, as acme (no worker runs: `drive` moves the jobs)."""
    return pricey_burro()


def drive(redis_url: str, job_id: str, *moves: tuple[str, dict[str, Any]]) -> None:
    """Move the job through `moves` as the workers would (no worker runs in these tests)."""

    async def run(queue: Queue) -> None:
        for status, changes in moves:
            await transition(queue, job_id, status, **changes)  # type: ignore[arg-type]

    on_queue(redis_url, run)


def this_month(api: httpx.Client) -> dict[str, Any]:
    report = api.get("/v1/usage").json()
    month = datetime.datetime.now(datetime.UTC).strftime("%Y-%m")
    assert report["training"][0]["month"] == month, report["training"]
    found: dict[str, Any] = report["training"][0]
    return found


def test_a_succeeded_jobs_real_cost_replaces_its_estimate_in_the_months_spend(
    api: httpx.Client, redis_url: str
) -> None:
    dataset = upload_dataset(api)
    job = create_job(api, dataset)
    estimate = job["estimated_cost_usd"]
    assert estimate >= 1.0
    running = this_month(api)
    assert running == {
        "month": running["month"],
        "spend_usd": estimate,
        "cost_usd": 0.0,
        "estimated_usd": estimate,
    }

    real = round(estimate / 4, 2)
    drive(
        redis_url,
        job["id"],
        ("uploading", {}),
        ("running", {"upstream_job_id": "ftjob-spend"}),
        ("succeeded", {"cost_usd": real, "fine_tuned_model": f"ft:{BASE_MODEL}:acme::spend"}),
    )

    assert this_month(api) == {
        "month": running["month"],
        "spend_usd": real,
        "cost_usd": real,
        "estimated_usd": 0.0,
    }
    assert api.get(f"/v1/jobs/{job['id']}").json()["cost_usd"] == real


def test_a_job_that_failed_upstream_keeps_its_estimate_and_one_cancelled_before_gives_it_back(
    api: httpx.Client, redis_url: str
) -> None:
    dataset = upload_dataset(api)
    failed, cancelled = (create_job(api, dataset) for _ in range(2))
    drive(
        redis_url,
        failed["id"],
        ("uploading", {}),
        ("running", {"upstream_job_id": "ftjob-failed"}),
        ("failed", {}),
    )
    assert api.post(f"/v1/jobs/{cancelled['id']}/cancel").json()["status"] == "cancelled"

    month = this_month(api)
    assert month["spend_usd"] == failed["estimated_cost_usd"]
    assert month["cost_usd"] == 0.0
    assert month["estimated_usd"] == failed["estimated_cost_usd"]


def test_usage_lists_every_month_of_its_range_newest_first(api: httpx.Client) -> None:
    report = api.get("/v1/usage", params={"start": "2026-10-30", "end": "2026-12-01"}).json()
    assert [m["month"] for m in report["training"]] == ["2026-12", "2026-11", "2026-10"]
    assert all(m["spend_usd"] == 0.0 for m in report["training"])
