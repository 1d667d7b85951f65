"""kill -9 a worker process mid-job: a new worker finishes it, with exactly one upstream job."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.support.api import create_job, job_status
from tests.support.fixtures import SpawnWorker
from tests.support.sandboxes import add_fault, stats
from tests.support.waiting import wait_for

pytestmark = pytest.mark.crash

# Seconds. arq runs a dead worker's job again once its timeout + 10 s have passed: short
# function timeouts make that soon.
FUNCTION_TIMEOUT = 3.0
# Longer than the test: a request the fault holds goes on only when the faults are cleared.
HELD = 300.0


@pytest.mark.parametrize("moment", ["during_upload", "after_create", "while_polling"])
def test_a_killed_worker_is_replaced_and_the_job_ends_with_one_upstream_job(
    client: httpx.Client,
    dataset: str,
    sandbox: httpx.Client,
    spawn_worker: SpawnWorker,
    moment: str,
) -> None:
    if moment == "during_upload":
        add_fault(sandbox, path_prefix="/v1/files", method="POST", delay=HELD)
        seen = "POST /v1/files"
    elif moment == "after_create":
        # The create reaches the upstream, which answers only after the worker died: it never
        # recorded the upstream job id, and the next worker must find it, not create another.
        add_fault(sandbox, path_prefix="/v1/fine_tuning/jobs", method="POST", delay=HELD)
        seen = "POST /v1/fine_tuning/jobs"
    else:
        seen = "GET /v1/fine_tuning/jobs"
    first: subprocess.Popen[bytes] = spawn_worker(function_timeout=FUNCTION_TIMEOUT)
    job_id = create_job(client, dataset)["id"]
    wait_for(lambda: stats(sandbox).get(seen, 0) >= 1, what=f"the worker to reach {seen}")
    first.kill()  # SIGKILL: no clean-up at all
    first.wait(10)
    sandbox.delete("/sandbox/faults").raise_for_status()  # the held request goes on, unanswered
    spawn_worker(function_timeout=FUNCTION_TIMEOUT)
    try:
        job = job_status(client, job_id, timeout=90)
    except AssertionError:
        events = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
        raise AssertionError(
            (client.get(f"/v1/jobs/{job_id}").json(), events, stats(sandbox))
        ) from None
    assert job["status"] == "succeeded", job
    listed = sandbox.get("/v1/fine_tuning/jobs", params={"metadata[burro_job]": job_id}).json()
    assert [j["id"] for j in listed["data"]] == [job["upstream"]["job_id"]]
