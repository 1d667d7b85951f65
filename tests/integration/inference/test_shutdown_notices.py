"""Shutdown awareness: each model's shutdown date in `/v1/models`, `/v1/aliases/{name}` and the
pages, and a `model.shutdown_approaching` webhook 30, 7 and 1 days ahead, once each, through a
real worker to a real receiver."""

from __future__ import annotations

import asyncio
import datetime

import httpx
import openai

from service import tasks
from service.inference.aliases import ALIAS_TENANTS_KEY
from service.inference.shutdowns import notify_shutdowns
from service.settings import DEFAULT_RESCUE_URL, Settings
from tests.support.data import job_record
from tests.support.fixtures import MakeWorker
from tests.support.receivers import Receiver
from tests.support.store import enqueue, on_redis, save_job
from tests.support.workers import worker_context

# The shipped table's date for gpt-4.1-mini, the base of the session's sandbox model.
SHUTDOWN = datetime.date(2027, 1, 14)


def test_models_aliases_and_pages_show_the_shutdown_date(
    client: httpx.Client,
    sdk: openai.OpenAI,
    donkey: str,
    acme_job: str,
    sandbox_model: str,
    redis_url: str,
) -> None:
    save_job(redis_url, job_record(acme_job, fine_tuned_model=sandbox_model))

    listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert listed[donkey]["shutdown"] == "2027-01-14"
    assert listed[sandbox_model]["shutdown"] == "2027-01-14", "an ft: model inherits its base's"
    assert listed["gpt-4o-mini"]["shutdown"] == "2027-01-14"
    one = sdk.models.retrieve(donkey)
    assert one.model_dump()["shutdown"] == "2027-01-14", "the openai SDK keeps the field"

    assert client.get(f"/v1/aliases/{donkey}").json()["shutdown"] == "2027-01-14"

    jobs_page = client.get("/ui/jobs").text
    assert 'id="aliases"' in jobs_page and donkey in jobs_page
    assert jobs_page.count("2027-01-14 (in ") == 2, "the job's row and the alias' row"
    assert "2027-01-14 (in " in client.get(f"/ui/jobs/{acme_job}").text


def _notices(receiver: Receiver, path: str = "/hook") -> list[tuple[int, int]]:
    """(threshold, days left) of each shutdown notice `receiver` got on `path`, in order."""
    bodies = [r.json() for r in receiver.requests if r.path_qs == path]
    return [
        (b["data"]["threshold_days"], b["data"]["days_left"])
        for b in bodies
        if b["type"] == "model.shutdown_approaching"
    ]


def test_a_notice_goes_out_30_7_and_1_days_ahead_once_each(
    client: httpx.Client,
    donkey: str,
    receiver: Receiver,
    worker: MakeWorker,
    redis_url: str,
) -> None:
    for path, events in (
        ("/hook", ["model.shutdown_approaching"]),
        ("/all", ["*"]),
        ("/jobs", ["job.*"]),
    ):
        subscribed = client.post(
            "/v1/webhook-endpoints", json={"url": receiver.url(path), "events": events}
        )
        assert subscribed.status_code == 201, subscribed.text
    day = [SHUTDOWN - datetime.timedelta(days=45)]

    def run_check(days_left: int) -> None:
        day[0] = SHUTDOWN - datetime.timedelta(days=days_left)
        # Twice on the same day, each time by a worker of its own (a restart, another host).
        for _ in range(2):
            enqueue(redis_url, tasks.NOTIFY_SHUTDOWNS)
            worker(today=lambda: day[0]).drain()

    for days_left in (45, 31, 30, 29, 8, 7, 6, 2, 1, 0, -3):
        run_check(days_left)

    assert _notices(receiver, "/hook") == [(30, 30), (7, 7), (1, 1)]
    assert _notices(receiver, "/all") == [(30, 30), (7, 7), (1, 1)]
    assert not any(r.path_qs == "/jobs" for r in receiver.requests)
    body = next(r.json() for r in receiver.requests if r.path_qs == "/hook")
    assert body["data"]["alias"] == donkey and body["data"]["shutdown"] == "2027-01-14"
    assert body["data"]["rescue_url"] == DEFAULT_RESCUE_URL
    assert body["data"]["object"] == "shutdown_notice"
    assert all(r.headers["webhook-signature"].startswith("v1,") for r in receiver.requests)


def test_a_late_check_sends_only_the_nearest_notice_and_racing_checks_send_it_once(
    client: httpx.Client, donkey: str, receiver: Receiver, worker: MakeWorker, settings: Settings
) -> None:
    client.post("/v1/webhook-endpoints", json={"url": receiver.url(), "events": ["model.*"]})
    six_days_before = SHUTDOWN - datetime.timedelta(days=6)

    async def race() -> list[int]:
        async with worker_context(settings) as w:
            return list(
                await asyncio.gather(
                    *(
                        notify_shutdowns(w.redis, w.queue, w.models, six_days_before, "u")
                        for _ in range(8)
                    )
                )
            )

    assert sum(asyncio.run(race())) == 1
    worker().drain()
    assert _notices(receiver) == [(7, 6)]


def test_aliases_stored_before_the_tenant_set_existed_are_found_by_one_scan(
    donkey: str, settings: Settings, redis_url: str
) -> None:
    on_redis(redis_url, lambda r: r.delete(ALIAS_TENANTS_KEY))  # as an older Burro left it
    day = SHUTDOWN - datetime.timedelta(days=30)

    async def check() -> tuple[int, set[bytes]]:
        async with worker_context(settings) as w:
            staged = await notify_shutdowns(w.redis, w.queue, w.models, day, "u")
            return staged, await w.redis.smembers(ALIAS_TENANTS_KEY)  # type: ignore[misc]

    assert asyncio.run(check()) == (1, {b"acme"})
