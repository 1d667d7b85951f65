"""Cancelling a job whose upstream job is under way cancels it upstream too."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import create_job, job_status
from tests.support.sandboxes import ClockedSandbox
from tests.support.workers import BurroWorker


@pytest.fixture
def sandbox_url(clocked_sandbox: ClockedSandbox) -> str:
    return clocked_sandbox.url


def test_cancel_while_running_cancels_the_upstream_job(
    client: httpx.Client,
    dataset: str,
    running_worker: BurroWorker,
    sandbox: httpx.Client,
    clocked_sandbox: ClockedSandbox,
) -> None:
    job_id = create_job(client, dataset)["id"]
    upstream_id = job_status(client, job_id, "validating_files")["upstream"]["job_id"]
    assert upstream_id
    clocked_sandbox.advance(2.5)  # half way through training, and the clock stops again
    assert job_status(client, job_id, "running", "succeeded")["status"] == "running"

    answer = client.post(f"/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 200, answer.text

    job = job_status(client, job_id)
    assert job["status"] == "cancelled"
    assert job["upstream"]["status"] == "cancelled"
    upstream = sandbox.get(f"/v1/fine_tuning/jobs/{upstream_id}").json()
    assert upstream["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
