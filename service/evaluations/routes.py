"""`/v1/evaluations`: start an evaluation of a succeeded job (run by a worker), read it with its
rows and summary, list them."""

from __future__ import annotations

from typing import Annotated

import structlog
from litestar import Router, get, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from service import tasks
from service.context import Tenant, UsesResources, provide_tenant
from service.evaluations.records import EvaluationCreate, EvaluationList, EvaluationOut
from service.evaluations.runner import create_evaluation, evaluations, load_rows, rows_done

log = structlog.get_logger("burro.evaluations")

_MAX_BODY = 64 * 1024  # a request is a few ids


@post("/", status_code=202, summary="Evaluate a succeeded job's model against a baseline")
async def create(
    resources: UsesResources, tenant: Tenant, data: JSONBody[EvaluationCreate]
) -> EvaluationOut:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    evaluation = await create_evaluation(
        resources.redis,
        resources.settings,
        resources.models,
        tenant=tenant,
        data=data,
        request_id=request_id,
    )
    # The record first, then the work.
    await resources.queue.enqueue(tasks.RUN_EVALUATION, evaluation.id)
    return EvaluationOut.of(evaluation, done=0)


@get("/", summary="List evaluations, newest first (without their rows)")
async def list_evaluations(
    resources: UsesResources,
    tenant: Tenant,
    job: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    after: FromQuery[str | None] = None,
) -> EvaluationList:
    page = await evaluations(resources.redis).page(
        tenant, limit=limit, after=after, where=None if job is None else (lambda e: e.job == job)
    )
    data = [EvaluationOut.of(e, done=await rows_done(resources.redis, e.id)) for e in page.data]
    return EvaluationList(object="list", data=data, has_more=page.has_more)


@get("/{evaluation_id:str}", summary="Get an evaluation: its rows, side by side, and summary")
async def get_evaluation(
    resources: UsesResources, tenant: Tenant, evaluation_id: FromPath[str]
) -> EvaluationOut:
    evaluation = await evaluations(resources.redis).get_for(tenant, evaluation_id)
    rows = await load_rows(resources.redis, evaluation.id)
    return EvaluationOut.of(evaluation, done=len(rows), rows=rows)


router = Router(
    path="/v1/evaluations",
    route_handlers=[create, list_evaluations, get_evaluation],
    dependencies={"tenant": Provide(provide_tenant)},
    request_max_body_size=_MAX_BODY,
    tags=["evaluations"],
)
