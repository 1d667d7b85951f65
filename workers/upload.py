"""Dataset → upstream file: a job's datasets go to its provider once (reused by later jobs)."""

from __future__ import annotations

import anyio
import structlog
from openai import AsyncOpenAI
from redis.asyncio import Redis

from service import tasks
from service.datasets.records import content_path
from service.jobs.records import TERMINAL
from service.jobs.transitions import InvalidTransition, jobs, redis_lock, transition, update
from service.store import PREFIX
from workers import local_jobs
from workers.context import WorkerContext

log = structlog.get_logger("burro.worker")

_UPLOAD_LOCK_WAIT = 20.0


class Busy(Exception):
    """Another worker holds what this one needs: try again in about `retry_after` seconds (when
    its lock is released or expires). Not an upstream failure."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def uploads_key(dataset_id: str) -> str:
    """Hash provider -> upstream file id: where a dataset's bytes already are."""
    return f"{PREFIX}:datasets:uploads:{dataset_id}"


async def uploaded_file(redis: Redis, dataset_id: str, provider: str) -> str | None:
    raw = await redis.hget(uploads_key(dataset_id), provider)  # type: ignore[misc]
    return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


async def ensure_uploaded(
    w: WorkerContext, client: AsyncOpenAI, provider: str, dataset_id: str
) -> str:
    """The upstream file id of `dataset_id` on `provider`, uploading it the first time."""
    redis = w.redis
    file_id = await uploaded_file(redis, dataset_id, provider)
    if file_id is not None:
        return file_id
    try:
        async with redis_lock(
            redis,
            f"{PREFIX}:datasets:upload-lock:{dataset_id}:{provider}",
            ttl_ms=w.upload_lock_ms,  # others using the same dataset wait
            wait=_UPLOAD_LOCK_WAIT,
        ):
            file_id = await uploaded_file(redis, dataset_id, provider)
            if file_id is not None:
                return file_id
            file_id = await upload_file(w, client, dataset_id)
            await redis.hsetnx(uploads_key(dataset_id), provider, file_id)  # type: ignore[misc]
            log.info("dataset.uploaded", dataset=dataset_id, provider=provider, file=file_id)
    except TimeoutError:
        raise Busy(f"dataset {dataset_id} is being uploaded by another worker") from None
    return await uploaded_file(redis, dataset_id, provider) or file_id


async def upload_file(w: WorkerContext, client: AsyncOpenAI, dataset_id: str) -> str:
    """Send the dataset's bytes: the Files API, or the Uploads API in parts when it is large."""
    path = content_path(w.settings.data_dir, dataset_id)
    size = (await anyio.Path(path).stat()).st_size
    filename = f"{dataset_id}.jsonl"
    if size >= w.upload_threshold:
        upload = await client.uploads.upload_file_chunked(
            file=path,  # named {dataset_id}.jsonl
            bytes=size,
            mime_type="application/jsonl",
            purpose="fine-tune",
            part_size=w.upload_part_bytes,
        )
        if upload.file is None:
            raise RuntimeError(f"upload {upload.id} completed without a file")
        return upload.file.id
    content = await anyio.Path(path).read_bytes()
    created = await client.files.create(file=(filename, content), purpose="fine-tune")
    return str(created.id)


async def upload_job_files(w: WorkerContext, job_id: str) -> None:
    """Put the job's datasets upstream, then hand over to the create step. Safe to repeat."""
    job = await jobs(w.redis).get(job_id)
    if job is None or job.status in TERMINAL:
        return
    if job.distillation is not None and job.distillation.phase == "teacher":
        # The training set is the teacher's answers, not there yet: they come first.
        await w.queue.enqueue(tasks.ASK_TEACHER, job_id)
        return
    if w.settings.trains_locally(job.provider):
        await local_jobs.start(w, job)
        return
    if job.upstream_job_id is None and not (job.training_file and job.status == "uploading"):
        if job.status == "pending":
            try:
                job = await transition(
                    w.queue, job_id, "uploading", message=f"Uploading files to {job.provider}"
                )
            except InvalidTransition:
                return  # cancelled meanwhile
        client = w.providers.client(job.provider)
        training = await ensure_uploaded(w, client, job.provider, job.training_dataset)
        validation = None
        if job.validation_dataset is not None:
            validation = await ensure_uploaded(w, client, job.provider, job.validation_dataset)
        job = await update(w.queue, job_id, training_file=training, validation_file=validation)
    await w.queue.enqueue(tasks.CREATE_UPSTREAM_JOB, job_id)
