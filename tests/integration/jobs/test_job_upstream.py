"""Exactly one upstream job, datasets uploaded once, retries on 5xx, cancel before upload."""

from __future__ import annotations

import asyncio

import httpx
import msgspec

from service.jobs.transitions import jobs, update
from service.settings import Settings
from tests.support.api import create_job, job_status, upload_dataset
from tests.support.data import chat_file
from tests.support.fixtures import MakeWorker
from tests.support.sandboxes import add_fault, stats
from tests.support.workers import BurroWorker, worker_context
from workers import fine_tuning, upload

CREATE = "POST /v1/fine_tuning/jobs"


def test_the_create_step_run_twice_or_after_a_lost_answer_makes_one_upstream_job(
    client: httpx.Client, dataset: str, settings: Settings, sandbox: httpx.Client
) -> None:
    job_id = create_job(client, dataset)["id"]

    async def scenario() -> set[str]:
        async with worker_context(settings) as w:
            await upload.upload_job_files(w, job_id)
            # Two workers at once: one creates, the other finds the create lock taken.
            results = await asyncio.gather(
                fine_tuning.create_upstream_job(w, job_id),
                fine_tuning.create_upstream_job(w, job_id),
                return_exceptions=True,
            )
            assert all(r is None or isinstance(r, upload.Busy) for r in results), results
            first = await jobs(w.redis).get(job_id)
            assert first is not None and first.upstream_job_id is not None
            # A worker that died after the create, before recording it: the next one finds it.
            await update(w.queue, job_id, upstream_job_id=None)
            await fine_tuning.create_upstream_job(w, job_id)
            await fine_tuning.create_upstream_job(w, job_id)
            again = await jobs(w.redis).get(job_id)
            assert again is not None
            return {first.upstream_job_id, str(again.upstream_job_id)}

    assert len(asyncio.run(scenario())) == 1
    assert stats(sandbox)[CREATE] == 1


def test_a_dataset_is_uploaded_once_per_provider_for_two_jobs(
    client: httpx.Client, dataset: str, sandbox: httpx.Client, running_worker: BurroWorker
) -> None:
    ids = [create_job(client, dataset)["id"] for _ in range(2)]
    finished = [job_status(client, job_id, "succeeded", "failed") for job_id in ids]
    assert [j["status"] for j in finished] == ["succeeded", "succeeded"]
    assert finished[0]["upstream"]["training_file"] == finished[1]["upstream"]["training_file"]
    assert finished[0]["upstream"]["job_id"] != finished[1]["upstream"]["job_id"]
    counts = stats(sandbox)
    assert counts["POST /v1/files"] == 1
    assert counts[CREATE] == 2


def test_a_large_dataset_goes_up_through_the_uploads_api_in_parts(
    client: httpx.Client, sandbox: httpx.Client, running_worker: BurroWorker
) -> None:
    big = upload_dataset(client, chat_file(60, salt="-big"))  # well above the test threshold
    job_id = create_job(client, big)["id"]
    assert job_status(client, job_id, "succeeded", "failed")["status"] == "succeeded"
    counts = stats(sandbox)
    assert counts.get("POST /v1/files", 0) == 0
    assert counts["POST /v1/uploads"] == 1
    assert (
        sum(v for k, v in counts.items() if k.startswith("POST /v1/uploads/") and "parts" in k) > 1
    )


def test_cancel_before_upload_creates_nothing_upstream(
    client: httpx.Client, dataset: str, sandbox: httpx.Client, worker: MakeWorker
) -> None:
    cancelled = create_job(client, dataset)
    answer = client.post(f"/v1/jobs/{cancelled['id']}/cancel")
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    worker(burst=False).start()
    # A later job on the same queue is the barrier: once it succeeded, the first job's
    # upload step (queued before it) has run too.
    later = create_job(client, dataset)
    assert job_status(client, later["id"], "succeeded", "failed")["status"] == "succeeded"
    assert stats(sandbox)[CREATE] == 1
    job = client.get(f"/v1/jobs/{cancelled['id']}").json()
    assert job["status"] == "cancelled"
    assert job["upstream"]["job_id"] is None


def test_upstream_500s_are_retried_and_the_job_still_succeeds_with_one_upstream_job(
    client: httpx.Client, dataset: str, sandbox: httpx.Client, worker: MakeWorker
) -> None:
    for prefix in ("/v1/files", "/v1/fine_tuning/jobs"):
        add_fault(sandbox, path_prefix=prefix, method="POST", status=500, count=2)
    worker(burst=False).start()
    job_id = create_job(client, dataset)["id"]
    job = job_status(client, job_id, "succeeded", "failed")
    assert job["status"] == "succeeded", job
    counts = stats(sandbox)
    assert counts[CREATE] == 3  # two refused, one created
    assert counts["POST /v1/files"] == 3
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    retries = [e for e in events if e["type"] == "retry"]
    assert len(retries) == 4
    assert all(e["level"] == "warn" for e in retries)
    listed = sandbox.get("/v1/fine_tuning/jobs", params={"metadata[burro_job]": job_id}).json()
    assert len(listed["data"]) == 1


def test_the_poll_loop_refreshes_many_jobs_with_one_list_call(
    client: httpx.Client, dataset: str, settings: Settings, sandbox: httpx.Client
) -> None:
    ids = [create_job(client, dataset)["id"] for _ in range(5)]

    async def scenario() -> int:
        async with worker_context(msgspec.structs.replace(settings, poll_interval=60)) as w:
            for job_id in ids:
                await upload.upload_job_files(w, job_id)
                await fine_tuning.create_upstream_job(w, job_id)
            await asyncio.to_thread(sandbox.delete, "/sandbox/stats")
            calls = 0
            for _ in range(200):
                calls = await fine_tuning.poll_provider(w, "sandbox")
                statuses = {j.status for j in await jobs(w.redis).get_many(ids) if j}
                if statuses == {"succeeded"}:
                    return calls
                await asyncio.sleep(0.1)
            raise AssertionError(f"jobs did not finish: {statuses}")

    asyncio.run(scenario())
    counts = stats(sandbox)
    # One list call per pass for all five jobs; no per-job retrieve of the job itself.
    retrieves = [
        k
        for k in counts
        if k.startswith("GET /v1/fine_tuning/jobs/") and not k.endswith(("events", "checkpoints"))
    ]
    assert retrieves == [], counts
    assert counts["GET /v1/fine_tuning/jobs"] >= 1
