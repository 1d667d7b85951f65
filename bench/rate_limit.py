"""Benchmark: what the per-tenant rate limit costs a request.

    uv run python bench/rate_limit.py [--n 5000]

Starts a private redis-server on loopback and measures, sequentially (the latency one request
pays) and 64 at a time (throughput):
- redis PING: one bare round trip, the floor;
- burro GCRA: RateLimiter.check, one EVALSHA (service.limits);
- litestar store: what Litestar's RateLimitMiddleware does per request (a GET and a SET of a JSON
  timestamp list on RedisStore), for comparison;
- HTTP: GET /v1/models through the whole app with the limit off and on (burst large enough
  never to refuse), served by uvicorn on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import msgspec
from litestar.serialization import decode_json, encode_json
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis

from burro.redis_server import RedisServer
from burro.testing import serve_in_thread
from service.app import create_app
from service.limits import RateLimiter
from service.settings import Settings


async def timed(op: Callable[[], Awaitable[object]], n: int) -> tuple[float, float]:
    """(mean µs per op sequentially, ops/s with 64 in flight)."""
    for _ in range(200):
        await op()
    started = time.perf_counter()
    for _ in range(n):
        await op()
    sequential = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n // 64):
        await asyncio.gather(*(op() for _ in range(64)))
    throughput = (n // 64) * 64 / (time.perf_counter() - started)
    return sequential, throughput


async def micro(redis_url: str, n: int) -> None:
    redis = Redis.from_url(redis_url)
    limiter = RateLimiter(redis, rate=1e9, burst=1_000_000)  # never refuses: measures the cost
    store = RedisStore(redis, namespace="bench")

    async def litestar_like() -> None:
        raw = await store.get("RateLimitMiddleware::acme")
        history = decode_json(raw)["history"] if raw else []
        await store.set(
            "RateLimitMiddleware::acme",
            encode_json({"history": [int(time.time()), *history][:50], "reset": 0}),
            expires_in=1,
        )

    for name, op in (
        ("redis PING", redis.ping),
        ("burro GCRA (EVALSHA)", lambda: limiter.check("acme")),
        ("litestar store (GET+SET)", litestar_like),
    ):
        seq, tput = await timed(op, n)
        print(f"{name:28} {seq:8.1f} µs/request   {tput:10.0f} requests/s (64 in flight)")
    await redis.aclose()


def http(settings: Settings, n: int) -> None:
    results = {}
    for label, rate in (("off", 0.0), ("on", 1e9)):
        app = create_app(
            msgspec.structs.replace(settings, rate_limit=rate, rate_limit_burst=1_000_000)
        )
        with (
            serve_in_thread(app) as url,
            httpx.Client(base_url=url, headers={"Authorization": "Bearer key"}) as client,
        ):
            for _ in range(200):
                client.get("/v1/models")
            times = []
            for _ in range(n):
                started = time.perf_counter()
                assert client.get("/v1/models").status_code == 200
                times.append(time.perf_counter() - started)
        results[label] = times
        print(
            f"HTTP GET /v1/models, limit {label:3}  mean {statistics.mean(times) * 1e6:7.0f} µs"
            f"   p50 {statistics.median(times) * 1e6:7.0f} µs"
        )
    delta = statistics.median(results["on"]) - statistics.median(results["off"])
    print(f"HTTP cost of the limit (p50 on - off): {delta * 1e6:.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(data_dir=Path(tmp) / "redis")
        url = server.start()
        try:
            asyncio.run(micro(url, args.n))
            settings = Settings(
                redis_url=url,
                data_dir=Path(tmp) / "data",
                api_keys=(("acme", "key"),),
                log_level="ERROR",
                log_json=True,
            )
            http(settings, args.n // 5)
        finally:
            server.close()


if __name__ == "__main__":
    main()
