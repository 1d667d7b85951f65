"""Benchmark: webhook delivery when many jobs finish at once.

    uv run python bench/webhooks.py [--jobs 1000] [--workers 1,2] [--timeout 15]

Starts a private Redis, a receiver process on 127.0.0.1 (one URL per job: `/ok/<n>` answers
204 at once, `/hang/<n>` never answers) and `burro worker` processes, all real. `--jobs` running
jobs (each with its own webhook) then finish in the same instant: each one's `succeeded` is
saved by `transition()` (64 at a time, as the workers finishing them would), which writes the
job and its outbox in one transaction and queues its relay; the workers' relays publish and
send the `job.succeeded` webhooks. The delay of a job is from that instant (and, second, from
its own status change) to the moment the receiver got its webhook. Two scenarios, each on an
empty Redis with fresh workers: every receiver healthy, then a tenth of them hanging (held
until the webhook timeout); each with every number of workers in `--workers`. Only the healthy
receivers' deliveries are measured: they must not notice the hanging ones.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from burro.redis_server import RedisServer, free_port  # noqa: E402
from service.jobs.records import Job  # noqa: E402
from service.jobs.transitions import jobs, transition  # noqa: E402
from service.logging import configure_logging  # noqa: E402
from service.queue import Queue  # noqa: E402
from service.store import now  # noqa: E402
from service.webhooks.signing import new_secret  # noqa: E402

FINISH_CONCURRENCY = 64
MODEL = "gpt-4.1-mini-2025-04-14"


# --- The receiver (a child process: its CPU is not the workers') ------------------------------


def run_receiver(port: int) -> None:
    """Answer webhooks; print `<path> <unix time>` for each one answered."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        if request.path.startswith("/hang/"):
            await asyncio.Event().wait()  # until the sender gives up
        sys.stdout.write(f"{request.path} {time.time():.6f}\n")
        sys.stdout.flush()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- The scenario --------------------------------------------------------------------------------


async def scenario(
    redis_url: str,
    redis_pid: int | None,
    data_dir: Path,
    args: argparse.Namespace,
    hanging: float,
    workers_count: int,
) -> dict[str, float]:
    port = free_port()
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--receiver", str(port), stdout=asyncio.subprocess.PIPE
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "REDIS_URL": redis_url,
        "BURRO_DATA_DIR": str(data_dir),
        "BURRO_WEBHOOK_ALLOW_PRIVATE": "true",
        "BURRO_WEBHOOK_TIMEOUT": str(args.timeout),
        "BURRO_LOG_LEVEL": "WARNING",
        "BURRO_LOG_JSON": "true",
    }
    queue = await Queue.connect(redis_url)
    await queue.redis.flushall()
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "burro", "worker", env=env, cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(workers_count)
    ]  # fmt: skip
    try:
        await _wait_until_ready(queue, port, len(workers))
        hang_every = round(1 / hanging) if hanging else 0
        paths = [
            f"/{'hang' if hang_every and n % hang_every == 0 else 'ok'}/{n}"
            for n in range(args.jobs)
        ]
        ids = await _running_jobs(queue, [f"http://127.0.0.1:{port}{p}" for p in paths])
        healthy = {p for p in paths if p.startswith("/ok/")}
        startup_cpu = sum(_cpu_seconds(w.pid) for w in workers)
        redis_cpu = _cpu_seconds(redis_pid)
        gate = asyncio.Semaphore(FINISH_CONCURRENCY)
        changed_at: dict[str, float] = {}

        async def finish(n: int) -> None:
            async with gate:
                changed_at[paths[n]] = time.time()
                await transition(
                    queue, ids[n], "succeeded", fine_tuned_model=f"ft:{MODEL}:bench::{n}"
                )

        received: dict[str, float] = {}
        assert receiver.stdout is not None
        finished_at = time.time()
        cpu_before = time.process_time()
        finishing = asyncio.gather(*(finish(n) for n in range(args.jobs)))
        finished: list[float] = []
        finishing.add_done_callback(lambda _: finished.append(time.time()))
        deadline = time.monotonic() + 120
        while not (finishing.done() and healthy <= received.keys()):
            try:
                line = await asyncio.wait_for(receiver.stdout.readline(), 1.0)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(received)} deliveries after 120 s") from None
                continue
            path, at = line.decode().split()
            received[path] = float(at)
        await finishing
        cpu = {
            "worker": sum(_cpu_seconds(w.pid) for w in workers) - startup_cpu,
            "receiver": _cpu_seconds(receiver.pid),
            "redis": _cpu_seconds(redis_pid) - redis_cpu,
            "finisher": time.process_time() - cpu_before,
        }
        delays = sorted(received[p] - finished_at for p in healthy)
        own = sorted(received[p] - changed_at[p] for p in healthy)
        span = max(delays)
        return {
            "workers": workers_count,
            "hanging": hanging,
            "healthy": len(healthy),
            "per_second": len(healthy) / span,
            "p50": statistics.median(delays),
            "p99": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
            "max": span,
            "own_p99": own[min(len(own) - 1, int(len(own) * 0.99))],
            "finished_in": finished[0] - finished_at,
            **{f"cpu_{k}": v for k, v in cpu.items()},
        }
    finally:
        await queue.close()
        await _stop(*workers, receiver)


async def _stop(*processes: asyncio.subprocess.Process) -> None:
    """SIGTERM each process, then SIGKILL whatever has not exited 20 s later."""
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _running_jobs(queue: Queue, urls: list[str]) -> list[str]:
    """One running job per URL, each with its own webhook (stored directly: their earlier
    statuses are not what is measured)."""
    stamp = now()
    collection = jobs(queue.redis)
    ids = []
    for n, url in enumerate(urls):
        job = Job(
            id=f"job_bench{n:05d}", tenant="bench", status="running", provider="sandbox",
            model=MODEL, training_dataset="ds_bench", upstream_job_id=f"ftjob-{n}",
            webhook_url=url, webhook_secret=new_secret(), created_at=stamp, updated_at=stamp,
        )  # fmt: skip
        await collection.save(job)
        ids.append(job.id)
    return ids


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_until_ready(queue: Queue, port: int, workers: int) -> None:
    """Workers polling the queue, and the receiver listening."""
    deadline = time.monotonic() + 60
    while not await queue.worker_alive():
        if time.monotonic() > deadline:
            raise RuntimeError("no worker started")
        await asyncio.sleep(0.05)
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start") from None
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0 if workers > 1 else 0.2)  # the other workers' start-up


async def main(args: argparse.Namespace) -> None:
    configure_logging("WARNING")
    counts = [int(n) for n in args.workers.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="burro-bench-") as tmp:
        server = RedisServer(data_dir=Path(tmp) / "redis")
        url = server.start()
        pid = server.process.pid if server.process else None
        try:
            for workers_count in counts:
                for hanging in (0.0, 0.1):
                    results.append(
                        await scenario(url, pid, Path(tmp) / "data", args, hanging, workers_count)
                    )
        finally:
            server.close()
    print(
        f"\n{args.jobs} jobs finishing at once, webhook timeout {args.timeout:g} s, "
        f"{os.cpu_count()} CPUs; delays from the instant they all finished (and, last column, "
        "from each job's own status change)\n"
    )
    print(
        "| workers | receivers   | healthy deliveries | deliveries/s | p50     | p99     "
        "| max     | p99 own |"
    )
    print(
        "|---------|-------------|--------------------|--------------|---------|---------"
        "|---------|---------|"
    )
    for r in results:
        label = "all healthy" if not r["hanging"] else f"{r['hanging']:.0%} hanging"
        print(
            f"| {r['workers']:>7.0f} | {label:<11} | {r['healthy']:>18.0f} "
            f"| {r['per_second']:>12.0f} | {r['p50']:>5.3f} s | {r['p99']:>5.3f} s "
            f"| {r['max']:>5.3f} s | {r['own_p99']:>5.3f} s |"
        )
    print("\nCPU seconds spent on the burst, by process:")
    for r in results:
        label = "all healthy" if not r["hanging"] else f"{r['hanging']:.0%} hanging"
        print(
            f"  {r['workers']:.0f} worker(s), {label}: all {args.jobs} saved in "
            f"{r['finished_in']:.2f} s; CPU finisher {r['cpu_finisher']:.2f}, worker(s) "
            f"{r['cpu_worker']:.2f}, receiver {r['cpu_receiver']:.2f}, redis {r['cpu_redis']:.2f}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--receiver":
        run_receiver(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument(
        "--workers", default="1,2", help="worker processes, one run per count (e.g. 1,2)"
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="BURRO_WEBHOOK_TIMEOUT")
    asyncio.run(main(parser.parse_args()))
