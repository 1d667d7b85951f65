"""`/v1/aliases`: point an alias at a succeeded job's model, read it with its history, roll it
back, remove it (the aliases themselves: `service.inference.aliases`)."""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

import msgspec
import structlog
from litestar import Response, Router, delete, get, post, put
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from service.context import Resources, Tenant, UsesResources, provide_tenant
from service.datasets.names import check_name as check_dataset_name
from service.datasets.records import DatasetOut
from service.datasets.routes import dataset_from_bytes
from service.errors import BadRequest, Conflict, NotFound, Unprocessable
from service.inference.aliases import (
    MAX_CAPTURE_AGE_DAYS,
    MAX_CAPTURE_EXAMPLES,
    Alias,
    CaptureChange,
    check_name,
    configure_capture,
    delete_alias,
    get_alias,
    list_aliases,
    point_alias,
    rollback_alias,
    succeeded_target,
)
from service.inference.captures import (
    Captured,
    all_captures,
    clear_captures,
    page_captures,
    training_lines,
)
from service.inference.model_names import check_alias_name
from service.models import ModelTable

log = structlog.get_logger("burro.aliases")


class NothingCaptured(Conflict):
    code = "nothing_captured"


# --- Wire ------------------------------------------------------------------------------------


class AliasPut(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `PUT /v1/aliases/{name}`: where it points (`job`, required to create it)
    and its capture; a field left out keeps its value."""

    job: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    capture: bool | msgspec.UnsetType = msgspec.UNSET
    capture_max_examples: (
        Annotated[int, msgspec.Meta(ge=1, le=MAX_CAPTURE_EXAMPLES)] | msgspec.UnsetType
    ) = msgspec.UNSET
    capture_max_age_days: (
        Annotated[int, msgspec.Meta(ge=1, le=MAX_CAPTURE_AGE_DAYS)] | msgspec.UnsetType
    ) = msgspec.UNSET

    def capture_change(self) -> CaptureChange | None:
        change = CaptureChange(
            capture=self.capture,
            max_examples=self.capture_max_examples,
            max_age_days=self.capture_max_age_days,
        )
        return None if change == CaptureChange() else change


class CaptureOut(msgspec.Struct, frozen=True, kw_only=True):
    """An alias' capture: whether it records its chat traffic, and what it keeps at most."""

    enabled: bool
    max_examples: int
    max_age_days: int


class AliasHistoryOut(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the history; `moved` false: the job was considered and not promoted."""

    job: str
    model: str
    at: int
    reason: str
    moved: bool


class AliasOut(msgspec.Struct, frozen=True, kw_only=True):
    """An alias as callers see it; `history` newest first, `can_roll_back` says whether
    `POST …/rollback` has an earlier target to go to."""

    object: Literal["alias"]
    name: str
    job: str
    model: str
    shutdown: datetime.date | None
    """The day `model` stops answering (its base's shutdown), when one is announced."""
    created_at: int
    updated_at: int
    can_roll_back: bool
    capture: CaptureOut
    history: list[AliasHistoryOut]

    @classmethod
    def of(cls, alias: Alias, models: ModelTable) -> AliasOut:
        return cls(
            object="alias",
            name=alias.name,
            job=alias.job,
            model=alias.model,
            shutdown=models.shutdown(alias.model, alias.base_model),
            created_at=alias.created_at,
            updated_at=alias.updated_at,
            can_roll_back=bool(alias.previous),
            capture=CaptureOut(
                enabled=alias.capture,
                max_examples=alias.capture_max_examples,
                max_age_days=alias.capture_max_age_days,
            ),
            history=[
                AliasHistoryOut(job=h.job, model=h.model, at=h.at, reason=h.reason, moved=h.moved)
                for h in reversed(alias.history)
            ],
        )


class AliasList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[AliasOut]
    has_more: bool


@put(
    "/{name:str}",
    summary="Point an alias at a succeeded job's model (created if new), or set its capture",
    status_code=200,
    request_max_body_size=4096,
)
async def put_alias_route(
    resources: UsesResources, tenant: Tenant, name: FromPath[str], data: JSONBody[AliasPut]
) -> Response[AliasOut]:
    check_name(name)
    check_alias_name(name, resources.models, resources.settings.allowed_base_models)
    capture = data.capture_change()
    if isinstance(data.job, msgspec.UnsetType):
        if capture is None:
            raise Unprocessable("Give `job` (where the alias points), capture settings, or both.")
        alias = await configure_capture(resources.redis, tenant, name, capture)
        return Response(AliasOut.of(alias, resources.models), status_code=200)
    target = await succeeded_target(resources.redis, tenant, data.job)
    alias, created = await point_alias(
        resources.redis, tenant=tenant, name=name, target=target, reason="put", capture=capture
    )
    return Response(AliasOut.of(alias, resources.models), status_code=201 if created else 200)


@get("/", summary="List aliases, newest first")
async def list_aliases_route(
    resources: UsesResources,
    tenant: Tenant,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    after: FromQuery[str | None] = None,
) -> AliasList:
    aliases = await list_aliases(resources.redis, tenant)
    start = 0
    if after is not None:
        names = [a.name for a in aliases]
        if after not in names:
            raise NotFound(f"No alias {after!r} to page after.")
        start = names.index(after) + 1
    page = aliases[start : start + limit]
    return AliasList(
        object="list",
        data=[AliasOut.of(a, resources.models) for a in page],
        has_more=len(aliases) > start + limit,
    )


@get("/{name:str}", summary="Get an alias and its history")
async def get_alias_route(
    resources: UsesResources, tenant: Tenant, name: FromPath[str]
) -> AliasOut:
    alias = await get_alias(resources.redis, tenant, name)
    if alias is None:
        raise NotFound(f"No alias {name!r}.")
    return AliasOut.of(alias, resources.models)


@delete("/{name:str}", summary="Remove an alias", status_code=204)
async def delete_alias_route(resources: UsesResources, tenant: Tenant, name: FromPath[str]) -> None:
    if not await delete_alias(resources.redis, tenant, name):
        raise NotFound(f"No alias {name!r}.")
    log.info("alias.deleted", tenant=tenant, alias=name)


@post(
    "/{name:str}/rollback",
    summary="Point an alias back at its previous target (409 when there is none)",
    status_code=200,
)
async def rollback_alias_route(
    resources: UsesResources, tenant: Tenant, name: FromPath[str]
) -> AliasOut:
    return AliasOut.of(await rollback_alias(resources.redis, tenant, name), resources.models)


# --- Captures --------------------------------------------------------------------------------


class CaptureItem(msgspec.Struct, frozen=True, kw_only=True):
    """One captured exchange: the request's `messages` as sent, and the answer's text."""

    id: str
    object: Literal["alias.capture"]
    created_at: int
    model: str
    messages: list[dict[str, Any]]
    answer: str

    @classmethod
    def of(cls, captured: Captured) -> CaptureItem:
        messages = msgspec.json.decode(captured.messages)
        return cls(
            id=captured.id,
            object="alias.capture",
            created_at=captured.created_at,
            model=captured.model,
            messages=messages if isinstance(messages, list) else [],
            answer=captured.answer,
        )


class CaptureList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[CaptureItem]
    has_more: bool


class CapturesToDataset(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /v1/aliases/{name}/captures/dataset` (optional)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None


async def _alias_of(resources: Resources, tenant: str, name: str) -> Alias:
    alias = await get_alias(resources.redis, tenant, name)
    if alias is None:
        raise NotFound(f"No alias {name!r}.")
    return alias


_STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


@get("/{name:str}/captures", summary="The chat exchanges the alias captured, newest first")
async def list_captures_route(
    resources: UsesResources,
    tenant: Tenant,
    name: FromPath[str],
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    after: FromQuery[str | None] = None,
) -> CaptureList:
    alias = await _alias_of(resources, tenant, name)
    if after is not None and not _STREAM_ID.match(after):
        raise BadRequest("after: give the `id` of the last capture of the previous page.")
    page, has_more = await page_captures(
        resources.redis, tenant, name, alias.capture_max_age_days, limit=limit, after=after
    )
    return CaptureList(object="list", data=[CaptureItem.of(c) for c in page], has_more=has_more)


@delete("/{name:str}/captures", summary="Forget every exchange the alias captured", status_code=204)
async def clear_captures_route(
    resources: UsesResources, tenant: Tenant, name: FromPath[str]
) -> None:
    await _alias_of(resources, tenant, name)
    removed = await clear_captures(resources.redis, tenant, name)
    log.info("alias.captures_cleared", tenant=tenant, alias=name, captures=removed)


@post(
    "/{name:str}/captures/dataset",
    summary="Turn the alias' captures into a chat dataset, checked as an upload is",
    status_code=201,
    request_max_body_size=4096,
    responses={
        200: ResponseSpec(data_container=DatasetOut, description="Already stored for this tenant")
    },
)
async def captures_dataset_route(
    resources: UsesResources,
    tenant: Tenant,
    name: FromPath[str],
    data: JSONBody[CapturesToDataset | None] = None,
) -> Response[DatasetOut]:
    alias = await _alias_of(resources, tenant, name)
    captured = await all_captures(resources.redis, tenant, name, alias.capture_max_age_days)
    if not captured:
        raise NothingCaptured(f"Alias {name!r} has no captured exchanges to make a dataset of.")
    dataset_name = check_dataset_name(
        data.name if data is not None and data.name else f"{name}-captures.jsonl"
    )
    dataset, created = await dataset_from_bytes(
        resources, tenant, dataset_name, training_lines(captured), kind="chat"
    )
    log.info(
        "alias.captures_dataset",
        tenant=tenant,
        alias=name,
        dataset=dataset.id,
        examples=len(captured),
    )
    return Response(DatasetOut.of(dataset), status_code=201 if created else 200)


router = Router(
    path="/v1/aliases",
    route_handlers=[
        put_alias_route,
        list_aliases_route,
        get_alias_route,
        delete_alias_route,
        rollback_alias_route,
        list_captures_route,
        clear_captures_route,
        captures_dataset_route,
    ],
    dependencies={"tenant": Provide(provide_tenant)},
    tags=["aliases"],
)
