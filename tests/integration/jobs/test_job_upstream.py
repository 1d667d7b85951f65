"""Exactly one upstream job, datasets uploaded once, retries on 5xx, cancel before upload."""

from __future__ import annotations

import asyncio

import httpx
import msgspec

from service.jobs.transitions import jobs, update
from service.models import ModelTable
from service.providers import Providers
from service.queue import Queue
from service.settings import Settings
from tests.jobs.conftest import (
    MODEL,
    WORKER_OPTIONS,
    StartWorker,
    WorkerThread,
    chat_file,
    stats,
    upload_dataset,
    wait_status,
)
from workers import fine_tuning, upload
from workers.context import WorkerContext

CREATE = "POST /v1/fine_tuning/jobs"


async def _context(settings: Settings) -> WorkerContext:
    assert settings.redis_url is not None
    return WorkerContext(
        settings=settings,
        queue=await Queue.connect(settings.redis_url),
        providers=Providers(settings),
        models=ModelTable.load(),
        **WORKER_OPTIONS,
    )


def test_the_create_step_run_twice_or_after_a_lost_answer_makes_one_upstream_job(
    api: httpx.Client, dataset: str, job_settings: Settings, sandbox: httpx.Client
) -> None:
    job_id = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]

    async def scenario() -> set[str]:
        w = await _context(job_settings)
        try:
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
        finally:
            await w.providers.close()
            await w.queue.close()

    assert len(asyncio.run(scenario())) == 1
    assert stats(sandbox)[CREATE] == 1


def test_a_dataset_is_uploaded_once_per_provider_for_two_jobs(
    api: httpx.Client, dataset: str, sandbox: httpx.Client, worker: WorkerThread
) -> None:
    ids = [
        api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]
        for _ in range(2)
    ]
    finished = [wait_status(api, job_id, "succeeded", "failed") for job_id in ids]
    assert [j["status"] for j in finished] == ["succeeded", "succeeded"]
    assert finished[0]["upstream"]["training_file"] == finished[1]["upstream"]["training_file"]
    assert finished[0]["upstream"]["job_id"] != finished[1]["upstream"]["job_id"]
    counts = stats(sandbox)
    assert counts["POST /v1/files"] == 1
    assert counts[CREATE] == 2


def test_a_large_dataset_goes_up_through_the_uploads_api_in_parts(
    api: httpx.Client, sandbox: httpx.Client, worker: WorkerThread
) -> None:
    big = upload_dataset(api, chat_file(60, salt="-big"))  # well above the test threshold
    job_id = api.post("/v1/jobs", json={"training_dataset": big, "model": MODEL}).json()["id"]
    assert wait_status(api, job_id, "succeeded", "failed")["status"] == "succeeded"
    counts = stats(sandbox)
    assert counts.get("POST /v1/files", 0) == 0
    assert counts["POST /v1/uploads"] == 1
    assert (
        sum(v for k, v in counts.items() if k.startswith("POST /v1/uploads/") and "parts" in k) > 1
    )


def test_cancel_before_upload_creates_nothing_upstream(
    api: httpx.Client, dataset: str, sandbox: httpx.Client, start_worker: StartWorker
) -> None:
    cancelled = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()
    answer = api.post(f"/v1/jobs/{cancelled['id']}/cancel")
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    start_worker()
    # A later job on the same queue is the barrier: once it succeeded, the first job's
    # upload step (queued before it) has run too.
    later = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()
    assert wait_status(api, later["id"], "succeeded", "failed")["status"] == "succeeded"
    assert stats(sandbox)[CREATE] == 1
    job = api.get(f"/v1/jobs/{cancelled['id']}").json()
    assert job["status"] == "cancelled"
    assert job["upstream"]["job_id"] is None


def test_upstream_500s_are_retried_and_the_job_still_succeeds_with_one_upstream_job(
    api: httpx.Client, dataset: str, sandbox: httpx.Client, start_worker: StartWorker
) -> None:
    for prefix in ("/v1/files", "/v1/fine_tuning/jobs"):
        fault = {"path_prefix": prefix, "method": "POST", "status": 500, "count": 2}
        assert sandbox.post("/sandbox/faults", json=fault).status_code == 200
    start_worker()
    job_id = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]
    job = wait_status(api, job_id, "succeeded", "failed")
    assert job["status"] == "succeeded", job
    counts = stats(sandbox)
    assert counts[CREATE] == 3  # two refused, one created
    assert counts["POST /v1/files"] == 3
    events = api.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    retries = [e for e in events if e["type"] == "retry"]
    assert len(retries) == 4
    assert all(e["level"] == "warn" for e in retries)
    listed = sandbox.get("/v1/fine_tuning/jobs", params={"metadata[burro_job]": job_id}).json()
    assert len(listed["data"]) == 1


def test_the_poll_loop_refreshes_many_jobs_with_one_list_call(
    api: httpx.Client, dataset: str, job_settings: Settings, sandbox: httpx.Client
) -> None:
    ids = [
        api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]
        for _ in range(5)
    ]

    async def scenario() -> int:
        w = await _context(msgspec.structs.replace(job_settings, poll_interval=60))
        try:
            for job_id in ids:
                await upload.upload_job_files(w, job_id)
                await fine_tuning.create_upstream_job(w, job_id)
            sandbox.delete("/sandbox/stats")
            calls = 0
            for _ in range(200):
                calls = await fine_tuning.poll_provider(w, "sandbox")
                statuses = {j.status for j in await jobs(w.redis).get_many(ids) if j}
                if statuses == {"succeeded"}:
                    return calls
                await asyncio.sleep(0.1)
            raise AssertionError(f"jobs did not finish: {statuses}")
        finally:
            await w.providers.close()
            await w.queue.close()

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
