"""kill -9 a worker process mid-job: a new worker finishes it, with exactly one upstream job."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.config import SandboxConfig
from service.settings import Settings
from tests.jobs.conftest import MODEL, stats, wait_for, wait_status

# Short function timeouts: arq re-runs a dead worker's job after the longest timeout + 10 s.
WORKER_CODE = (
    "from service.settings import Settings; from workers.main import run; "
    "run(Settings.from_env(), function_timeout=5, retry_base=0.05, retry_cap=0.5)"
)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(step_seconds=1.0)


@pytest.fixture
def spawn_worker(
    job_settings: Settings, sandbox_url: str
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start `burro worker`'s code in a child process; every child is killed at the end.
    BURRO_TEST_WORKER_LOGS=1 shows the children's logs."""
    children: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "REDIS_URL": str(job_settings.redis_url),
        "BURRO_DATA_DIR": str(job_settings.data_dir),
        "BURRO_PROVIDER": "sandbox",
        "BURRO_SANDBOX_URL": sandbox_url,
        "BURRO_POLL_INTERVAL": "0.2",
        "BURRO_LOG_LEVEL": "INFO" if os.environ.get("BURRO_TEST_WORKER_LOGS") else "WARNING",
    }
    env.pop("OPENAI_API_KEY", None)

    def spawn() -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("BURRO_TEST_WORKER_LOGS") else subprocess.DEVNULL,
        )
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(10)


def _fault(sandbox: httpx.Client, prefix: str, method: str, delay: float) -> None:
    rule = {"path_prefix": prefix, "method": method, "delay": delay, "count": 1}
    assert sandbox.post("/sandbox/faults", json=rule).status_code == 200


@pytest.mark.parametrize("moment", ["during_upload", "after_create", "while_polling"])
def test_a_killed_worker_is_replaced_and_the_job_ends_with_one_upstream_job(
    api: httpx.Client,
    dataset: str,
    sandbox: httpx.Client,
    spawn_worker: Callable[[], subprocess.Popen[bytes]],
    moment: str,
) -> None:
    if moment == "during_upload":
        _fault(sandbox, "/v1/files", "POST", delay=3.0)  # the upload hangs: kill it there
        seen = "POST /v1/files"
    elif moment == "after_create":
        # The create reaches the upstream, which answers late: the worker dies before it
        # can record the upstream job id; the next one must find it, not create another.
        _fault(sandbox, "/v1/fine_tuning/jobs", "POST", delay=3.0)
        seen = "POST /v1/fine_tuning/jobs"
    else:
        seen = "GET /v1/fine_tuning/jobs"
    first = spawn_worker()
    job_id = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]
    wait_for(lambda: stats(sandbox).get(seen, 0) >= 1, what=f"the worker to reach {seen}")
    first.kill()  # SIGKILL: no clean-up at all
    first.wait(10)
    spawn_worker()
    try:
        job = wait_status(api, job_id, "succeeded", "failed", "cancelled", timeout=60)
    except AssertionError:
        events = api.get(f"/v1/jobs/{job_id}/events").json()["data"]
        raise AssertionError(
            (api.get(f"/v1/jobs/{job_id}").json(), events, stats(sandbox))
        ) from None
    assert job["status"] == "succeeded", job
    listed = sandbox.get("/v1/fine_tuning/jobs", params={"metadata[burro_job]": job_id}).json()
    assert [j["id"] for j in listed["data"]] == [job["upstream"]["job_id"]]
