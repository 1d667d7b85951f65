"""Benchmark: Burro's jobs at scale, through real processes on loopback.

    uv run python bench/jobs.py [--jobs 1000] [--workers 2] [--poll-interval 10]
    uv run python bench/jobs.py --poll-pass 10,100,300

The default run is the jobs issue's target: a private redis-server, the sandbox (real HTTP on
127.0.0.1, in this process so its exact finish times can be read), `burro serve` and
`--workers` `burro worker`s as child processes. It uploads one dataset through the API,
creates `--jobs` jobs through the API, and waits until every one has ended. It reports the
upstream calls per minute over that window (the sandbox's request counts before and after)
and, per job, the delay from the moment the upstream job succeeded (the sandbox's own
`finished_at`, to the microsecond) to the moment Burro's job became `succeeded` (the worker's
`job.succeeded` log line): p50, p90, p99 and max. With polling only, that delay is bounded by
the poll interval plus one poll pass.

`--poll-pass` measures one production poll pass instead: N jobs put upstream through the
production upload and create steps, then the sandbox's requests and the wall time of one pass.
The target there: requests grow with list pages (100 jobs a page), not with jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402
import redis  # noqa: E402

from burro.redis_server import RedisServer, free_port  # noqa: E402
from burro.testing import serve_in_thread  # noqa: E402
from sandbox.app import create_app as create_sandbox  # noqa: E402
from sandbox.config import SandboxConfig  # noqa: E402
from sandbox.state import SandboxState  # noqa: E402
from sandbox.testing import running_sandbox  # noqa: E402
from service.datasets.records import content_path  # noqa: E402
from service.jobs.records import UNFINISHED_KEY, Job  # noqa: E402
from service.jobs.transitions import create  # noqa: E402
from service.logging import configure_logging  # noqa: E402
from service.models import ModelTable  # noqa: E402
from service.providers import Providers  # noqa: E402
from service.queue import Queue  # noqa: E402
from service.settings import ProviderSettings, Settings  # noqa: E402
from service.store import now  # noqa: E402
from workers import fine_tuning, upload  # noqa: E402
from workers.context import WorkerContext  # noqa: E402

EXAMPLE = (
    b'{"messages": [{"role": "user", "content": "hi"}, '
    b'{"role": "assistant", "content": "hee-haw"}]}\n'
)


async def measure(settings: Settings, sandbox: httpx.Client, n: int) -> dict[str, float]:
    assert settings.redis_url is not None
    queue = await Queue.connect(settings.redis_url)
    w = WorkerContext(
        settings=settings, queue=queue, providers=Providers(settings), models=ModelTable.load()
    )
    try:
        await queue.redis.flushall()
        path = content_path(settings.data_dir, "ds_bench")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(EXAMPLE * 20)
        ids = []
        for i in range(n):
            stamp = now()
            job = Job(
                id=f"job_bench{i:05d}", tenant="bench", status="pending", provider="sandbox",
                model="gpt-4.1-mini-2025-04-14", training_dataset="ds_bench",
                created_at=stamp, updated_at=stamp, status_changed_at=stamp,
            )  # fmt: skip
            await create(queue, job)
            await upload.upload_job_files(w, job.id)
            await fine_tuning.create_upstream_job(w, job.id)
            ids.append(job.id)
        await fine_tuning.poll_provider(w, "sandbox")  # first pass: every status is news
        await asyncio.to_thread(sandbox.delete, "/sandbox/stats")
        started = time.perf_counter()
        await fine_tuning.poll_provider(w, "sandbox")
        seconds = time.perf_counter() - started
        requests = (await asyncio.to_thread(sandbox.get, "/sandbox/stats")).json()["total"]
        return {"jobs": n, "requests": requests, "ms": seconds * 1000}
    finally:
        await w.providers.close()
        await queue.close()


# --- 1,000 jobs through real processes -------------------------------------------------------

KEY = "bench-key"
MODEL = "gpt-4.1-mini-2025-04-14"


@contextlib.contextmanager
def children(commands: list[tuple[list[str], Path]], env: dict[str, str]) -> Iterator[None]:
    """Run each command as a child process (its stderr to a file); stop them all at the end."""
    started: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for command, log_path in commands:
            log_file = log_path.open("wb")
            logs.append(log_file)
            started.append(
                subprocess.Popen(
                    command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_file
                )
            )
        yield
    finally:
        for child in started:
            child.send_signal(signal.SIGTERM)
        for child in started:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for log_file in logs:
            log_file.close()


def wait_until(check: Any, timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(every)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def succeeded_at(log_paths: list[Path]) -> dict[str, float]:
    """When each job became `succeeded`, from the workers' JSON `job.succeeded` lines."""
    found: dict[str, float] = {}
    for path in log_paths:
        for line in path.read_bytes().splitlines():
            if b'"job.succeeded"' not in line:
                continue
            with contextlib.suppress(msgspec.DecodeError):
                entry = msgspec.json.decode(line)
                if entry.get("event") != "job.succeeded":
                    continue  # another line naming the event (an effect of it)
                stamp = datetime.fromisoformat(entry["timestamp"])
                found[entry["job"]] = stamp.timestamp()
    return found


async def create_jobs(api: httpx.AsyncClient, dataset: str, n: int, parallel: int) -> list[str]:
    ids: list[str] = []
    limit = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        async with limit:
            body = {"training_dataset": dataset, "model": MODEL, "suffix": f"bench-{i}"}
            response = await api.post("/v1/jobs", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])

    await asyncio.gather(*(one(i) for i in range(n)))
    return ids


def flow(args: argparse.Namespace, tmp: Path) -> None:
    configure_logging("WARNING", json=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    redis_server = RedisServer(data_dir=tmp / "redis")
    redis_url = redis_server.start()
    state = SandboxState(config=SandboxConfig(step_seconds=args.step_seconds))
    try:
        with serve_in_thread(create_sandbox(state.config, state=state)) as sandbox_root:
            port = free_port()
            env = {
                **os.environ,
                "REDIS_URL": redis_url,
                "BURRO_API_KEYS": f"bench:{KEY}",
                "BURRO_DATA_DIR": str(tmp / "data"),
                "BURRO_PROVIDER": "sandbox",
                "BURRO_SANDBOX_URL": f"{sandbox_root}/v1",
                "BURRO_POLL_INTERVAL": str(args.poll_interval),
                "BURRO_RATE_LIMIT": "0",
                "BURRO_MAX_ACTIVE_JOBS": "0",
                "BURRO_LOG_LEVEL": "INFO",
                "BURRO_LOG_JSON": "true",
            }
            env.pop("OPENAI_API_KEY", None)
            burro = [sys.executable, "-m", "burro"]
            worker_logs = [tmp / f"worker-{i}.log" for i in range(args.workers)]
            commands = [([*burro, "serve", "--port", str(port)], tmp / "api.log")]
            commands += [([*burro, "worker"], path) for path in worker_logs]
            with (
                children(commands, env),
                httpx.Client(base_url=sandbox_root, timeout=30) as sandbox,
                redis.Redis.from_url(redis_url) as store,
            ):
                base = f"http://127.0.0.1:{port}"
                wait_until(lambda: _answers(f"{base}/health/ready"), 30, "the API and a worker")
                result = asyncio.run(run_jobs(args, base, sandbox, store))
    finally:
        redis_server.close()
    report(args, result, state, succeeded_at(worker_logs))


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1).status_code == 200
    return False


async def run_jobs(
    args: argparse.Namespace, base: str, sandbox: httpx.Client, store: redis.Redis
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
        uploaded = await api.post(
            "/v1/datasets",
            content=EXAMPLE * 20,
            headers={"Content-Type": "application/jsonl"},
            params={"name": "bench.jsonl"},
        )
        uploaded.raise_for_status()
        await asyncio.to_thread(sandbox.delete, "/sandbox/stats")
        started = time.monotonic()
        ids = await create_jobs(api, uploaded.json()["id"], args.jobs, args.parallel)
        created = time.monotonic() - started
        print(f"bench: {len(ids)} jobs created in {created:.1f} s; waiting for them to end")
        wait_until(
            lambda: store.scard(UNFINISHED_KEY) == 0, args.timeout, "every job to end", every=0.5
        )
        window = time.monotonic() - started
        stats = await asyncio.to_thread(sandbox.get, "/sandbox/stats")
        calls: dict[str, int] = stats.json()["requests"]
        statuses: dict[str, int] = {}
        upstream_of: dict[str, str] = {}
        for job_id in ids:
            job = (await api.get(f"/v1/jobs/{job_id}")).json()
            statuses[job["status"]] = statuses.get(job["status"], 0) + 1
            if job["upstream"]["job_id"]:
                upstream_of[job_id] = job["upstream"]["job_id"]
    return {
        "ids": ids,
        "created_s": created,
        "window_s": window,
        "calls": calls,
        "statuses": statuses,
        "upstream_of": upstream_of,
    }


def report(
    args: argparse.Namespace,
    result: dict[str, Any],
    state: SandboxState,
    burro_at: dict[str, float],
) -> None:
    delays = []
    for job_id, upstream_id in result["upstream_of"].items():
        finished = state.jobs[upstream_id].finished_at
        if finished is not None and job_id in burro_at:
            delays.append(burro_at[job_id] - finished)
    calls = result["calls"]
    total = sum(calls.values())
    window = result["window_s"]
    print()
    print(
        f"{args.jobs} jobs, {args.workers} workers, poll interval {args.poll_interval:g} s, "
        f"sandbox phases of {args.step_seconds:g} s; statuses: {result['statuses']}"
    )
    print()
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| jobs created through the API | {result['created_s']:.1f} s |")
    print(f"| window (first create → last job ended) | {window:.1f} s |")
    print(f"| upstream calls | {total} |")
    print(f"| upstream calls per minute | {total / window * 60:.0f} |")
    for route, count in sorted(calls.items(), key=lambda kv: -kv[1]):
        print(f"| &nbsp;&nbsp;`{route}` | {count} ({count / window * 60:.0f}/min) |")
    if delays:
        print(f"| jobs measured (upstream success → Burro `succeeded`) | {len(delays)} |")
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
            print(f"| delay {name} | {percentile(delays, q):.2f} s |")


async def main(args: argparse.Namespace) -> None:
    configure_logging("WARNING", json=True)
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # the SDK's HTTP client
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(data_dir=Path(tmp) / "redis")
        redis_url = server.start()
        try:
            with (
                running_sandbox(SandboxConfig(step_seconds=3600)) as base_url,
                httpx.Client(base_url=base_url.removesuffix("/v1")) as sandbox,
            ):
                settings = Settings(
                    redis_url=redis_url,
                    data_dir=Path(tmp) / "data",
                    providers=(ProviderSettings(name="sandbox", base_url=base_url, api_key="x"),),
                )
                print(f"{'jobs':>6} {'requests/pass':>14} {'ms/pass':>9}")
                for n in (int(x) for x in args.jobs.split(",")):
                    row = await measure(settings, sandbox, n)
                    print(f"{row['jobs']:>6} {row['requests']:>14} {row['ms']:>9.1f}")
        finally:
            server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs to create")
    parser.add_argument("--workers", type=int, default=2, help="`burro worker` processes")
    parser.add_argument("--poll-interval", type=float, default=10.0, help="BURRO_POLL_INTERVAL")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="sandbox phase length")
    parser.add_argument("--parallel", type=int, default=16, help="job creates in flight")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds for jobs to end")
    parser.add_argument("--poll-pass", metavar="N,N,…", help="measure one poll pass instead")
    arguments = parser.parse_args()
    if arguments.poll_pass:
        arguments.jobs = arguments.poll_pass
        asyncio.run(main(arguments))
    else:
        with tempfile.TemporaryDirectory(prefix="burro-bench-") as directory:
            flow(arguments, Path(directory))
