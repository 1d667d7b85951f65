"""An upstream that refuses to train (403 training_not_available) fails the job at once."""

from __future__ import annotations

import httpx
import pytest

from sandbox.config import SandboxConfig
from tests.jobs.conftest import MODEL, WorkerThread, stats, wait_status


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(step_seconds=0.4, training_available=False)


def test_training_not_available_fails_the_job_with_the_upstream_words_and_no_retry(
    api: httpx.Client, dataset: str, worker: WorkerThread, sandbox: httpx.Client
) -> None:
    job_id = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]
    job = wait_status(api, job_id, "failed", "succeeded", "cancelled")
    assert job["status"] == "failed"
    assert job["error"]["code"] == "training_not_available"
    assert "no longer able to create new fine-tuning" in job["error"]["message"]
    assert job["upstream"]["job_id"] is None
    assert stats(sandbox)["POST /v1/fine_tuning/jobs"] == 1
    events = api.get(f"/v1/jobs/{job_id}/events").json()["data"]
    assert not [e for e in events if e["type"] == "retry"]
    assert events[-1]["data"]["status"] == "failed"
