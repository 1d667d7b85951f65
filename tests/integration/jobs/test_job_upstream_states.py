"""Upstream states Burro has no status for (`paused`), and jobs that wait too long."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from sandbox.config import SandboxConfig
from service.settings import Settings
from tests.jobs.conftest import MODEL, WorkerThread, wait_for, wait_status


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(step_seconds=1.5)


@pytest.fixture
def job_settings(job_settings: Settings) -> Settings:
    return msgspec.structs.replace(job_settings, stuck_after=0.5)


def test_a_paused_upstream_job_keeps_its_status_and_finishes_after_resume(
    api: httpx.Client, dataset: str, worker: WorkerThread, sandbox: httpx.Client
) -> None:
    job_id = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]
    job = wait_status(api, job_id, "running", "succeeded")
    assert job["status"] == "running"
    upstream_id = job["upstream"]["job_id"]
    assert sandbox.post(f"/v1/fine_tuning/jobs/{upstream_id}/pause").status_code == 200

    def paused() -> dict[str, object] | None:
        current: dict[str, object] = api.get(f"/v1/jobs/{job_id}").json()
        upstream = current["upstream"]
        assert isinstance(upstream, dict)
        return current if upstream["status"] == "paused" else None

    assert wait_for(paused, what="the pause to be mirrored")["status"] == "running"
    assert sandbox.post(f"/v1/fine_tuning/jobs/{upstream_id}/resume").status_code == 200
    assert wait_status(api, job_id, "succeeded", "failed")["status"] == "succeeded"
    events = api.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    assert any("paused" in e["message"] and e["source"] == "burro" for e in events)


def test_a_job_waiting_longer_than_stuck_after_gets_one_notice_per_status(
    api: httpx.Client, dataset: str, worker: WorkerThread
) -> None:
    job_id = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]
    assert wait_status(api, job_id, "succeeded", "failed")["status"] == "succeeded"
    events = api.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    stuck = [e for e in events if e["type"] == "stuck"]
    assert stuck, [e["message"] for e in events]
    assert all(e["level"] == "warn" for e in stuck)
    statuses = [e["data"]["status"] for e in stuck]
    assert len(statuses) == len(set(statuses))
