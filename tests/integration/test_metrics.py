"""`/metrics`: requests by route template, gauges read from Redis at scrape, counters for others."""

from __future__ import annotations

import httpx
import msgspec
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from service import metrics
from service.jobs.records import JOBS, UNFINISHED_KEY, Job
from service.queue import QUEUE_NAME
from service.store import PREFIX


def scrape(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by name and labels."""
    response = httpx.get(f"{base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests_counted(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], route: str, status: str
) -> float:
    labels = frozenset({("route", route), ("method", "GET"), ("status", status)})
    return samples.get(("burro_http_requests_total", labels), 0.0)


def test_requests_are_counted_by_route_template_never_by_raw_path(
    burro_url: str, client: httpx.Client
) -> None:
    before = scrape(burro_url)
    for dataset_id in ("ds_one", "ds_two"):
        assert client.get(f"/v1/datasets/{dataset_id}").status_code == 404
    after = scrape(burro_url)
    route = "/v1/datasets/{dataset_id}"
    assert requests_counted(after, route, "404") - requests_counted(before, route, "404") == 2
    assert not any("ds_one" in value for _, labels in after for _, value in labels)
    latency = frozenset({("route", route), ("method", "GET")})
    assert after[("burro_http_request_duration_seconds_count", latency)] >= 2


def test_the_metrics_route_does_not_count_itself(burro_url: str) -> None:
    scrape(burro_url)
    samples = scrape(burro_url)
    assert not any(
        ("route", metrics.METRICS_PATH) in labels
        for name, labels in samples
        if name.startswith("burro_http")
    )


def test_queue_depth_and_unfinished_jobs_are_read_from_redis_at_scrape(
    burro_url: str, redis_url: str
) -> None:
    store = redis.Redis.from_url(redis_url)
    try:
        store.zadd(QUEUE_NAME, {"arq-job-1": 1, "arq-job-2": 2, "arq-job-3": 3})
        for i, status in enumerate(["running", "running", "pending", "succeeded"]):
            job = Job(
                id=f"job_{i}",
                tenant="acme",
                status=status,  # type: ignore[arg-type]
                provider="sandbox",
                model="gpt-4.1-mini-2025-04-14",
                training_dataset="ds_x",
                created_at=1,
                updated_at=1,
            )
            store.set(f"{PREFIX}:{JOBS}:{job.id}", msgspec.msgpack.encode(job))
            store.sadd(UNFINISHED_KEY, job.id)
        store.sadd(UNFINISHED_KEY, "job_gone")  # an id whose record is gone is skipped
    finally:
        store.close()
    samples = scrape(burro_url)
    assert samples[("burro_queue_depth", frozenset())] == 3
    jobs = {
        dict(labels)["status"]: v for (name, labels), v in samples.items() if name == "burro_jobs"
    }
    assert jobs["running"] == 2
    assert jobs["pending"] == 1
    assert jobs["queued"] == 0  # every unfinished status is present, zero included
    assert "succeeded" not in jobs  # finished jobs are counted by burro_job_transitions_total


@pytest.mark.timeout(30)
def test_the_worker_serves_its_own_counters_on_its_own_port() -> None:
    server = metrics.start_metrics_server(0, addr="127.0.0.1")
    try:
        metrics.count_webhook_attempt("delivered")
        response = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics")
        assert response.status_code == 200
        assert 'burro_webhook_attempts_total{outcome="delivered"}' in response.text
        # Gauges read from Redis come from the API only: a worker never refreshes them.
        assert "burro_queue_depth" not in response.text
    finally:
        server.shutdown()
        server.server_close()
