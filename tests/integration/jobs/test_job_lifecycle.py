"""A job from POST to a trained model, on the sandbox, with a real worker."""

from __future__ import annotations

import json

import httpx
import pytest
import redis

from tests.support.api import create_job, job_status
from tests.support.data import BASE_MODEL
from tests.support.waiting import wait_for
from tests.support.workers import BurroWorker


def test_a_job_trains_to_success_with_events_metrics_and_checkpoints(
    client: httpx.Client, dataset: str, running_worker: BurroWorker, redis_url: str
) -> None:
    response = client.post(
        "/v1/jobs",
        json={
            "training_dataset": dataset,
            "model": BASE_MODEL,
            "suffix": "donkey",
            "seed": 7,
            "method": {"type": "supervised", "hyperparameters": {"n_epochs": 2}},
            "metadata": {"commit": "3f2a9c1"},
            "promote_to": "donkey",
            "webhook": {"url": "http://127.0.0.1:9/hook"},
        },
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["id"].startswith("job_")
    assert created["object"] == "job"
    assert created["status"] == "pending"
    assert created["provider"] == "sandbox"
    assert created["webhook"]["secret"].startswith("whsec_")
    assert created["estimated_cost_usd"] is not None
    job_id = created["id"]

    job = job_status(client, job_id, "succeeded", "failed", "cancelled")
    assert job["status"] == "succeeded", job
    assert job["fine_tuned_model"].startswith("ft:")
    assert job["upstream"]["job_id"].startswith("ftjob-")
    assert job["upstream"]["status"] == "succeeded"
    assert job["upstream"]["training_file"].startswith("file-")
    assert job["trained_tokens"] > 0
    assert job["finished_at"] is not None
    assert job["cost_usd"] is not None
    assert "secret" not in job["webhook"]
    assert job["metadata"] == {"commit": "3f2a9c1"}

    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    times = [e["created_at"] for e in events]
    assert times == sorted(times)
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert statuses[0] == "pending"
    assert statuses[-1] == "succeeded"
    assert statuses.index("uploading") < statuses.index("succeeded")
    assert {e["source"] for e in events} == {"burro", "upstream"}

    metrics = client.get(f"/v1/jobs/{job_id}/metrics").json()
    assert metrics["source"] == "result_file"
    rows = metrics["data"]
    assert rows and rows[0]["step"] == 1
    assert all(r["train_loss"] is not None for r in rows)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]

    checkpoints = client.get(f"/v1/jobs/{job_id}/checkpoints").json()["data"]
    assert checkpoints
    assert all(c["fine_tuned_model_checkpoint"].startswith("ft:") for c in checkpoints)

    store = redis.Redis.from_url(redis_url)
    try:
        # The dataset is free again, and the alias points at the new model (it moves right
        # after the status is saved, before the job.succeeded webhook).
        assert store.scard(f"burro:datasets:users:{dataset}") == 0
        wait_for(lambda: store.exists("burro:aliases:acme:donkey"), what="the alias to move")
    finally:
        store.close()


def test_another_tenants_job_is_404(
    client: httpx.Client, other_client: httpx.Client, dataset: str
) -> None:
    job_id = create_job(client, dataset)["id"]
    assert other_client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert other_client.post(f"/v1/jobs/{job_id}/cancel").status_code == 404
    assert other_client.get(f"/v1/jobs/{job_id}/events").status_code == 404
    assert other_client.get("/v1/jobs").json()["data"] == []


def test_jobs_are_listed_newest_first_and_filtered_by_status(
    client: httpx.Client, dataset: str
) -> None:
    first = create_job(client, dataset)
    second = create_job(client, dataset)
    client.post(f"/v1/jobs/{first['id']}/cancel")
    listed = client.get("/v1/jobs").json()
    assert [j["id"] for j in listed["data"]] == [second["id"], first["id"]]
    assert all("secret" not in (j["webhook"] or {}) for j in listed["data"])
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["data"]
    assert [j["id"] for j in cancelled] == [first["id"]]


@pytest.mark.timeout(60)
def test_the_event_stream_ends_when_the_job_ends(
    client: httpx.Client, dataset: str, running_worker: BurroWorker
) -> None:
    job_id = create_job(client, dataset)["id"]
    received = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", params={"stream": "true"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream"), (
            response.headers,
            response.read()[:300],
        )
        for line in response.iter_lines():
            if line.startswith("data:"):
                received.append(json.loads(line[5:]))
    assert received[-1]["status"] == "succeeded"  # the closing `end` event
    statuses = [e["data"]["status"] for e in received[:-1] if e.get("type") == "status"]
    assert statuses[0] == "pending" and statuses[-1] == "succeeded"
