"""Benchmark: what one poll pass costs as the number of active jobs grows.

    uv run python bench/jobs.py [--jobs 10,100,300]

Starts a private Redis and the sandbox (real HTTP on 127.0.0.1, phases long enough that every
job stays active), puts N jobs upstream through the production upload and create steps, then
runs the production poll pass (`workers.fine_tuning.poll_provider`) and counts the sandbox's
requests and the wall time of that pass. The target: requests grow with list pages (100 jobs a
page), not with jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from burro.redis_server import RedisServer  # noqa: E402
from sandbox.config import SandboxConfig  # noqa: E402
from sandbox.testing import running_sandbox  # noqa: E402
from service.datasets.records import content_path  # noqa: E402
from service.jobs.records import Job  # noqa: E402
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
        sandbox.delete("/sandbox/stats")
        started = time.perf_counter()
        await fine_tuning.poll_provider(w, "sandbox")
        seconds = time.perf_counter() - started
        requests = sandbox.get("/sandbox/stats").json()["total"]
        return {"jobs": n, "requests": requests, "ms": seconds * 1000}
    finally:
        await w.providers.close()
        await queue.close()


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
    parser.add_argument("--jobs", default="10,100,300")
    asyncio.run(main(parser.parse_args()))
