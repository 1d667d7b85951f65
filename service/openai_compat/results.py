"""A job's result file (`fine-tune-results`): its training curve as OpenAI's step-metrics CSV,
base64-encoded as OpenAI serves it. It is a view of the job's stored metrics, named after the
job, so there is nothing to copy and nothing to keep in step."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Sequence

from redis.asyncio import Redis

from service.jobs.events import MetricsRow
from service.jobs.records import Job
from service.openai_shapes import RESULT_CSV_COLUMNS
from service.store import PREFIX

RESULT_FILE_PREFIX = "ftres_"
RESULT_FILENAME = "step_metrics.csv"
# OpenAI's columns up to the full-validation ones, which Burro's stored curve does not hold.
CSV_COLUMNS = RESULT_CSV_COLUMNS[: RESULT_CSV_COLUMNS.index("full_valid_loss")]


def result_file_id(job_id: str) -> str:
    """The id of a job's result file: the job's own id under another prefix."""
    return RESULT_FILE_PREFIX + job_id.removeprefix("job_")


def job_of_result_file(file_id: str) -> str | None:
    """The job a result file id names, or None when the id is not a result file's."""
    if not file_id.startswith(RESULT_FILE_PREFIX) or len(file_id) == len(RESULT_FILE_PREFIX):
        return None
    return "job_" + file_id.removeprefix(RESULT_FILE_PREFIX)


def has_results(job: Job) -> bool:
    """A job has its result file once it succeeded, or once its provider made one."""
    return job.status == "succeeded" or bool(job.result_files)


def _deleted_key(tenant: str) -> str:
    return f"{PREFIX}:files:deleted-results:{tenant}"


async def forget(redis: Redis, job: Job) -> None:
    """Delete the job's result file, as far as the files API is concerned (the job keeps its
    metrics: `/v1/jobs/{id}/metrics` still shows them)."""
    await redis.sadd(_deleted_key(job.tenant), job.id)  # type: ignore[misc]


async def result_files(redis: Redis, tenant: str, jobs: Sequence[Job]) -> dict[str, list[str]]:
    """Each job's result file ids (none, or one), in one round trip for the whole page."""
    candidates = [job.id for job in jobs if has_results(job)]
    deleted: set[str] = set()
    if candidates:
        flags = await redis.smismember(_deleted_key(tenant), candidates)  # type: ignore[misc]
        deleted = {job_id for job_id, gone in zip(candidates, flags, strict=True) if gone}
    return {
        job.id: [result_file_id(job.id)] if has_results(job) and job.id not in deleted else []
        for job in jobs
    }


def results_csv(rows: Sequence[MetricsRow]) -> bytes:
    """The step-metrics CSV of a training curve (empty cells where nothing was measured)."""

    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:.5f}"

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.step,
                cell(row.train_loss),
                cell(row.train_mean_token_accuracy),
                cell(row.valid_loss),
                cell(row.valid_mean_token_accuracy),
                cell(row.train_mean_token_accuracy),
            ]
        )
    return out.getvalue().encode()


def encoded_results(rows: Sequence[MetricsRow]) -> bytes:
    """The result file's content as OpenAI serves it: the CSV, base64-encoded."""
    return base64.b64encode(results_csv(rows))
