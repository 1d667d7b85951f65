"""Local jobs from the control worker's side, without a trainer: queued once for the trainers,
cancelled at once while no trainer holds them, and handed to the trainers again by the
watchdog when their trainer died (and only then). The training itself: tests/integration/trainer.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import msgspec
import pytest
from arq.constants import in_progress_key_prefix

from service import tasks
from service.jobs import local
from service.jobs.transitions import transition
from service.settings import ProviderSettings, Settings
from tests.support.api import create_job, job_status, upload_dataset
from tests.support.fixtures import BurroServers, MakeClient, MakeWorker
from tests.support.workers import worker_context
from trainer.examples import PAIRS, conversation
from workers import local_jobs

LOCAL_MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture
def local_settings(settings: Settings) -> Settings:
    provider = ProviderSettings(
        name="local", kind="local", base_url="http://127.0.0.1:9/v1", supports_pause=False
    )
    return msgspec.structs.replace(
        settings, providers=(*settings.providers, provider), trainer_lease_seconds=3.0
    )


@pytest.fixture
def api(
    local_settings: Settings, burro_servers: BurroServers, make_client: MakeClient
) -> httpx.Client:
    return make_client("acme", base_url=burro_servers.url(local_settings))


def donkey(api: httpx.Client) -> str:
    rows = [json.dumps({"messages": conversation(q, a)}, ensure_ascii=False) for q, a in PAIRS]
    return upload_dataset(api, ("\n".join(rows) + "\n").encode())


def queued_attempts(settings: Settings, job_id: str) -> int:
    async def count() -> int:
        async with worker_context(settings) as w:
            return await local.current_attempt(w.redis, job_id)

    return asyncio.run(count())


def test_a_local_job_is_queued_once_for_the_trainers_and_waits_for_one(
    api: httpx.Client, local_settings: Settings, worker: MakeWorker
) -> None:
    job = create_job(api, donkey(api), model=LOCAL_MODEL)
    assert job["provider"] == "local"
    worker(local_settings).drain()

    job_status(api, job["id"], "queued", timeout=30)
    assert queued_attempts(local_settings, job["id"]) == 1

    async def watch_twice() -> int:
        async with worker_context(local_settings) as w:
            return await local_jobs.watch(w) + await local_jobs.watch(w)

    assert asyncio.run(watch_twice()) == 0, "a queued attempt waiting for a trainer stays as is"
    assert queued_attempts(local_settings, job["id"]) == 1


def test_cancelling_a_local_job_no_trainer_holds_cancels_it_at_once(
    api: httpx.Client, local_settings: Settings, worker: MakeWorker
) -> None:
    job = create_job(api, donkey(api), model=LOCAL_MODEL)
    worker(local_settings).drain()
    job_status(api, job["id"], "queued", timeout=30)

    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    worker(local_settings).drain()
    assert job_status(api, job["id"], timeout=30)["status"] == "cancelled"


def test_the_watchdog_hands_a_dead_trainers_job_to_the_next_attempt_once(
    api: httpx.Client, local_settings: Settings, worker: MakeWorker
) -> None:
    job = create_job(api, donkey(api), model=LOCAL_MODEL)
    worker(local_settings).drain()
    job_status(api, job["id"], "queued", timeout=30)

    async def trainer_dies_then_watch() -> tuple[int, int, bool]:
        async with worker_context(local_settings) as w:
            # A trainer took attempt 1 (arq marks it in progress), started, and died: its lease
            # lapses and arq keeps the attempt "in progress" until its timeout.
            lease = local.Lease(w.redis, job["id"], "dead-trainer", 3.0)
            assert await lease.take()
            in_progress = in_progress_key_prefix + str(tasks.TRAIN_JOB.job_id(job["id"], 1))
            await w.redis.set(in_progress, b"1")
            await transition(w.queue, job["id"], "running", message="Training started")
            held = await local_jobs.watch(w)
            await w.redis.delete(in_progress)
            await lease.release()  # what expiry does after BURRO_TRAINER_LEASE_SECONDS
            await w.redis.set(in_progress, b"1")
            handed_over = await local_jobs.watch(w)
            again = await local_jobs.watch(w)
            other = local.Lease(w.redis, job["id"], "next-trainer", 3.0)
            return held + again, handed_over, await other.take()

    held_or_repeated, handed_over, next_takes = asyncio.run(trainer_dies_then_watch())
    assert held_or_repeated == 0, "a held job, or one already handed over, is left alone"
    assert handed_over == 1
    assert next_takes
    assert queued_attempts(local_settings, job["id"]) == 2
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["data"]
    assert [e["type"] for e in events].count("trainer_lost") == 1


def test_a_local_model_cannot_be_trained_by_a_hosted_provider(api: httpx.Client) -> None:
    response = api.post(
        "/v1/jobs",
        json={"training_dataset": donkey(api), "model": LOCAL_MODEL, "provider": "sandbox"},
    )
    assert response.status_code == 422
    assert "'local'" in response.json()["detail"]
