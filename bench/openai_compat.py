"""Benchmark: what the OpenAI-compatible view costs a list of jobs.

    uv run python bench/openai_compat.py [--jobs 300] [--n 400]

Starts a private redis-server on loopback and Burro (uvicorn, in a thread), makes `--jobs` jobs
through `POST /v1/jobs` (no worker runs: a third are then marked succeeded in the store, with a
model, tokens and a result file, so both views have every kind of job to draw), and measures
on the very same jobs, alternating requests so both see the same machine:
- HTTP: `GET /v1/jobs?limit=100` (Burro's own view) vs `GET /v1/fine_tuning/jobs?limit=100`
  (OpenAI's), sequentially, `--n` requests each;
- in process: building and encoding the 100 views alone (`JobOut.of` vs `job_view` plus the
  result files' one Redis round trip), without HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
from redis.asyncio import Redis

from burro.redis_server import RedisServer
from burro.testing import serve_in_thread
from service.app import create_app
from service.jobs.records import JobOut
from service.jobs.transitions import jobs
from service.openai_compat.results import result_files
from service.openai_compat.wire import job_view
from service.settings import ProviderSettings, Settings

MODEL = "gpt-4.1-mini-2025-04-14"
PATHS = ("/v1/jobs", "/v1/fine_tuning/jobs")


def dataset_jsonl(n: int = 12) -> bytes:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Question {i}?"},
                    {"role": "assistant", "content": f"Answer {i}."},
                ]
            }
        )
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


def seed(client: httpx.Client, count: int) -> list[str]:
    dataset = client.post(
        "/v1/datasets", content=dataset_jsonl(), headers={"Content-Type": "application/jsonl"}
    )
    assert dataset.status_code == 201, dataset.text
    ids = []
    for i in range(count):
        job = client.post(
            "/v1/jobs",
            json={
                "training_dataset": dataset.json()["id"],
                "model": MODEL,
                "suffix": f"bench-{i}",
                "metadata": {"run": str(i)},
            },
        )
        assert job.status_code == 202, job.text
        ids.append(job.json()["id"])
    return ids


async def finish_some(redis_url: str, ids: list[str]) -> None:
    """Mark every third job succeeded in the store, as the worker would have left it."""
    redis = Redis.from_url(redis_url)
    collection = jobs(redis)
    for job_id in ids[::3]:
        job = await collection.get(job_id)
        assert job is not None
        stamp = job.created_at + 600
        await collection.save(
            msgspec.structs.replace(
                job,
                status="succeeded",
                fine_tuned_model=f"ft:{MODEL}:acme:{job.suffix}:x",
                trained_tokens=12_345,
                cost_usd=0.06,
                result_files=["file-bench"],
                finished_at=stamp,
                updated_at=stamp,
            )
        )
    await redis.aclose()


def http(client: httpx.Client, n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    for _ in range(20):
        for path in PATHS:
            client.get(path, params={"limit": 100})
    for _ in range(n):
        for path in PATHS:  # alternating: both see the same load on a shared machine
            started = time.perf_counter()
            response = client.get(path, params={"limit": 100})
            times[path].append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            assert len(response.json()["data"]) == 100
    return times


async def in_process(redis_url: str, n: int) -> dict[str, list[float]]:
    redis = Redis.from_url(redis_url)
    page = await jobs(redis).page("acme", limit=100)
    encoder = msgspec.json.Encoder()
    times: dict[str, list[float]] = {"JobOut.of": [], "job_view": []}
    for _ in range(n):
        started = time.perf_counter()
        encoder.encode([JobOut.of(j) for j in page.data])
        times["JobOut.of"].append(time.perf_counter() - started)
        started = time.perf_counter()
        files = await result_files(redis, "acme", page.data)
        encoder.encode([job_view(j, files[j.id]) for j in page.data])
        times["job_view"].append(time.perf_counter() - started)
    await redis.aclose()
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    for name, samples in times.items():
        ms = sorted(t * 1000 for t in samples)
        p50, p95, mean = statistics.median(ms), ms[int(len(ms) * 0.95)], statistics.mean(ms)
        print(f"  {name:24} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   mean {mean:7.2f} ms")
    first, second = (statistics.median(s) * 1000 for s in times.values())
    print(f"  overhead (p50): {second - first:+.2f} ms ({(second / first - 1) * 100:+.0f} %)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--n", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(data_dir=Path(tmp) / "redis")
        url = server.start()
        try:
            settings = Settings(
                redis_url=url,
                data_dir=Path(tmp) / "data",
                api_keys=(("acme", "key"),),
                # Named so jobs can be made; no worker runs, so nothing is ever sent to it.
                providers=(ProviderSettings(name="sandbox", base_url="http://127.0.0.1:9/v1"),),
                rate_limit=0,
                log_level="ERROR",
                log_json=True,
            )
            with (
                serve_in_thread(create_app(settings)) as api,
                httpx.Client(base_url=api, headers={"Authorization": "Bearer key"}) as client,
            ):
                ids = seed(client, args.jobs)
                asyncio.run(finish_some(url, ids))
                size = {p: len(client.get(p, params={"limit": 100}).content) for p in PATHS}
                print(f"{args.jobs} jobs, a third succeeded; a page of 100 is {size} bytes")
                report(f"HTTP, {args.n} sequential requests each", http(client, args.n))
            report("in process: 100 views built and encoded", asyncio.run(in_process(url, args.n)))
        finally:
            server.close()


if __name__ == "__main__":
    main()
