"""Pause, resume and cancel a running job through OpenAI's API on Burro. The sandbox runs on a
clock that moves only when the test says, so "running" lasts exactly as long as needed."""

from __future__ import annotations

import httpx
import msgspec
import openai
import pytest

from service.settings import ProviderSettings, Settings
from tests.support.api import fine_tuning_job_status
from tests.support.clients import tenant_sdk
from tests.support.data import TUTORIAL_MODEL
from tests.support.fixtures import ServeBurro
from tests.support.sandboxes import ClockedSandbox
from tests.support.waiting import wait_for
from tests.support.workers import BurroWorker

# OpenAI's API answers this status, but the SDK's Literal of statuses does not list it.
PAUSED: str = "paused"


@pytest.fixture
def sandbox_url(clocked_sandbox: ClockedSandbox) -> str:
    return clocked_sandbox.url


def running_job(
    sdk: openai.OpenAI, client: httpx.Client, sandbox: ClockedSandbox, training_file: str
) -> str:
    """A job whose upstream job is running (and stays so until the clock moves again)."""
    job = sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file)
    wait_for(
        lambda: client.get(f"/v1/jobs/{job.id}").json()["upstream"]["job_id"],
        what="the upstream job",
    )
    sandbox.advance(2.5)
    fine_tuning_job_status(sdk, job.id, "running")
    return job.id


def test_a_running_job_pauses_stays_paused_and_resumes_to_success(
    sdk: openai.OpenAI,
    client: httpx.Client,
    sandbox: httpx.Client,
    clocked_sandbox: ClockedSandbox,
    running_worker: BurroWorker,
    training_file: str,
) -> None:
    job_id = running_job(sdk, client, clocked_sandbox, training_file)

    paused = sdk.fine_tuning.jobs.pause(job_id)

    assert paused.status == PAUSED
    burro_job = client.get(f"/v1/jobs/{job_id}").json()
    assert (burro_job["status"], burro_job["upstream"]["status"]) == ("running", "paused")
    upstream_id = burro_job["upstream"]["job_id"]
    clocked_sandbox.advance(10)  # a paused job does not train, however long it waits
    assert sandbox.get(f"/v1/fine_tuning/jobs/{upstream_id}").json()["status"] == "paused"
    assert sdk.fine_tuning.jobs.retrieve(job_id).status == PAUSED
    with pytest.raises(openai.BadRequestError):
        sdk.fine_tuning.jobs.pause(job_id)

    assert sdk.fine_tuning.jobs.resume(job_id).status == "running"
    clocked_sandbox.advance(2)
    done = fine_tuning_job_status(sdk, job_id, "succeeded")
    assert done.fine_tuned_model is not None
    messages = [e.message for e in sdk.fine_tuning.jobs.list_events(job_id, limit=100)]
    assert "The job was paused at the caller's request" in messages
    assert "The job was resumed at the caller's request" in messages


def test_a_running_job_cancelled_through_the_sdk_ends_cancelled(
    sdk: openai.OpenAI,
    client: httpx.Client,
    clocked_sandbox: ClockedSandbox,
    running_worker: BurroWorker,
    training_file: str,
) -> None:
    job_id = running_job(sdk, client, clocked_sandbox, training_file)

    sdk.fine_tuning.jobs.cancel(job_id)

    ended = fine_tuning_job_status(sdk, job_id, "cancelled")
    assert ended.fine_tuned_model is None
    assert ended.finished_at is not None
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


def test_a_provider_without_pause_answers_a_400_that_says_so(
    settings: Settings, serve_burro: ServeBurro, training_file: str, sandbox_url: str
) -> None:
    no_pause = msgspec.structs.replace(
        settings,
        providers=(
            *settings.providers,
            ProviderSettings(name="steady", base_url=sandbox_url, supports_pause=False),
        ),
    )
    with tenant_sdk(serve_burro(no_pause)) as steady:
        job = steady.fine_tuning.jobs.create(
            model=TUTORIAL_MODEL, training_file=training_file, metadata={"burro_provider": "steady"}
        )
        for call in (steady.fine_tuning.jobs.pause, steady.fine_tuning.jobs.resume):
            with pytest.raises(openai.BadRequestError) as caught:
                call(job.id)
            assert caught.value.code == "unsupported_by_provider"
            assert "provider 'steady', which cannot" in caught.value.message
