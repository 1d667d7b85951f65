"""One poll pass under load: running jobs' events wait for a later pass when the pass is out of
time for them, and the pass after a long one comes at once. The sandbox's clock moves only when
the test says so."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec
import pytest

from service.jobs.transitions import jobs
from service.settings import Settings
from tests.support.api import create_job
from tests.support.sandboxes import ClockedSandbox, stats
from tests.support.workers import worker_context
from workers import fine_tuning, upload
from workers.context import WorkerContext

EVENTS = "GET /v1/fine_tuning/jobs/{job_id}/events"


@pytest.fixture
def sandbox_url(clocked_sandbox: ClockedSandbox) -> str:
    return clocked_sandbox.url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, poll_interval=60)


async def _upstream(w: WorkerContext, ids: list[str]) -> None:
    for job_id in ids:
        await upload.upload_job_files(w, job_id)
        await fine_tuning.create_upstream_job(w, job_id)


def test_running_jobs_events_left_by_a_pass_out_of_time_are_read_by_the_next_at_once(
    client: httpx.Client,
    dataset: str,
    settings: Settings,
    sandbox: httpx.Client,
    clocked_sandbox: ClockedSandbox,
) -> None:
    ids = [create_job(client, dataset)["id"] for _ in range(3)]

    async def scenario() -> tuple[dict[str, int], float, dict[str, int]]:
        async with worker_context(settings, events_budget=0.0) as w:
            await _upstream(w, ids)
            clocked_sandbox.advance(2.5)  # every upstream job is running now
            await asyncio.to_thread(sandbox.delete, "/sandbox/stats")
            await fine_tuning.poll_provider(w, "sandbox")
            assert {j.status for j in await jobs(w.redis).get_many(ids) if j} == {"running"}
            out_of_time = await asyncio.to_thread(stats, sandbox)
            delay = fine_tuning.next_pass_in(w, "sandbox")
            w.events_budget = 60.0
            await asyncio.to_thread(sandbox.delete, "/sandbox/stats")
            await fine_tuning.poll_provider(w, "sandbox")
            return out_of_time, delay, await asyncio.to_thread(stats, sandbox)

    out_of_time, delay, in_time = asyncio.run(scenario())
    assert EVENTS not in out_of_time, out_of_time
    # Not the poll interval (60 s): at most the floor after the pass that left them.
    assert delay <= fine_tuning.MIN_POLL_SECONDS
    assert in_time[EVENTS] == len(ids), in_time


def test_the_pass_after_a_long_one_starts_at_once_when_a_job_is_due_to_finish(
    settings: Settings,
) -> None:
    async def delays() -> tuple[float, float, float]:
        async with worker_context(settings) as w:
            moment = time.time()
            w.polling.next_finish["sandbox"] = moment - 1  # a finish is due already
            w.polling.started["sandbox"] = moment - 5  # by a pass that took five seconds
            after_long = fine_tuning.next_pass_in(w, "sandbox")
            w.polling.started["sandbox"] = time.time()  # by a pass that just started
            after_short = fine_tuning.next_pass_in(w, "sandbox")
            del w.polling.next_finish["sandbox"]  # no finish expected: the poll interval
            return after_long, after_short, fine_tuning.next_pass_in(w, "sandbox")

    after_long, after_short, idle = asyncio.run(delays())
    assert after_long == 0.0
    assert 0.5 < after_short <= fine_tuning.MIN_POLL_SECONDS
    assert idle >= settings.poll_interval * 0.5
