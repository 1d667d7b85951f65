"""An upstream that refuses to train (403 training_not_available) fails the job at once."""

from __future__ import annotations

import httpx
import pytest

from sandbox.config import SandboxConfig
from tests.support.api import create_job, job_status
from tests.support.fixtures import StartSandbox
from tests.support.sandboxes import stats
from tests.support.workers import BurroWorker


@pytest.fixture
def sandbox_url(start_sandbox: StartSandbox) -> str:
    return start_sandbox(SandboxConfig(training_available=False))


def test_training_not_available_fails_the_job_with_the_upstream_words_and_no_retry(
    client: httpx.Client, dataset: str, running_worker: BurroWorker, sandbox: httpx.Client
) -> None:
    job_id = create_job(client, dataset)["id"]
    job = job_status(client, job_id)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "training_not_available"
    assert "no longer able to create new fine-tuning" in job["error"]["message"]
    assert job["upstream"]["job_id"] is None
    assert stats(sandbox)["POST /v1/fine_tuning/jobs"] == 1
    events = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
    assert not [e for e in events if e["type"] == "retry"]
    assert events[-1]["data"]["status"] == "failed"
