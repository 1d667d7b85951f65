"""The sandbox as the tests' upstream: its test controls (faults, request counts) and a model
fine-tuned on it the way a caller would."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import openai
from openai.types.fine_tuning import FineTuningJob

from sandbox.testing import ManualClock
from tests.support.waiting import wait_for


@dataclass(frozen=True)
class ClockedSandbox:
    """A sandbox of one test whose jobs move on only when the test moves its clock: each
    phase (validating_files, queued, running) lasts `step` seconds of that clock."""

    url: str
    clock: ManualClock
    step: float

    def advance(self, steps: float) -> None:
        """Move the sandbox's clock on by `steps` phases."""
        self.clock.advance(steps * self.step)


def controls(sandbox_url: str) -> httpx.Client:
    """A client of the sandbox's test controls (`/sandbox/faults`, `/sandbox/stats`) and, under
    `/v1`, of its OpenAI-compatible API without a key."""
    return httpx.Client(base_url=sandbox_url.removesuffix("/v1"), timeout=10)


def stats(sandbox: httpx.Client) -> dict[str, int]:
    """The sandbox's request counts by route (`"POST /v1/files"`: 1, …)."""
    counts: dict[str, int] = sandbox.get("/sandbox/stats").json()["requests"]
    return counts


def chat_prompts(sandbox: httpx.Client, model: str) -> dict[str, int]:
    """How often the sandbox answered `model` each prompt (by its last user message)."""
    asked: dict[str, dict[str, int]] = sandbox.get("/sandbox/stats").json()["chat_prompts"]
    return asked.get(model, {})


def add_fault(sandbox: httpx.Client, **rule: object) -> None:
    """Inject a fault (`path_prefix`, `method`, `status`, `count`, `delay`, `retry_after`)."""
    response = sandbox.post("/sandbox/faults", json=rule)
    assert response.status_code == 200, response.text


def upstream_sdk(sandbox_url: str) -> openai.OpenAI:
    """The official SDK on the sandbox itself, as a caller of OpenAI would use it."""
    return openai.OpenAI(base_url=sandbox_url, api_key="sk-sandbox", max_retries=0, timeout=30)


def succeeded(client: openai.OpenAI, job_id: str) -> FineTuningJob:
    """Wait until the upstream's fine-tuning job `job_id` has succeeded; the job."""

    def done() -> FineTuningJob | None:
        job = client.fine_tuning.jobs.retrieve(job_id)
        return job if job.status == "succeeded" else None

    return wait_for(done, what=f"fine-tuning job {job_id} to succeed")


def fine_tune(sandbox_url: str, training_jsonl: bytes, model: str) -> str:
    """Fine-tune `model` on the sandbox with the official SDK, as a caller would, and return
    the fine-tuned model's name once the job has succeeded."""
    with upstream_sdk(sandbox_url) as client:
        file_id = client.files.create(file=("train.jsonl", training_jsonl), purpose="fine-tune").id
        job = client.fine_tuning.jobs.create(model=model, training_file=file_id)
        name = succeeded(client, job.id).fine_tuned_model
        assert name is not None
        return name


def upload_training(client: openai.OpenAI, content: bytes, name: str = "train.jsonl") -> str:
    """Upload a training file to an OpenAI-compatible upstream; its file id."""
    return client.files.create(file=(name, content), purpose="fine-tune").id
