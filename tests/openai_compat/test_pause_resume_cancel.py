"""Pause, resume and cancel a running job through OpenAI's API on Burro. The sandbox runs on a
clock that moves only when the test says, so "running" lasts exactly as long as needed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import openai
import pytest

from burro.testing import serve_in_thread
from sandbox.config import SandboxConfig
from sandbox.testing import ManualClock, running_sandbox
from service.app import create_app
from service.settings import ProviderSettings, Settings
from tests.jobs.conftest import wait_for
from tests.openai_compat.conftest import MODEL, StartWorker, sdk

STEP = 10.0  # sandbox seconds per phase: validating, queued, running each last one step


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox_url(clock: ManualClock) -> Iterator[str]:
    with running_sandbox(SandboxConfig(step_seconds=STEP), clock=clock) as url:
        yield url


@pytest.fixture
def sandbox(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as http:
        yield http


def running_job(
    acme: openai.OpenAI, acme_http: httpx.Client, clock: ManualClock, training_file: str
) -> str:
    """A job whose upstream job is running (and stays so until the clock moves again)."""
    job = acme.fine_tuning.jobs.create(model=MODEL, training_file=training_file)
    wait_for(
        lambda: acme_http.get(f"/v1/jobs/{job.id}").json()["upstream"]["job_id"],
        what="the upstream job",
    )
    clock.advance(2.5 * STEP)
    wait_for(lambda: acme.fine_tuning.jobs.retrieve(job.id).status == "running", what="running")
    return job.id


def test_a_running_job_pauses_stays_paused_and_resumes_to_success(
    acme: openai.OpenAI,
    acme_http: httpx.Client,
    sandbox: httpx.Client,
    clock: ManualClock,
    start_worker: StartWorker,
    training_file: str,
) -> None:
    start_worker()
    job_id = running_job(acme, acme_http, clock, training_file)

    paused = acme.fine_tuning.jobs.pause(job_id)

    assert paused.status == "paused"
    burro_job = acme_http.get(f"/v1/jobs/{job_id}").json()
    assert (burro_job["status"], burro_job["upstream"]["status"]) == ("running", "paused")
    upstream_id = burro_job["upstream"]["job_id"]
    clock.advance(10 * STEP)  # a paused job does not train, however long it waits
    assert sandbox.get(f"/fine_tuning/jobs/{upstream_id}").json()["status"] == "paused"
    assert acme.fine_tuning.jobs.retrieve(job_id).status == "paused"
    with pytest.raises(openai.BadRequestError):
        acme.fine_tuning.jobs.pause(job_id)

    assert acme.fine_tuning.jobs.resume(job_id).status == "running"
    clock.advance(2 * STEP)
    done = wait_for(
        lambda: (j := acme.fine_tuning.jobs.retrieve(job_id)).status == "succeeded" and j,
        what="success",
    )
    assert done.fine_tuned_model is not None
    messages = [e.message for e in acme.fine_tuning.jobs.list_events(job_id, limit=100)]
    assert "The job was paused at the caller's request" in messages
    assert "The job was resumed at the caller's request" in messages


def test_a_running_job_cancelled_through_the_sdk_ends_cancelled(
    acme: openai.OpenAI,
    acme_http: httpx.Client,
    clock: ManualClock,
    start_worker: StartWorker,
    training_file: str,
) -> None:
    start_worker()
    job_id = running_job(acme, acme_http, clock, training_file)

    acme.fine_tuning.jobs.cancel(job_id)

    ended = wait_for(
        lambda: (j := acme.fine_tuning.jobs.retrieve(job_id)).status == "cancelled" and j,
        what="cancelled",
    )
    assert ended.fine_tuned_model is None
    assert ended.finished_at is not None
    assert acme_http.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


def test_a_provider_without_pause_answers_a_400_that_says_so(
    compat_settings: Settings, training_file: str, sandbox_url: str
) -> None:
    no_pause = msgspec.structs.replace(
        compat_settings,
        providers=(
            *compat_settings.providers,
            ProviderSettings(name="steady", base_url=sandbox_url, supports_pause=False),
        ),
    )
    with (
        serve_in_thread(create_app(no_pause, configure_logs=False)) as url,
        sdk(url, "key-acme") as client,
    ):
        job = client.fine_tuning.jobs.create(
            model=MODEL, training_file=training_file, metadata={"burro_provider": "steady"}
        )
        for call in (client.fine_tuning.jobs.pause, client.fine_tuning.jobs.resume):
            with pytest.raises(openai.BadRequestError) as caught:
                call(job.id)
            assert caught.value.code == "unsupported_by_provider"
            assert "provider 'steady', which cannot" in caught.value.message
