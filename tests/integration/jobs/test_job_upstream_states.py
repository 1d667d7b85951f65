"""Upstream states Burro has no status for (`paused`), and jobs that wait too long. The sandbox's
clock moves only when the test says so: each status lasts exactly as long as the test needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest

from service.settings import Settings
from tests.support.api import create_job, job_status
from tests.support.sandboxes import ClockedSandbox, stats
from tests.support.waiting import wait_for
from tests.support.workers import BurroWorker

POLLS = "GET /v1/fine_tuning/jobs"


@pytest.fixture
def sandbox_url(clocked_sandbox: ClockedSandbox) -> str:
    return clocked_sandbox.url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, stuck_after=0.3)


def events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        f"/v1/jobs/{job_id}/events", params={"limit": 1000}
    ).json()["data"]
    return found


def polled_twice_more(sandbox: httpx.Client) -> Callable[[], bool]:
    """A condition that holds once the upstream's job list was asked for twice more."""
    target = stats(sandbox).get(POLLS, 0) + 2
    return lambda: stats(sandbox).get(POLLS, 0) >= target


def test_a_paused_upstream_job_keeps_its_status_and_finishes_after_resume(
    client: httpx.Client,
    dataset: str,
    running_worker: BurroWorker,
    sandbox: httpx.Client,
    clocked_sandbox: ClockedSandbox,
) -> None:
    job_id = create_job(client, dataset)["id"]
    upstream_id = job_status(client, job_id, "validating_files")["upstream"]["job_id"]
    clocked_sandbox.advance(2.5)
    assert job_status(client, job_id, "running", "succeeded")["status"] == "running"
    assert sandbox.post(f"/v1/fine_tuning/jobs/{upstream_id}/pause").status_code == 200
    clocked_sandbox.advance(10)  # a paused job's clock stands still: it does not finish

    def paused() -> dict[str, Any] | None:
        current: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return current if current["upstream"]["status"] == "paused" else None

    assert wait_for(paused, what="the pause to be mirrored")["status"] == "running"
    assert sandbox.post(f"/v1/fine_tuning/jobs/{upstream_id}/resume").status_code == 200
    clocked_sandbox.advance(1)
    assert job_status(client, job_id)["status"] == "succeeded"
    assert any("paused" in e["message"] and e["source"] == "burro" for e in events(client, job_id))


def test_a_job_waiting_longer_than_stuck_after_gets_one_notice_per_status(
    client: httpx.Client,
    dataset: str,
    running_worker: BurroWorker,
    sandbox: httpx.Client,
    clocked_sandbox: ClockedSandbox,
) -> None:
    job_id = create_job(client, dataset)["id"]
    for status in ("validating_files", "queued"):
        job_status(client, job_id, status)

        def noticed(status: str = status) -> bool:
            return any(
                e["type"] == "stuck" and e["data"]["status"] == status
                for e in events(client, job_id)
            )

        wait_for(noticed, what=f"a stuck notice in {status}")
        # Two more poll passes over the still-waiting job: still one notice.
        wait_for(polled_twice_more(sandbox), what="two more polls")
        clocked_sandbox.advance(1)
    clocked_sandbox.advance(2)
    assert job_status(client, job_id)["status"] == "succeeded"

    stuck = [e for e in events(client, job_id) if e["type"] == "stuck"]
    assert [e["data"]["status"] for e in stuck] == ["validating_files", "queued"]
    assert all(e["level"] == "warn" for e in stuck)
