"""`/v1/aliases`: point an alias at a succeeded job's model, read it with its history, roll it
back, remove it (the aliases themselves: `service.inference.aliases`)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import structlog
from litestar import Response, Router, delete, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from service.context import Tenant, UsesResources, provide_tenant
from service.errors import NotFound
from service.inference.aliases import (
    Alias,
    check_name,
    delete_alias,
    get_alias,
    list_aliases,
    point_alias,
    rollback_alias,
    succeeded_target,
)
from service.inference.model_names import check_alias_name

log = structlog.get_logger("burro.aliases")


# --- Wire ------------------------------------------------------------------------------------


class AliasPut(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `PUT /v1/aliases/{name}`."""

    job: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


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
    created_at: int
    updated_at: int
    can_roll_back: bool
    history: list[AliasHistoryOut]

    @classmethod
    def of(cls, alias: Alias) -> AliasOut:
        return cls(
            object="alias",
            name=alias.name,
            job=alias.job,
            model=alias.model,
            created_at=alias.created_at,
            updated_at=alias.updated_at,
            can_roll_back=bool(alias.previous),
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
    summary="Point an alias at a succeeded job's model (created if new)",
    status_code=200,
    request_max_body_size=4096,
)
async def put_alias_route(
    resources: UsesResources, tenant: Tenant, name: FromPath[str], data: JSONBody[AliasPut]
) -> Response[AliasOut]:
    check_name(name)
    check_alias_name(name, resources.models, resources.settings.allowed_base_models)
    target = await succeeded_target(resources.redis, tenant, data.job)
    alias, created = await point_alias(
        resources.redis, tenant=tenant, name=name, target=target, reason="put"
    )
    return Response(AliasOut.of(alias), status_code=201 if created else 200)


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
        object="list", data=[AliasOut.of(a) for a in page], has_more=len(aliases) > start + limit
    )


@get("/{name:str}", summary="Get an alias and its history")
async def get_alias_route(
    resources: UsesResources, tenant: Tenant, name: FromPath[str]
) -> AliasOut:
    alias = await get_alias(resources.redis, tenant, name)
    if alias is None:
        raise NotFound(f"No alias {name!r}.")
    return AliasOut.of(alias)


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
    return AliasOut.of(await rollback_alias(resources.redis, tenant, name))


router = Router(
    path="/v1/aliases",
    route_handlers=[
        put_alias_route,
        list_aliases_route,
        get_alias_route,
        delete_alias_route,
        rollback_alias_route,
    ],
    dependencies={"tenant": Provide(provide_tenant)},
    tags=["aliases"],
)
