"""Cancelling a job whose upstream job is under way cancels it upstream too."""

from __future__ import annotations

import httpx
import pytest

from sandbox.config import SandboxConfig
from tests.jobs.conftest import MODEL, WorkerThread, wait_status


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(step_seconds=5.0)  # long enough to cancel in the middle


def test_cancel_while_running_cancels_the_upstream_job(
    api: httpx.Client, dataset: str, worker: WorkerThread, sandbox: httpx.Client
) -> None:
    job_id = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]
    job = wait_status(api, job_id, "validating_files", "queued", "running")
    upstream_id = job["upstream"]["job_id"]
    assert upstream_id
    answer = api.post(f"/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 200, answer.text
    job = wait_status(api, job_id, "cancelled", "succeeded", "failed")
    assert job["status"] == "cancelled"
    assert job["upstream"]["status"] == "cancelled"
    upstream = sandbox.get(f"/v1/fine_tuning/jobs/{upstream_id}").json()
    assert upstream["status"] == "cancelled"
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
