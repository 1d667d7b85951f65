"""Prometheus metrics: one registry that the API and the worker both count into (served at
`/metrics` by `service.health`, and on `BURRO_METRICS_PORT` by a worker).

Every process keeps its own counters and is scraped on its own (each API replica at `/metrics`,
each worker on `BURRO_METRICS_PORT`); Prometheus sums them. Burro never runs several server
processes behind one port, so prometheus_client's multiprocess mode is not needed. The gauges read
from Redis (queue depth, unfinished jobs by status) are the same from every replica: aggregate
them with `max`, not `sum`.

Labels never carry ids, tenants or raw paths: routes are templates (`/v1/jobs/{job_id}`), so the
number of series stays bounded.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from redis.asyncio import Redis

from service.jobs.records import JOBS as JOBS_COLLECTION
from service.jobs.records import TRANSITIONS, UNFINISHED_KEY, Job
from service.queue import QUEUE_NAME
from service.store import Collection

log = structlog.get_logger("burro.metrics")

# What this process counts (the API's and the worker's own).
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)
# What Redis holds, refreshed by the API's `/metrics` at each scrape. A registry of its own so
# that a worker, which never refreshes them, does not report stale zeros.
REDIS_REGISTRY = CollectorRegistry(auto_describe=True)

METRICS_PATH = "/metrics"
# A request that matched no route (404) has no template; it must not become a label of its own.
UNMATCHED_ROUTE = "<unmatched>"
# Reading every unfinished job at each scrape is bounded: past this many, the gauge is partial.
MAX_JOBS_SCANNED = 10_000

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)

HTTP_REQUESTS = Counter(
    "burro_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "burro_http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of its body), by route template and method.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
JOBS = Gauge(
    "burro_jobs",
    "Jobs not yet finished, by status (read from Redis at scrape time).",
    ["status"],
    registry=REDIS_REGISTRY,
)
JOB_TRANSITIONS = Counter(
    "burro_job_transitions",
    "Job status changes made by this process, by the status moved to.",
    ["status"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "burro_queue_depth",
    "Background jobs waiting in the arq queue, deferred ones included (read at scrape time).",
    registry=REDIS_REGISTRY,
)
UPSTREAM_CALLS = Counter(
    "burro_upstream_calls",
    "Calls to an upstream provider, by provider, operation and outcome ('ok' or an error code).",
    ["provider", "operation", "outcome"],
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "burro_upstream_errors",
    "Upstream calls that failed, by provider and outcome (the error code).",
    ["provider", "outcome"],
    registry=REGISTRY,
)
UPSTREAM_LATENCY = Histogram(
    "burro_upstream_call_duration_seconds",
    "Time an upstream call took, by provider and operation.",
    ["provider", "operation"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "burro_webhook_attempts",
    "Webhook delivery attempts, by outcome ('delivered', 'http_error', 'timeout', …).",
    ["outcome"],
    registry=REGISTRY,
)
PROXY_OVERHEAD = Histogram(
    "burro_proxy_overhead_seconds",
    "Time Burro adds to a proxied chat completion (its total minus the upstream's).",
    buckets=_OVERHEAD_BUCKETS,
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "burro_rate_limited_requests",
    "Requests refused with 429 by the per-tenant rate limit.",
    registry=REGISTRY,
)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered HTTP request and its latency (called by the request middleware)."""
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)


def count_upstream_call(
    provider: str, operation: str, outcome: str = "ok", seconds: float | None = None
) -> None:
    """Count one upstream call: `operation` like 'files.create' or 'chat.completions';
    `outcome` is 'ok' or a short error code (bounded set: never a message)."""
    UPSTREAM_CALLS.labels(provider, operation, outcome).inc()
    if outcome != "ok":
        UPSTREAM_ERRORS.labels(provider, outcome).inc()
    if seconds is not None:
        UPSTREAM_LATENCY.labels(provider, operation).observe(seconds)


def count_webhook_attempt(outcome: str) -> None:
    """Count one webhook delivery attempt: 'delivered', 'http_error', 'timeout',
    'connection_error', 'redirect', 'blocked_address' (keep the set small)."""
    WEBHOOK_ATTEMPTS.labels(outcome).inc()


def count_job_transition(status: str) -> None:
    """Count one job moving to `status` (called where a transition is saved)."""
    JOB_TRANSITIONS.labels(status).inc()


def set_jobs_by_status(counts: Mapping[str, int], statuses: Iterable[str] = ()) -> None:
    """Set the unfinished-jobs gauge; every status in `statuses` missing from `counts` is 0."""
    for status in statuses:
        JOBS.labels(status).set(counts.get(status, 0))
    for status, n in counts.items():
        JOBS.labels(status).set(n)


def set_queue_depth(depth: int) -> None:
    QUEUE_DEPTH.set(depth)


def observe_proxy_overhead(seconds: float) -> None:
    """Record what Burro added to one proxied chat completion (total minus upstream time)."""
    PROXY_OVERHEAD.observe(max(seconds, 0.0))


def count_rate_limited() -> None:
    RATE_LIMITED.inc()


async def collect_from_redis(redis: Redis) -> None:
    """Refresh the gauges that live in Redis: queue depth, and unfinished jobs by status.

    prometheus_client's collectors are synchronous, so the `/metrics` handler calls this
    (asynchronously) right before rendering.
    """
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(QUEUE_NAME)
        pipe.srandmember(UNFINISHED_KEY, MAX_JOBS_SCANNED)
        depth, raw_ids = await pipe.execute()
    set_queue_depth(int(depth))
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids]
    jobs = await Collection(redis, JOBS_COLLECTION, Job).get_many(ids)
    counts: Tally[str] = Tally(job.status for job in jobs if job is not None and not job.terminal)
    set_jobs_by_status(counts, (s for s, moves in TRANSITIONS.items() if moves))


def render() -> bytes:
    """This process's metrics and Redis' gauges in Prometheus' text format."""
    return generate_latest(REGISTRY) + generate_latest(REDIS_REGISTRY)


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> Any:  # noqa: S104 - scraped from other hosts
    """Serve this process's metrics on `port` from a daemon thread (the worker has no HTTP
    server of its own). Returns the server, whose `shutdown()` stops it."""
    server, thread = start_http_server(port, addr=addr, registry=REGISTRY)
    assert isinstance(thread, threading.Thread)
    log.info("metrics.serving", port=server.server_port)
    return server
