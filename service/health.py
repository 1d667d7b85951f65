"""Liveness, readiness and metrics, for orchestrators, load balancers and Prometheus."""

from __future__ import annotations

import structlog
from litestar import Response, Router, get
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from service import metrics
from service.context import UsesResources

log = structlog.get_logger("burro.metrics")


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


@get(
    metrics.METRICS_PATH,
    summary="Prometheus metrics of this process",
    security=[],
    tags=["operations"],
    media_type=CONTENT_TYPE_PLAIN_0_0_4,
)
async def metrics_endpoint(resources: UsesResources) -> Response[bytes]:
    try:
        await metrics.collect_from_redis(resources.redis)
    except Exception as exc:  # Redis down: still serve this process's counters
        log.warning("metrics.redis_unavailable", error=type(exc).__name__)
    return Response(metrics.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
