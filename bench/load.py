"""Load benchmark: mixed traffic from many tenants against Burro's API, a worker and the sandbox.

    uv run python bench/load.py [--seconds 30] [--tenants 20] [--clients 40]

Starts, all on 127.0.0.1 and each in its own process: a private Redis, the sandbox
(`burro sandbox`, fast steps), Burro's API (`burro serve`) and one worker (`burro worker`).
Then clients (aiohttp, in this process), each acting for one tenant, mix dataset uploads, job
creations, reads of jobs and datasets, and chat with an allowed base model, for a bounded time
and request count. Prints throughput, p50/p99 per route, answers by status, jobs finished, and
the API's and worker's peak resident memory (VmHWM). Every child is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from burro.redis_server import RedisServer, free_port  # noqa: E402

MODEL = "gpt-4.1-mini-2025-04-14"
JSONL = {"Content-Type": "application/jsonl"}
STARTUP_SECONDS = 60.0
# The mix, by weight: what a busy deployment sees (reads dominate, uploads and jobs are rarer).
MIX = {
    "POST /v1/datasets": 8,
    "POST /v1/jobs": 4,
    "GET /v1/jobs": 18,
    "GET /v1/jobs/{id}": 18,
    "GET /v1/datasets": 12,
    "GET /v1/datasets/{id}": 12,
    "POST /v1/chat/completions": 28,
}


def chat_file(tenant: str, n: int, salt: int) -> bytes:
    """A valid chat dataset of `n` examples, different for each (tenant, salt)."""
    lines = []
    for i in range(n):
        example = {
            "messages": [
                {"role": "system", "content": "You are Donkey from Shrek."},
                {"role": "user", "content": f"{tenant} question {salt}.{i}: are we there yet?"},
                {"role": "assistant", "content": f"Not yet, {tenant}! Answer {salt}.{i}."},
            ]
        }
        lines.append(json.dumps(example))
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Tenant:
    name: str
    key: str
    datasets: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    uploads: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)  # transport errors

    def record(self, route: str, status: int, started: float) -> None:
        self.latencies[route].append((time.perf_counter() - started) * 1000)
        self.statuses[(route, status)] += 1


# --- The processes -------------------------------------------------------------------------------


def start_children(
    redis_url: str, data_dir: Path, tenants: list[Tenant], api_port: int, sandbox_port: int
) -> dict[str, subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "BURRO_DATA_DIR": str(data_dir),
        "BURRO_API_KEYS": ",".join(f"{t.name}:{t.key}" for t in tenants),
        "BURRO_PROVIDER": "sandbox",
        "BURRO_SANDBOX_URL": f"http://127.0.0.1:{sandbox_port}/v1",
        "BURRO_SANDBOX_STEP_SECONDS": "0.2",
        "BURRO_ALLOWED_BASE_MODELS": MODEL,
        "BURRO_POLL_INTERVAL": "1",
        "BURRO_RATE_LIMIT": "0",
        "BURRO_WEBHOOK_ALLOW_PRIVATE": "true",
        "BURRO_LOG_LEVEL": "WARNING",
        "BURRO_LOG_JSON": "true",
    }
    env.pop("OPENAI_API_KEY", None)  # the sandbox trains, never OpenAI
    burro = [sys.executable, "-m", "burro"]
    children = {
        "sandbox": [*burro, "sandbox", "--port", str(sandbox_port)],
        "api": [*burro, "serve", "--host", "127.0.0.1", "--port", str(api_port)],
        "worker": [*burro, "worker"],
    }
    started = {}
    for name, command in children.items():
        # Each child's output goes to a file: the sandbox logs every request it serves.
        with (data_dir.parent / f"{name}.log").open("wb") as log:
            started[name] = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
    return started


def stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def peak_memory_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), in MiB; None where /proc has no answer."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def wait_until(session: aiohttp.ClientSession, url: str, deadline: float) -> None:
    while True:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 in time")
        await asyncio.sleep(0.1)


# --- The traffic ---------------------------------------------------------------------------------


class Load:
    """The client side: one tenant per client loop, each loop bounded by count and time."""

    def __init__(self, session: aiohttp.ClientSession, base: str, stats: Stats) -> None:
        self.session = session
        self.base = base
        self.stats = stats

    async def call(
        self,
        route: str,
        method: str,
        path: str,
        tenant: Tenant,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, object]:
        started = time.perf_counter()
        try:
            async with self.session.request(
                method,
                self.base + path,
                data=body,
                headers={**tenant.headers, **(headers or {})},
                params=params,
            ) as response:
                raw = await response.read()
                self.stats.record(route, response.status, started)
                is_json = response.content_type.endswith("json")
                return response.status, json.loads(raw) if is_json and raw else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.failures[(route, type(exc).__name__)] += 1
            return 0, None

    async def upload(self, tenant: Tenant) -> None:
        tenant.uploads += 1
        body = chat_file(tenant.name, 20, tenant.uploads)
        status, answer = await self.call(
            "POST /v1/datasets", "POST", "/v1/datasets", tenant, body=body, headers=JSONL
        )
        if status in (200, 201) and isinstance(answer, dict):
            tenant.datasets.append(answer["id"])

    async def create_job(self, tenant: Tenant) -> None:
        body = json.dumps(
            {
                "training_dataset": random.choice(tenant.datasets),
                "model": MODEL,
                "method": {"type": "supervised", "hyperparameters": {"n_epochs": 1}},
            }
        ).encode()
        status, answer = await self.call(
            "POST /v1/jobs",
            "POST",
            "/v1/jobs",
            tenant,
            body=body,
            headers={"Content-Type": "application/json"},
        )
        if status == 202 and isinstance(answer, dict):
            tenant.jobs.append(answer["id"])

    async def one(self, route: str, tenant: Tenant) -> None:
        if route == "POST /v1/datasets":
            await self.upload(tenant)
        elif route == "POST /v1/jobs":
            await self.create_job(tenant)
        elif route == "GET /v1/jobs":
            await self.call(route, "GET", "/v1/jobs", tenant, params={"limit": "20"})
        elif route == "GET /v1/jobs/{id}" and tenant.jobs:
            await self.call(route, "GET", f"/v1/jobs/{random.choice(tenant.jobs)}", tenant)
        elif route == "GET /v1/datasets":
            await self.call(route, "GET", "/v1/datasets", tenant, params={"limit": "20"})
        elif route == "GET /v1/datasets/{id}":
            await self.call(route, "GET", f"/v1/datasets/{random.choice(tenant.datasets)}", tenant)
        elif route == "POST /v1/chat/completions":
            body = json.dumps(
                {"model": MODEL, "messages": [{"role": "user", "content": "Are we there yet?"}]}
            ).encode()
            await self.call(
                route,
                "POST",
                "/v1/chat/completions",
                tenant,
                body=body,
                headers={"Content-Type": "application/json"},
            )

    async def client(self, tenant: Tenant, deadline: float, budget: list[int]) -> None:
        routes, weights = list(MIX), list(MIX.values())
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            await self.one(random.choices(routes, weights)[0], tenant)


async def run(args: argparse.Namespace) -> None:
    random.seed(args.seed)
    tenants = [Tenant(f"tenant{i:03d}", f"key-load-{i:03d}") for i in range(args.tenants)]
    stats = Stats()
    with tempfile.TemporaryDirectory(prefix="burro-load-") as tmp:
        redis_server = RedisServer(data_dir=Path(tmp) / "redis")
        redis_server.start()
        api_port, sandbox_port = free_port(), free_port()
        children = start_children(
            redis_server.url, Path(tmp) / "data", tenants, api_port, sandbox_port
        )
        try:
            base = f"http://127.0.0.1:{api_port}"
            timeout = aiohttp.ClientTimeout(total=30)
            connector = aiohttp.TCPConnector(limit=args.clients)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                deadline = time.monotonic() + STARTUP_SECONDS
                await wait_until(session, f"http://127.0.0.1:{sandbox_port}/v1/models", deadline)
                await wait_until(session, f"{base}/health/ready", deadline)
                load = Load(session, base, stats)
                # Every tenant starts with one dataset, so reads and jobs have something to use.
                await asyncio.gather(*(load.upload(t) for t in tenants))
                if not all(t.datasets for t in tenants):
                    # The children are stopped by the handler below, as on any failure.
                    raise RuntimeError("the first uploads failed")  # noqa: TRY301
                budget = [args.max_requests]
                began = time.perf_counter()
                end = began + args.seconds
                await asyncio.gather(
                    *(
                        load.client(tenants[i % len(tenants)], end, budget)
                        for i in range(args.clients)
                    )
                )
                elapsed = time.perf_counter() - began
                finished = await count_jobs(load, tenants)
            memory = {name: peak_memory_mib(children[name].pid) for name in ("api", "worker")}
        except BaseException:
            for name in children:
                tail = (Path(tmp) / f"{name}.log").read_text(errors="replace")[-2000:]
                print(f"--- {name} (last lines) ---\n{tail}", file=sys.stderr)
            raise
        finally:
            stop_children(children)
            redis_server.close()
    report(args, stats, elapsed, finished, memory)


async def count_jobs(load: Load, tenants: list[Tenant]) -> Counter[str]:
    """Jobs by status at the end, over every tenant (outside the timed part)."""
    statuses: Counter[str] = Counter()
    for tenant in tenants:
        after: str | None = None
        for _ in range(100):  # pages of 100: bounded
            params = {"limit": "100", **({"after": after} if after else {})}
            status, page = await load.call("count", "GET", "/v1/jobs", tenant, params=params)
            if status != 200 or not isinstance(page, dict):
                break
            statuses.update(job["status"] for job in page["data"])
            if not page["has_more"] or not page["data"]:
                break
            after = page["data"][-1]["id"]
    return statuses


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def report(
    args: argparse.Namespace,
    stats: Stats,
    elapsed: float,
    jobs: Counter[str],
    memory: dict[str, float | None],
) -> None:
    routes = [r for r in MIX if r in stats.latencies]
    total = sum(len(stats.latencies[r]) for r in routes)
    print()
    print(
        f"{args.tenants} tenants, {args.clients} clients, {elapsed:.1f} s: "
        f"{total} requests, {total / elapsed:,.0f} req/s"
    )
    print()
    print("| route | requests | req/s | p50 ms | p99 ms | answers by status |")
    print("|---|---:|---:|---:|---:|---|")
    for route in routes:
        latencies = stats.latencies[route]
        by_status = ", ".join(
            f"{status}: {n}" for (r, status), n in sorted(stats.statuses.items()) if r == route
        )
        print(
            f"| {route} | {len(latencies)} | {len(latencies) / elapsed:,.0f} "
            f"| {pct(latencies, 0.5):.1f} | {pct(latencies, 0.99):.1f} | {by_status} |"
        )
    errors = {(r, s): n for (r, s), n in stats.statuses.items() if s >= 400 and r in MIX}
    print()
    print(f"Errors by status: {dict(sorted(errors.items())) or 'none'}")
    if stats.failures:
        print(f"Transport failures: {dict(stats.failures)}")
    print(f"Jobs at the end: {dict(jobs)}")
    for name, mib in memory.items():
        print(f"Peak memory (VmHWM) of the {name}: " + (f"{mib:.0f} MiB" if mib else "unknown"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="time bound of the load")
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--clients", type=int, default=40, help="concurrent client loops")
    parser.add_argument("--max-requests", type=int, default=200_000, help="count bound")
    parser.add_argument("--seed", type=int, default=1, help="seeds the traffic mix")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
