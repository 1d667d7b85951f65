"""`/v1/files`, OpenAI's files API over Burro's records: a `fine-tune` file is a dataset (the same
streamed checks, the same dedupe, the same record as `/v1/datasets` shows), and a job's result
file (`fine-tune-results`) is a view of its training curve."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import structlog
from litestar import Request, Response, Router, delete, get, post
from litestar.di import Provide
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import File
from redis.asyncio import Redis

from service.context import Resources, Tenant, UsesResources, provide_tenant
from service.datasets.checks import DatasetReport
from service.datasets.names import (
    InvalidName,
    check_name,
    content_disposition,
    download_name,
    uploaded_file_name,
)
from service.datasets.records import Dataset, content_path
from service.datasets.routes import check_upload, datasets, remove_dataset, store_dataset
from service.errors import Conflict
from service.jobs.events import load_metrics
from service.jobs.records import Job
from service.jobs.transitions import jobs
from service.openai_compat import results
from service.openai_compat.errors import OpenAIError, file_not_found, invalid_request
from service.openai_compat.wire import FileDeleted, FileList, FileObject, file_of_dataset
from service.store import Collection

log = structlog.get_logger("burro.openai_compat")

# What Burro keeps: fine-tuning data. Results are made by jobs, never uploaded.
PURPOSES_KEPT = ("fine-tune",)
# The failing lines an invalid file's message names (the rest are counted by code).
_LINES_NAMED = 5
# OpenAI's limits for a list of files: up to 10,000 at once, all of them by default.
MAX_FILES_PER_PAGE = 10_000
_SCAN_BATCH = 200

_BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
_UPLOAD_BODY = RequestBody(
    required=True,
    description="OpenAI's upload form: the JSONL file in `file`, and `purpose` (`fine-tune`).",
    content={
        "multipart/form-data": OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                required=["file", "purpose"],
                properties={
                    "file": _BINARY,
                    "purpose": Schema(type=OpenAPIType.STRING, enum=list(PURPOSES_KEPT)),
                },
            )
        )
    },
)


@dataclass
class FileUploadOperation(Operation):
    """Documents the streamed form, which the handler reads itself."""

    def __post_init__(self) -> None:
        if self.request_body is None:
            self.request_body = _UPLOAD_BODY


def _file_name(filename: str | None) -> str:
    """The upload's file name as the dataset's name, by the datasets' rules (its last path
    part; no control characters or separators): a 400 on `file` otherwise."""
    if not filename:
        return "file.jsonl"
    try:
        return check_name(uploaded_file_name(filename))
    except InvalidName as exc:
        message = f"Invalid file name: {exc.detail.removeprefix('name: ')}"
        raise invalid_request(message, param="file", code="invalid_file_name") from None


def _invalid_file_message(report: DatasetReport) -> str:
    named = "; ".join(
        f"line {e.line}: {e.code} ({e.message})" if e.line else f"{e.code} ({e.message})"
        for e in report.errors[:_LINES_NAMED]
    )
    counts = ", ".join(f"{code} x{n}" for code, n in sorted(report.error_counts.items()))
    return (
        f"The file is not valid fine-tuning data and was not stored. First problems: {named}. "
        f"All problems by code: {counts}."
    )


@post(
    "/",
    status_code=200,
    request_max_body_size=None,  # enforced while streaming, against the settings
    operation_class=FileUploadOperation,
    summary="Upload a file (OpenAI's files API): a fine-tune file is checked as it streams in",
)
async def create_file(
    request: Request[Any, Any, Any], resources: UsesResources, tenant: Tenant
) -> FileObject:
    intake, report = await check_upload(request, resources, None, None, keep=True)
    try:
        purpose = intake.fields.get("purpose")
        if not purpose:
            raise invalid_request(
                "Missing required parameter: 'purpose'.", param="purpose", code="missing_required"
            )
        if purpose not in PURPOSES_KEPT:
            raise invalid_request(
                f"Burro keeps files for fine-tuning only: purpose {purpose!r} is not one of "
                f"{', '.join(repr(p) for p in PURPOSES_KEPT)} ('fine-tune-results' files are "
                "made by jobs, not uploaded).",
                param="purpose",
                code="unsupported_purpose",
            )
        if not report.valid:
            raise invalid_request(_invalid_file_message(report), param="file", code="invalid_file")
        name = _file_name(intake.filename)
        dataset, created = await store_dataset(resources, tenant, name, report, intake)
    finally:
        intake.discard()
    log.info("file.created" if created else "file.reused", file=dataset.id, tenant=tenant)
    return file_of_dataset(dataset)


# --- Listing: datasets and result files, merged in one order -----------------------------------

Key = tuple[float, str]  # (creation time in the index, member): the order of a page
R = TypeVar("R")


async def _scan(redis: Redis, index: str, *, desc: bool, cursor: Key | None) -> AsyncIterator[Key]:
    """The members of a per-tenant index in order, strictly after `cursor`, by batches."""
    bound: float | str = cursor[0] if cursor is not None else ("+inf" if desc else "-inf")
    offset = 0
    while True:
        if desc:
            rows = await redis.zrevrangebyscore(
                index, bound, "-inf", start=offset, num=_SCAN_BATCH, withscores=True
            )
        else:
            rows = await redis.zrangebyscore(
                index, bound, "+inf", start=offset, num=_SCAN_BATCH, withscores=True
            )
        offset += len(rows)
        for member, score in rows:
            key = (float(score), member.decode() if isinstance(member, bytes) else str(member))
            if cursor is not None and (key >= cursor if desc else key <= cursor):
                continue  # the cursor itself, and its equals in time that came before it
            yield key
        if len(rows) < _SCAN_BATCH:
            return


async def _records(
    keys: AsyncIterator[Key],
    load: Callable[[list[str]], Awaitable[list[R | None]]],
    show: Callable[[list[R | None]], Awaitable[list[FileObject | None]]],
) -> AsyncIterator[tuple[Key, FileObject]]:
    """The files behind index keys, loading a batch of records at a time; `show` turns records
    into their files (None for a record that is no file, or is gone)."""
    batch: list[Key] = []

    async def flush() -> list[tuple[Key, FileObject]]:
        shown = await show(await load([member for _, member in batch]))
        return [(key, f) for key, f in zip(batch, shown, strict=True) if f is not None]

    async for key in keys:
        batch.append(key)
        if len(batch) >= _SCAN_BATCH:
            for item in await flush():
                yield item
            batch = []
    if batch:
        for item in await flush():
            yield item


def _dataset_files(
    redis: Redis, tenant: str, *, desc: bool, cursor: Key | None
) -> AsyncIterator[tuple[Key, FileObject]]:
    collection = Collection(redis, "datasets", Dataset)

    async def show(found: list[Dataset | None]) -> list[FileObject | None]:
        return [None if d is None else file_of_dataset(d) for d in found]

    keys = _scan(redis, collection.index_key(tenant), desc=desc, cursor=cursor)
    return _records(keys, collection.get_many, show)


def _result_files(
    redis: Redis, tenant: str, *, desc: bool, cursor: Key | None
) -> AsyncIterator[tuple[Key, FileObject]]:
    collection = jobs(redis)

    async def show(found: list[Job | None]) -> list[FileObject | None]:
        present = [j for j in found if j is not None]
        ids = await results.result_files(redis, tenant, present)
        with_files = [j for j in present if ids[j.id]]
        files = dict(
            zip(
                [j.id for j in with_files],
                await asyncio.gather(*(_result_file(redis, j) for j in with_files)),
                strict=True,
            )
        )
        return [None if j is None else files.get(j.id) for j in found]

    keys = _scan(redis, collection.index_key(tenant), desc=desc, cursor=cursor)
    return _records(keys, collection.get_many, show)


async def _result_file(redis: Redis, job: Job) -> FileObject:
    rows = (await load_metrics(redis, job.id)).data
    return FileObject(
        id=results.result_file_id(job.id),
        bytes=len(results.encoded_results(rows)),
        created_at=job.finished_at or job.updated_at,
        filename=results.RESULT_FILENAME,
        purpose="fine-tune-results",
    )


async def _merge(
    sources: Sequence[AsyncIterator[tuple[Key, FileObject]]], *, desc: bool, count: int
) -> list[FileObject]:
    """The first `count` files of several ordered sources, in one order."""
    heads = [await anext(s, None) for s in sources]
    merged: list[FileObject] = []
    while len(merged) < count:
        live = [(h, i) for i, h in enumerate(heads) if h is not None]
        if not live:
            break
        pick = (max if desc else min)(live, key=lambda item: item[0][0])
        head, index = pick
        merged.append(head[1])
        heads[index] = await anext(sources[index], None)
    return merged


async def _cursor(resources: Resources, tenant: str, after: str) -> Key:
    """Where a page starts: the index key of the file `after` (400 when there is none)."""
    job_id = results.job_of_result_file(after)
    if job_id is not None:
        job = await jobs(resources.redis).get(job_id)
        if job is not None and job.tenant == tenant:
            return (float(job.created_at), job.id)
    else:
        dataset = await datasets(resources).get(after)
        if dataset is not None and dataset.tenant == tenant:
            return (float(dataset.created_at), dataset.id)
    raise invalid_request(f"No file {after!r} to page after.", param="after", code="invalid_after")


@get("/", summary="List files (OpenAI's files API): fine-tune files and jobs' result files")
async def list_files(
    resources: UsesResources,
    tenant: Tenant,
    purpose: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_FILES_PER_PAGE)] = MAX_FILES_PER_PAGE,
    after: FromQuery[str | None] = None,
    order: FromQuery[Literal["asc", "desc"]] = "desc",
) -> FileList:
    redis, desc = resources.redis, order == "desc"
    cursor = None if after is None else await _cursor(resources, tenant, after)
    sources = []
    if purpose in (None, "fine-tune"):
        sources.append(_dataset_files(redis, tenant, desc=desc, cursor=cursor))
    if purpose in (None, "fine-tune-results"):
        sources.append(_result_files(redis, tenant, desc=desc, cursor=cursor))
    found = await _merge(sources, desc=desc, count=limit + 1)
    data = found[:limit]
    return FileList(
        data=data,
        has_more=len(found) > limit,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )


# --- One file ----------------------------------------------------------------------------------


async def _find(resources: Resources, tenant: str, file_id: str) -> Dataset | Job:
    """The tenant's dataset, or the job whose result file `file_id` is (404 otherwise)."""
    job_id = results.job_of_result_file(file_id)
    if job_id is not None:
        job = await jobs(resources.redis).get(job_id)
        if job is not None and job.tenant == tenant:
            shown = await results.result_files(resources.redis, tenant, [job])
            if shown[job.id]:
                return job
    else:
        dataset = await datasets(resources).get(file_id)
        if dataset is not None and dataset.tenant == tenant:
            return dataset
    raise file_not_found(file_id)


@get("/{file_id:str}", summary="Get a file (OpenAI's files API)")
async def retrieve_file(
    resources: UsesResources, tenant: Tenant, file_id: FromPath[str]
) -> FileObject:
    found = await _find(resources, tenant, file_id)
    if isinstance(found, Dataset):
        return file_of_dataset(found)
    return await _result_file(resources.redis, found)


@get(
    "/{file_id:str}/content",
    summary="A file's content: a fine-tune file as stored, a result file as base64 CSV",
    media_type="application/octet-stream",
)
async def file_content(
    resources: UsesResources, tenant: Tenant, file_id: FromPath[str]
) -> Response[bytes]:
    found = await _find(resources, tenant, file_id)
    if isinstance(found, Dataset):
        return File(
            path=content_path(resources.settings.data_dir, found.id),
            filename=download_name(found.name),
            media_type="application/octet-stream",
            headers={"content-disposition": content_disposition(found.name)},
        )
    rows = (await load_metrics(resources.redis, found.id)).data
    return Response(results.encoded_results(rows), media_type="application/octet-stream")


@delete(
    "/{file_id:str}",
    status_code=200,
    summary="Delete a file (not a fine-tune file an unfinished job uses)",
)
async def delete_file(
    resources: UsesResources, tenant: Tenant, file_id: FromPath[str]
) -> FileDeleted:
    found = await _find(resources, tenant, file_id)
    if isinstance(found, Dataset):
        try:
            await remove_dataset(resources, tenant, found.id)
        except Conflict:
            raise OpenAIError(
                409,
                f"File {found.id} is used by an unfinished fine-tuning job; cancel the job or "
                "wait for it to end, then delete the file.",
                code="file_in_use",
                param="file_id",
            ) from None
    else:
        await results.forget(resources.redis, found)
        log.info("file.result_deleted", file=file_id, tenant=tenant)
    return FileDeleted(id=file_id, deleted=True)


router = Router(
    path="/v1/files",
    route_handlers=[create_file, list_files, retrieve_file, file_content, delete_file],
    dependencies={"tenant": Provide(provide_tenant)},
    tags=["openai: files"],
)
