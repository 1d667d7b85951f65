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

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from burro.redis_server import RedisServer
from sandbox.config import SandboxConfig
from service.settings import Settings
from tests.jobs.conftest import MODEL, stats, wait_for

ROOT = Path(__file__).resolve().parents[2]
# Short function timeouts: arq runs a dead worker's job again after its timeout + 10 s.
WORKER_CODE = (
    "from service.settings import Settings; from workers.main import run; "
    "run(Settings.from_env(), function_timeout=5, retry_base=0.05, retry_cap=0.5)"
)
# How much of the latest writes `appendfsync everysec` may lose in a crash.
FSYNC_WINDOW = 1.0


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(step_seconds=1.0)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """This test's own Redis (AOF on, everysec), never the session's: it gets killed."""
    server = RedisServer(data_dir=tmp_path / "redis")
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(own_redis: RedisServer) -> str:
    """Every part of the test (API, workers, settings) talks to `own_redis`."""
    return own_redis.url


@pytest.fixture
def spawn_worker(
    job_settings: Settings, sandbox_url: str
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start `burro worker`'s code in a child process; every child is killed at the end."""
    children: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "REDIS_URL": str(job_settings.redis_url),
        "BURRO_DATA_DIR": str(job_settings.data_dir),
        "BURRO_PROVIDER": "sandbox",
        "BURRO_SANDBOX_URL": sandbox_url,
        "BURRO_POLL_INTERVAL": "0.2",
        "BURRO_LOG_LEVEL": "WARNING",
    }
    env.pop("OPENAI_API_KEY", None)

    def spawn() -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(10)


def wait_until_durable(server: RedisServer, accepted_at: float) -> None:
    """Wait until everything Redis acknowledged before `accepted_at` is fsynced: the fsync
    window has passed since then and no AOF write or background fsync is outstanding."""
    client = redis.Redis.from_url(server.url)

    def durable() -> bool:
        info: dict[str, Any] = client.info("persistence")
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


def final_status(api: httpx.Client, job_id: str) -> dict[str, Any]:
    """Poll until the job ends; answers that fail while connections to Redis are re-made are
    just polled again."""

    def check() -> dict[str, Any] | None:
        response = api.get(f"/v1/jobs/{job_id}")
        if response.status_code != 200:
            return None
        job: dict[str, Any] = response.json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = wait_for(check, timeout=90, what=f"{job_id} to end")
    return result


@pytest.mark.parametrize("moment", ["before_any_worker", "while_creating_upstream"])
def test_a_job_accepted_before_redis_is_killed_survives_and_trains_once(
    api: httpx.Client,
    dataset: str,
    sandbox: httpx.Client,
    own_redis: RedisServer,
    spawn_worker: Callable[[], subprocess.Popen[bytes]],
    moment: str,
) -> None:
    if moment == "while_creating_upstream":
        # The upstream takes its time to answer the create: Redis dies while a worker waits
        # for it, so the worker cannot record the upstream job it made.
        fault = {"path_prefix": "/v1/fine_tuning/jobs", "method": "POST", "delay": 2.0, "count": 1}
        assert sandbox.post("/sandbox/faults", json=fault).status_code == 200
        spawn_worker()
    created = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL})
    assert created.status_code == 202, created.text
    accepted_at = time.monotonic()
    job_id = created.json()["id"]
    if moment == "while_creating_upstream":
        wait_for(
            lambda: stats(sandbox).get("POST /v1/fine_tuning/jobs", 0) >= 1,
            what="the worker to ask the upstream for the job",
        )
    wait_until_durable(own_redis, accepted_at)

    own_redis.kill()  # SIGKILL: no shutdown, no final write
    own_redis.start()  # same port, same directory: the AOF is read back

    spawn_worker()  # a worker that lost its Redis may be gone: one more is always there
    job = final_status(api, job_id)
    assert job["status"] == "succeeded", (job, stats(sandbox))
    assert stats(sandbox).get("POST /v1/fine_tuning/jobs") == 1
    listed = sandbox.get("/v1/fine_tuning/jobs", params={"metadata[burro_job]": job_id}).json()
    assert [j["id"] for j in listed["data"]] == [job["upstream"]["job_id"]]
