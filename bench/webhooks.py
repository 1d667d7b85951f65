"""Benchmark: webhook delivery when many jobs finish at once.

    uv run python bench/webhooks.py [--jobs 1000] [--workers 1] [--timeout 15]

Starts a private Redis, a receiver process on 127.0.0.1 (one URL per job: `/ok/<n>` answers
204 at once, `/hang/<n>` never answers) and `burro worker` processes, all real. Then `--jobs`
jobs "finish" in the same instant: each publishes its `job.succeeded` event (64 at a time, as
the workers finishing them would). The delay of a job is from that instant to the moment the
receiver got its webhook. Two scenarios, each on an empty Redis with fresh workers: every
receiver healthy, then a tenth of them hanging (held until the webhook timeout). Only the
healthy receivers' deliveries are measured: they must not notice the hanging ones.
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
from service.logging import configure_logging  # noqa: E402
from service.queue import Queue  # noqa: E402
from service.webhooks.outbox import publish  # noqa: E402
from service.webhooks.signing import new_secret  # noqa: E402

PUBLISH_CONCURRENCY = 64


# --- The receiver (a child process: its CPU is not the workers') ------------------------------


def run_receiver(port: int) -> None:
    """Answer webhooks; print `<webhook-id> <unix time>` for each one answered."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        if request.path.startswith("/hang/"):
            await asyncio.Event().wait()  # until the sender gives up
        sys.stdout.write(f"{request.headers['webhook-id']} {time.time():.6f}\n")
        sys.stdout.flush()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- The scenario --------------------------------------------------------------------------------


async def scenario(
    redis_url: str, redis_pid: int | None, data_dir: Path, args: argparse.Namespace, hanging: float
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
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "burro", "worker", env=env, cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]  # fmt: skip
    queue = await Queue.connect(redis_url)
    try:
        await queue.redis.flushall()
        await _wait_until_ready(queue, port, len(workers))
        startup_cpu = sum(_cpu_seconds(w.pid) for w in workers)
        redis_cpu = _cpu_seconds(redis_pid)
        hang_every = round(1 / hanging) if hanging else 0
        urls = [
            f"http://127.0.0.1:{port}/{'hang' if hang_every and n % hang_every == 0 else 'ok'}/{n}"
            for n in range(args.jobs)
        ]
        healthy: set[str] = set()
        gate = asyncio.Semaphore(PUBLISH_CONCURRENCY)

        async def finish(n: int) -> None:
            async with gate:
                [message_id] = await publish(
                    queue.redis,
                    queue,
                    tenant="bench",
                    event_type="job.succeeded",
                    job_id=f"job_{n}",
                    data={"id": f"job_{n}", "object": "job", "status": "succeeded"},
                    job_webhook=(urls[n], new_secret()),
                )
            if "/ok/" in urls[n]:
                healthy.add(message_id)

        received: dict[str, float] = {}
        assert receiver.stdout is not None
        finished_at = time.time()
        cpu_before = time.process_time()
        publishing = asyncio.gather(*(finish(n) for n in range(args.jobs)))
        published: list[float] = []
        publishing.add_done_callback(lambda _: published.append(time.time()))
        deadline = time.monotonic() + 120
        while not (publishing.done() and healthy <= received.keys()):
            try:
                line = await asyncio.wait_for(receiver.stdout.readline(), 1.0)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(received)} deliveries after 120 s") from None
                continue
            message_id, at = line.decode().split()
            received[message_id] = float(at)
        await publishing
        published_in = published[0] - finished_at
        cpu = {
            "worker": sum(_cpu_seconds(w.pid) for w in workers) - startup_cpu,
            "receiver": _cpu_seconds(receiver.pid),
            "redis": _cpu_seconds(redis_pid) - redis_cpu,
            "publisher": time.process_time() - cpu_before,
        }
        delays = sorted(received[m] - finished_at for m in healthy)
        span = max(delays)
        return {
            "hanging": hanging,
            "healthy": len(healthy),
            "per_second": len(healthy) / span,
            "p50": statistics.median(delays),
            "p99": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
            "max": span,
            "published_in": published_in,
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
    with tempfile.TemporaryDirectory(prefix="burro-bench-") as tmp:
        server = RedisServer(data_dir=Path(tmp) / "redis")
        url = server.start()
        pid = server.process.pid if server.process else None
        try:
            results = [
                await scenario(url, pid, Path(tmp) / "data", args, hanging)
                for hanging in (0.0, 0.1)
            ]
        finally:
            server.close()
    print(
        f"\n{args.jobs} jobs finishing at once, {args.workers} worker process(es), "
        f"webhook timeout {args.timeout:g} s, {os.cpu_count()} CPUs\n"
    )
    print("| receivers        | healthy deliveries | deliveries/s | p50     | p99     | max     |")
    print("|------------------|--------------------|--------------|---------|---------|---------|")
    for r in results:
        label = "all healthy" if not r["hanging"] else f"{r['hanging']:.0%} hanging"
        print(
            f"| {label:<16} | {r['healthy']:>18} | {r['per_second']:>12.0f} "
            f"| {r['p50']:>5.3f} s | {r['p99']:>5.3f} s | {r['max']:>5.3f} s |"
        )
    print("\nCPU seconds spent on the burst, by process:")
    for r in results:
        label = "all healthy" if not r["hanging"] else f"{r['hanging']:.0%} hanging"
        print(
            f"  {label}: all {args.jobs} published in {r['published_in']:.2f} s; CPU publisher "
            f"{r['cpu_publisher']:.2f}, worker(s) {r['cpu_worker']:.2f}, receiver "
            f"{r['cpu_receiver']:.2f}, redis {r['cpu_redis']:.2f}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--receiver":
        run_receiver(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=15.0, help="BURRO_WEBHOOK_TIMEOUT")
    asyncio.run(main(parser.parse_args()))
