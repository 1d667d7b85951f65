"""`/v1/datasets`: upload (checked and priced as it streams), validate, list, read, delete."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
import structlog
from litestar import Request, Response, Router, delete, get, post
from litestar.di import Provide
from litestar.exceptions import InternalServerException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.response import File

from service.context import Resources, Tenant, UsesResources, provide_tenant, today
from service.datasets.checks import DatasetCheck, DatasetReport, UnknownModel
from service.datasets.format_hints import format_hint, with_hint
from service.datasets.intake import FEED_BYTES, RAW_TYPES, Intake, read_upload
from service.datasets.local_tokens import TokenizerUnavailable
from service.datasets.names import (
    DEFAULT_NAME,
    check_name,
    content_disposition,
    download_name,
    uploaded_file_name,
)
from service.datasets.records import (
    Dataset,
    DatasetKind,
    DatasetList,
    DatasetOut,
    content_path,
    sha_index_key,
    users_key,
)
from service.errors import BadRequest, Conflict, InvalidDataset, Unprocessable
from service.idempotency import IdempotencyKeys, fingerprint
from service.ids import new_id
from service.model_help import unknown_for_training
from service.store import Collection, now

log = structlog.get_logger("burro.datasets")


def datasets(resources: Resources) -> Collection[Dataset]:
    return Collection(resources.redis, "datasets", Dataset)


_BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)


_UPLOAD_BODY = RequestBody(
    required=True,
    description="The JSONL file, raw or as the field `file` of a multipart form.",
    content={
        **{media: OpenAPIMediaType(schema=_BINARY) for media in sorted(RAW_TYPES)},
        "multipart/form-data": OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                required=["file"],
                properties={
                    "file": _BINARY,
                    "name": Schema(type=OpenAPIType.STRING),
                    "kind": Schema(type=OpenAPIType.STRING, enum=["chat", "preference"]),
                },
            )
        ),
    },
)


@dataclass
class UploadOperation(Operation):
    """Documents the streamed body, which the handler reads itself (Litestar passes None)."""

    def __post_init__(self) -> None:
        if self.request_body is None:
            self.request_body = _UPLOAD_BODY


async def check_upload(
    request: Request[Any, Any, Any],
    resources: Resources,
    kind: DatasetKind | None,
    models: list[str] | None,
    *,
    keep: bool,
) -> tuple[Intake, DatasetReport]:
    """Stream the request body through the checks (and to a spool file when `keep`)."""
    settings = resources.settings
    spool = settings.data_dir / "datasets" if keep else None
    try:
        # Off the event loop: a local model's tokenizer is read from its files on first use.
        check = await anyio.to_thread.run_sync(
            functools.partial(
                DatasetCheck,
                kind=kind,
                models=resources.models,
                estimate_models=models or None,
                today=today(),
                trainer_usd_per_hour=settings.trainer_usd_per_hour,
            )
        )
    except UnknownModel:  # `?model=` names a model the price table does not know
        unknown = next(m for m in models or () if resources.models.get(m) is None)
        detail = unknown_for_training(resources.models, unknown, today())
        raise Unprocessable(f"model: {detail}", param="model") from None
    except TokenizerUnavailable as exc:  # `?model=` names a local model that cannot count here
        raise Unprocessable(
            f"model: {exc}; its examples cannot be counted.", param="model"
        ) from None
    intake = Intake(check, spool, settings.max_dataset_bytes)
    try:
        await read_upload(
            request.headers.get("content-type"),
            request.content_length,
            request.stream(),
            intake,
        )
        report = await anyio.to_thread.run_sync(intake.finish)
        report = with_hint(report, format_hint(bytes(intake.head), report))
    except InternalServerException:
        # Litestar's word for a client that hung up mid-body.
        intake.discard()
        raise BadRequest("The body ended before the upload was complete.") from None
    except BaseException:
        intake.discard()
        raise
    form_kind = intake.fields.get("kind")
    if kind is None and form_kind and form_kind != report.kind:
        intake.discard()
        raise BadRequest(
            f"The form says kind={form_kind!r} after the file, whose first example is "
            f"{report.kind!r}: send 'kind' before 'file', or as a query parameter."
        )
    return intake, report


@post(
    "/",
    status_code=201,
    request_max_body_size=None,  # enforced while streaming, against the settings
    operation_class=UploadOperation,
    summary="Upload a dataset: checked, counted and priced as it streams in",
    responses={
        200: ResponseSpec(data_container=DatasetOut, description="Already stored for this tenant"),
    },
)
async def create_dataset(
    request: Request[Any, Any, Any],
    resources: UsesResources,
    tenant: Tenant,
    name: FromQuery[str | None] = None,
    kind: FromQuery[DatasetKind | None] = None,
    model: FromQuery[list[str] | None] = None,
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> Response[DatasetOut]:
    if name is not None:
        check_name(name)  # before the body: a bad name costs the caller no upload
    intake, report = await check_upload(request, resources, kind, model, keep=True)
    try:
        if not report.valid:
            failing = sum(report.error_counts.values())
            hint = format_hint(bytes(intake.head), report)
            raise InvalidDataset(
                f"The dataset has {failing} error(s); nothing was stored."
                + (f" {hint}" if hint else ""),
                errors=report.errors,
                error_counts=report.error_counts,
            )
        form_name = intake.fields.get("name")
        file_name = uploaded_file_name(intake.filename) if intake.filename else None
        display_name = check_name(name or form_name or file_name or DEFAULT_NAME)
        keys = IdempotencyKeys(resources.redis)
        request_fingerprint = fingerprint(report.sha256, display_name, kind or "", *(model or []))
        if idempotency_key is not None:
            replay = await keys.begin(tenant, "datasets", idempotency_key, request_fingerprint)
            if replay is not None:
                return Response(
                    DatasetOut.of(datasets(resources).decode(replay.body), model),
                    status_code=replay.status_code,
                )
        try:
            dataset, created = await store_dataset(resources, tenant, display_name, report, intake)
        except BaseException:
            if idempotency_key is not None:
                await keys.abandon(tenant, "datasets", idempotency_key)
            raise
        if idempotency_key is not None:
            await keys.finish(
                tenant,
                "datasets",
                idempotency_key,
                request_fingerprint,
                201 if created else 200,
                datasets(resources).encode(dataset),
            )
    finally:
        intake.discard()
    log.info("dataset.created" if created else "dataset.reused", dataset=dataset.id, tenant=tenant)
    return Response(DatasetOut.of(dataset, model), status_code=201 if created else 200)


async def store_dataset(
    resources: Resources, tenant: str, name: str, report: DatasetReport, intake: Intake
) -> tuple[Dataset, bool]:
    """Keep the spooled file under a new id, unless this tenant already has the same bytes."""
    collection = datasets(resources)
    dataset = Dataset.from_report(
        report, id=new_id("ds_"), tenant=tenant, name=name, created_at=now()
    )
    sha_key = sha_index_key(tenant, report.sha256)
    if not await resources.redis.set(sha_key, dataset.id, nx=True):
        existing_id = await resources.redis.get(sha_key)
        existing = await collection.get(existing_id.decode()) if existing_id else None
        if existing is not None:
            return existing, False
        await resources.redis.set(sha_key, dataset.id)  # the index outlived its dataset
    assert intake.path is not None
    target = content_path(resources.settings.data_dir, dataset.id)
    await anyio.to_thread.run_sync(os.replace, intake.path, target)
    intake.path = None
    await collection.save(dataset)
    return dataset, True


async def dataset_from_bytes(
    resources: Resources, tenant: str, name: str, content: bytes, *, kind: DatasetKind
) -> tuple[Dataset, bool]:
    """Store `content` (JSONL that Burro wrote, like an alias' captures) as the tenant's
    dataset, checked exactly as an upload is: InvalidDataset, and nothing stored, when it
    fails. Returns (dataset, created); the same bytes again give the dataset stored before."""
    check = DatasetCheck(kind=kind, models=resources.models, today=today())
    intake = Intake(
        check, resources.settings.data_dir / "datasets", resources.settings.max_dataset_bytes
    )
    try:

        def check_all() -> DatasetReport:
            for start in range(0, len(content), FEED_BYTES):
                intake.feed(content[start : start + FEED_BYTES])
            return intake.finish()

        report = await anyio.to_thread.run_sync(check_all)
        if not report.valid:
            failing = sum(report.error_counts.values())
            raise InvalidDataset(
                f"The dataset has {failing} error(s); nothing was stored.",
                errors=report.errors,
                error_counts=report.error_counts,
            )
        return await store_dataset(resources, tenant, name, report, intake)
    finally:
        intake.discard()


@post(
    "/validate",
    status_code=200,
    request_max_body_size=None,
    operation_class=UploadOperation,
    summary="Run the dataset checks and store nothing",
)
async def validate_dataset(
    request: Request[Any, Any, Any],
    resources: UsesResources,
    tenant: Tenant,
    kind: FromQuery[DatasetKind | None] = None,
    model: FromQuery[list[str] | None] = None,
) -> DatasetReport:
    _, report = await check_upload(request, resources, kind, model, keep=False)
    return report


@get("/", summary="List datasets, newest first")
async def list_datasets(
    resources: UsesResources,
    tenant: Tenant,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    after: FromQuery[str | None] = None,
) -> DatasetList:
    page = await datasets(resources).page(tenant, limit=limit, after=after)
    return DatasetList(
        object="list", data=[DatasetOut.of(d) for d in page.data], has_more=page.has_more
    )


@get("/{dataset_id:str}", summary="Get a dataset")
async def get_dataset(
    resources: UsesResources,
    tenant: Tenant,
    dataset_id: FromPath[str],
    model: FromQuery[list[str] | None] = None,
) -> DatasetOut:
    return DatasetOut.of(await datasets(resources).get_for(tenant, dataset_id), model)


@get(
    "/{dataset_id:str}/content",
    summary="The dataset's bytes, as stored",
    media_type="application/jsonl",
)
async def get_dataset_content(
    resources: UsesResources, tenant: Tenant, dataset_id: FromPath[str]
) -> File:
    dataset = await datasets(resources).get_for(tenant, dataset_id)
    return File(
        path=content_path(resources.settings.data_dir, dataset.id),
        filename=download_name(dataset.name),
        media_type="application/jsonl",
        headers={"content-disposition": content_disposition(dataset.name)},
    )


@delete("/{dataset_id:str}", summary="Delete a dataset (not while an unfinished job uses it)")
async def delete_dataset(
    resources: UsesResources, tenant: Tenant, dataset_id: FromPath[str]
) -> None:
    await remove_dataset(resources, tenant, dataset_id)


async def remove_dataset(resources: Resources, tenant: str, dataset_id: str) -> None:
    """Delete the tenant's dataset and its bytes; Conflict while an unfinished job uses it."""
    collection = datasets(resources)
    dataset = await collection.get_for(tenant, dataset_id)
    if await resources.redis.exists(users_key(dataset.id)):
        raise Conflict(f"Dataset {dataset.id} is used by an unfinished job.")
    await collection.delete(dataset)
    await resources.redis.delete(sha_index_key(tenant, dataset.sha256))
    content_path(resources.settings.data_dir, dataset.id).unlink(missing_ok=True)
    log.info("dataset.deleted", dataset=dataset.id, tenant=tenant)


router = Router(
    path="/v1/datasets",
    route_handlers=[
        create_dataset,
        validate_dataset,
        list_datasets,
        get_dataset,
        get_dataset_content,
        delete_dataset,
    ],
    dependencies={"tenant": Provide(provide_tenant)},
    tags=["datasets"],
)
