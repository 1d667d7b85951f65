"""kill -9 Redis under an accepted job: restarted on the same port and data directory, Redis
reads its append-only file back and the job ends `succeeded`, with exactly one upstream job.

The guarantee tested is the documented one. With `appendfsync everysec` (production's setting,
and this Redis') a crash may lose the last second of writes, so what Burro promises is: a job
accepted more than a second before Redis died is never lost. The test therefore kills Redis
only once the job's record is on disk: a second after the 202, when Redis has no AOF write or
fsync outstanding (`INFO persistence`). What workers wrote after that may be lost; they must
recover from whatever state the file holds.
"""

from __future__ import annotations

import time
from typing import Any, cast

import httpx
import pytest
import redis

from burro.redis_server import RedisServer
from tests.support.api import create_job
from tests.support.fixtures import SpawnWorker
from tests.support.sandboxes import add_fault, stats
from tests.support.waiting import wait_for

pytestmark = pytest.mark.crash

# Short function timeouts: arq runs a dead worker's job again after its timeout + 10 s.
FUNCTION_TIMEOUT = 3.0
# How much of the latest writes `appendfsync everysec` may lose in a crash.
FSYNC_WINDOW = 1.0
# Longer than the test: a request the fault holds goes on only when the faults are cleared.
HELD = 300.0


@pytest.fixture
def redis_url(private_redis: RedisServer) -> str:
    """Every part of the test (API, workers, settings) talks to a Redis it may kill."""
    return private_redis.url


def wait_until_durable(server: RedisServer, accepted_at: float) -> None:
    """Wait until everything Redis acknowledged before `accepted_at` is fsynced: the fsync
    window has passed since then and no AOF write or background fsync is outstanding."""
    client = redis.Redis.from_url(server.url)

    def durable() -> bool:
        info = cast("dict[str, Any]", client.info("persistence"))
        assert info["aof_enabled"] == 1 and info["aof_last_write_status"] == "ok", info
        return (
            time.monotonic() > accepted_at + FSYNC_WINDOW
            and info["aof_buffer_length"] == 0
            and info["aof_pending_bio_fsync"] == 0
        )

    try:
        wait_for(durable, timeout=10, what="the AOF to be fsynced")
    finally:
        client.close()


def final_status(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """Poll until the job ends; answers that fail while connections to Redis are re-made are
    just polled again."""

    def ended() -> dict[str, Any] | None:
        response = client.get(f"/v1/jobs/{job_id}")
        if response.status_code != 200:
            return None
        job: dict[str, Any] = response.json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, timeout=90, what=f"{job_id} to end")


@pytest.mark.parametrize("moment", ["before_any_worker", "while_creating_upstream"])
def test_a_job_accepted_before_redis_is_killed_survives_and_trains_once(
    client: httpx.Client,
    dataset: str,
    sandbox: httpx.Client,
    private_redis: RedisServer,
    spawn_worker: SpawnWorker,
    moment: str,
) -> None:
    if moment == "while_creating_upstream":
        # The upstream answers the create only once Redis is back: Redis dies while a worker
        # waits for it, so the worker cannot record the upstream job it made.
        add_fault(sandbox, path_prefix="/v1/fine_tuning/jobs", method="POST", delay=HELD)
        spawn_worker(function_timeout=FUNCTION_TIMEOUT)
    job_id = create_job(client, dataset)["id"]
    accepted_at = time.monotonic()
    if moment == "while_creating_upstream":
        wait_for(
            lambda: stats(sandbox).get("POST /v1/fine_tuning/jobs", 0) >= 1,
            what="the worker to ask the upstream for the job",
        )
    wait_until_durable(private_redis, accepted_at)

    private_redis.kill()  # SIGKILL: no shutdown, no final write
    private_redis.start()  # same port, same directory: the AOF is read back
    sandbox.delete("/sandbox/faults").raise_for_status()  # the held create goes on

    # A worker that lost its Redis may be gone: one more is always there.
    spawn_worker(function_timeout=FUNCTION_TIMEOUT)
    job = final_status(client, job_id)
    assert job["status"] == "succeeded", (job, stats(sandbox))
    assert stats(sandbox).get("POST /v1/fine_tuning/jobs") == 1
    listed = sandbox.get("/v1/fine_tuning/jobs", params={"metadata[burro_job]": job_id}).json()
    assert [j["id"] for j in listed["data"]] == [job["upstream"]["job_id"]]
