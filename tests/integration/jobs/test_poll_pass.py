"""One poll pass under load: running jobs' events wait for a later pass when the pass is out of
time for them before an expected end, and the pass after a long one comes at once. The sandbox's
clock moves only when the test says so."""

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


def _events_read_by_two_passes(
    settings: Settings, ids: list[str], sandbox: httpx.Client, clocked_sandbox: ClockedSandbox
) -> tuple[dict[str, int], dict[str, int]]:
    """The sandbox's request counts of a pass with no time for running jobs' events (their
    upstream jobs expected to finish in about 28 s), and of a pass after it with time."""

    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        async with worker_context(settings, events_budget=0.0) as w:
            await _upstream(w, ids)
            clocked_sandbox.advance(2.5)  # every upstream job is running now
            await asyncio.to_thread(sandbox.delete, "/sandbox/stats")
            await fine_tuning.poll_provider(w, "sandbox")
            assert {j.status for j in await jobs(w.redis).get_many(ids) if j} == {"running"}
            first = await asyncio.to_thread(stats, sandbox)
            w.events_budget = 60.0
            await asyncio.to_thread(sandbox.delete, "/sandbox/stats")
            await fine_tuning.poll_provider(w, "sandbox")
            return first, await asyncio.to_thread(stats, sandbox)

    return asyncio.run(scenario())


def test_a_pass_out_of_time_before_an_expected_end_leaves_running_jobs_events_to_the_next(
    client: httpx.Client,
    dataset: str,
    settings: Settings,
    sandbox: httpx.Client,
    clocked_sandbox: ClockedSandbox,
) -> None:
    ids = [create_job(client, dataset)["id"] for _ in range(3)]
    # The ends are expected before the next pass of the usual rhythm (60 s).
    first, second = _events_read_by_two_passes(settings, ids, sandbox, clocked_sandbox)
    assert EVENTS not in first, first
    assert second[EVENTS] == len(ids), second


def test_a_pass_with_no_end_expected_before_the_next_reads_every_due_jobs_events(
    client: httpx.Client,
    dataset: str,
    settings: Settings,
    sandbox: httpx.Client,
    clocked_sandbox: ClockedSandbox,
) -> None:
    ids = [create_job(client, dataset)["id"] for _ in range(3)]
    every_10s = msgspec.structs.replace(settings, poll_interval=10)
    first, _ = _events_read_by_two_passes(every_10s, ids, sandbox, clocked_sandbox)
    assert first[EVENTS] == len(ids), first


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
