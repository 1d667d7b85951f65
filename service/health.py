"""Liveness and readiness, for orchestrators and load balancers."""

from __future__ import annotations

from litestar import Response, Router, get
from litestar.openapi.datastructures import ResponseSpec

from service.context import UsesResources


@get("/live", summary="The process is up", security=[])
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    summary="Redis answers and a worker is alive",
    security=[],
    responses={
        503: ResponseSpec(
            data_container=dict[str, object],
            description="Redis or every worker is away",
            generate_examples=False,
        )
    },
)
async def ready(resources: UsesResources) -> Response[dict[str, object]]:
    checks: dict[str, object] = {}
    try:
        checks["redis"] = bool(await resources.redis.ping())
    except Exception as exc:  # any failure to reach Redis means not ready
        checks["redis"] = False
        checks["redis_error"] = type(exc).__name__
    checks["worker"] = bool(checks["redis"]) and await resources.queue.worker_alive()
    ok = bool(checks["redis"]) and bool(checks["worker"])
    return Response(
        {"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503
    )


router = Router(path="/health", route_handlers=[live, ready], tags=["operations"])
