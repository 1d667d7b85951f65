"""Burro's API as a caller drives it, for tests that need a dataset or a job on the way to what
they check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
from openai.types.fine_tuning import FineTuningJob

from service.settings import Settings
from tests.support.data import BASE_MODEL, JSONL_HEADERS, chat_file
from tests.support.waiting import wait_for

TERMINAL = ("succeeded", "failed", "cancelled")


def upload_dataset(client: httpx.Client, body: bytes | None = None, **params: str) -> str:
    """Upload `body` (12 chat examples by default) as a dataset; its id."""
    response = client.post(
        "/v1/datasets", content=body or chat_file(), headers=JSONL_HEADERS, params=params
    )
    assert response.status_code in (200, 201), response.text
    dataset_id: str = response.json()["id"]
    return dataset_id


def stored_files(settings: Settings) -> list[Path]:
    """The files in Burro's dataset folder (spooled uploads included), sorted."""
    folder = settings.data_dir / "datasets"
    return sorted(folder.iterdir()) if folder.exists() else []


def create_job(client: httpx.Client, dataset: str, **body: Any) -> dict[str, Any]:
    """Create a job on `dataset` (the base model unless `model` is given); the 202's body."""
    response = client.post(
        "/v1/jobs", json={"training_dataset": dataset, "model": BASE_MODEL, **body}
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def job_status(
    client: httpx.Client, job_id: str, *statuses: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait until the job is in one of `statuses` (any finished one by default); the job."""
    wanted = statuses or TERMINAL

    def reached() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in wanted else None

    return wait_for(reached, timeout=timeout, what=f"{job_id} to be {' or '.join(wanted)}")


def fine_tuning_job_status(
    sdk: openai.OpenAI, job_id: str, *statuses: str, timeout: float = 60.0
) -> FineTuningJob:
    """As `job_status`, through OpenAI's fine-tuning API with the official SDK."""
    wanted = statuses or TERMINAL

    def reached() -> FineTuningJob | None:
        job = sdk.fine_tuning.jobs.retrieve(job_id)
        return job if job.status in wanted else None

    return wait_for(reached, timeout=timeout, what=f"{job_id} to be {' or '.join(wanted)}")
