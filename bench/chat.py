"""Benchmark the chat path: direct to a fast upstream vs through Burro, plain and streamed.

    uv run python bench/chat.py [--seconds 8] [--requests 20000]

Starts (all on 127.0.0.1) a private Redis, a tiny raw-ASGI upstream that answers a fixed
completion and a fixed stream, and Burro under uvicorn, each in its own process so the load
generator (aiohttp, in this process) shares no GIL with them. Auth, model resolution (by
alias), the per-tenant rate limit and usage accounting are on. Every loop is bounded by a
request count and a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from burro.redis_server import RedisServer, free_port  # noqa: E402

MODEL = "ft:gpt-4.1-mini-2025-04-14:bench::abc123"
KEY = "key-bench"
MESSAGES = [{"role": "user", "content": "Hola burro! Cómo estás?"}]

# --- The upstream (run in its own process with --upstream PORT) -------------------------------

_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "¡Hola! Estoy muy bien."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
).encode()


def _chunk(delta: dict[str, Any], finish: str | None, usage: bool) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = None
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _events(usage: bool) -> list[bytes]:
    events = [_chunk({"role": "assistant", "content": ""}, None, usage)]
    events += [_chunk({"content": w}, None, usage) for w in ("¡Hola! ", "Estoy ", "muy ", "bien.")]
    events.append(_chunk({}, "stop", usage))
    if usage:
        final = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        }
        events.append(b"data: " + json.dumps(final).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


_STREAMS = {True: _events(True), False: _events(False)}


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"].rpartition(".")[2]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if b'"stream":true' in body.replace(b" ", b""):
        usage = b'"include_usage":true' in body.replace(b" ", b"")
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for event in _STREAMS[usage]:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(_COMPLETION)),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _COMPLETION})


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(
        upstream_app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
    )


# --- Processes ---------------------------------------------------------------------------------


async def _wait_until_up(url: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_processes(
    redis_url: str, upstream_port: int, burro_port: int
) -> list[subprocess.Popen[bytes]]:
    upstream = subprocess.Popen([sys.executable, __file__, "--upstream", str(upstream_port)])
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "BURRO_API_KEYS": f"bench:{KEY}",
        "BURRO_PROVIDER": "bench",
        "BURRO_PROVIDERS": "bench",
        "BURRO_PROVIDER_BENCH_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
        "BURRO_PROVIDER_BENCH_API_KEY": "sk-bench",
        "BURRO_LOG_LEVEL": "WARNING",
        "BURRO_LOG_JSON": "true",
        # The rate limit is on, as in production, at a rate this one tenant never reaches: the
        # chat path pays for its check (with the model look-up, one Redis round trip).
        "BURRO_RATE_LIMIT": "1000000",
        "BURRO_RATE_LIMIT_BURST": "1000000",
    }
    env.pop("OPENAI_API_KEY", None)
    burro = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "service.asgi:app",
            "--host=127.0.0.1",
            f"--port={burro_port}",
            "--loop=uvloop",
            "--http=httptools",
            "--no-access-log",
            "--log-level=warning",
        ],
        env=env,
        cwd=ROOT,
    )
    return [upstream, burro]


async def register_alias(redis_url: str) -> None:
    from redis.asyncio import Redis

    from service.inference.aliases import move_alias
    from service.inference.catalog import register_model

    redis = Redis.from_url(redis_url)
    try:
        await register_model(
            redis,
            tenant="bench",
            job_id="job_bench",
            model=MODEL,
            provider="bench",
            base_model="gpt-4.1-mini-2025-04-14",
        )
        await move_alias(redis, "bench", "donkey", job_id="job_bench", reason="put")
    finally:
        await redis.aclose()


# --- Load ----------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    clients: int
    requests: int
    seconds: float
    latencies: list[float]  # ms: whole answer (plain) or time to first chunk (stream)
    overheads: list[float]  # ms, from x-burro-overhead-ms
    cpu_ms: float  # CPU time of the serving process (Burro or the upstream) per request

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def load(
    url: str, body: bytes, *, stream: bool, clients: int, max_requests: int, seconds: float
) -> tuple[int, float, list[float], list[float]]:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    latencies: list[float] = []
    overheads: list[float] = []
    remaining = max_requests
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal remaining
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    if stream:
                        await response.content.readany()
                        latencies.append((time.perf_counter() - started) * 1000)
                        await response.read()
                    else:
                        await response.read()
                        latencies.append((time.perf_counter() - started) * 1000)
                    if response.status != 200:
                        raise RuntimeError(f"{url}: {response.status}")
                    overhead = response.headers.get("x-burro-overhead-ms")
                    if overhead is not None:
                        overheads.append(float(overhead))

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return len(latencies), time.perf_counter() - began, latencies, overheads


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(data_dir=Path(tmp))
        redis_server.start()
        upstream_port, burro_port = free_port(), free_port()
        processes = start_processes(redis_server.url, upstream_port, burro_port)
        try:
            deadline = time.monotonic() + 30
            await _wait_until_up(f"http://127.0.0.1:{upstream_port}/", deadline)
            await _wait_until_up(f"http://127.0.0.1:{burro_port}/health/live", deadline)
            await register_alias(redis_server.url)
            pids = {"direct": processes[0].pid, "burro": processes[1].pid}
            results = await scenarios(args, upstream_port, burro_port, pids)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=10)
            redis_server.close()
    report(results)


async def scenarios(
    args: argparse.Namespace, upstream_port: int, burro_port: int, pids: dict[str, int]
) -> list[Result]:
    targets = {
        "direct": (f"http://127.0.0.1:{upstream_port}/v1/chat/completions", MODEL),
        "burro": (f"http://127.0.0.1:{burro_port}/v1/chat/completions", "donkey"),
    }
    results = []
    for stream in (False, True):
        for clients in (1, 32):
            for name, (url, model) in targets.items():
                body = json.dumps({"model": model, "messages": MESSAGES, "stream": stream}).encode()
                warm = max(200, clients * 20)
                await load(url, body, stream=stream, clients=clients, max_requests=warm, seconds=5)
                cpu_before = cpu_seconds(pids[name])
                count, elapsed, latencies, overheads = await load(
                    url,
                    body,
                    stream=stream,
                    clients=clients,
                    max_requests=args.requests,
                    seconds=args.seconds,
                )
                cpu_ms = (cpu_seconds(pids[name]) - cpu_before) * 1000 / max(count, 1)
                kind = "stream" if stream else "plain"
                results.append(
                    Result(f"{name} {kind}", clients, count, elapsed, latencies, overheads, cpu_ms)
                )
    return results


def report(results: list[Result]) -> None:
    print()
    print(
        "| path | clients | requests | req/s | p50 ms | p99 ms | Burro adds p50 "
        "| x-burro-overhead-ms p50 | server CPU ms/req |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    direct = {(r.name.split()[1], r.clients): r for r in results if r.name.startswith("direct")}
    for r in results:
        base = direct[(r.name.split()[1], r.clients)]
        added = f"{r.pct(0.5) - base.pct(0.5):+.3f}" if r is not base else ""
        header = f"{statistics.median(r.overheads):.3f}" if r.overheads else ""
        print(
            f"| {r.name}{' (TTFC)' if 'stream' in r.name else ''} | {r.clients} | {r.requests} "
            f"| {r.rps:,.0f} | {r.pct(0.5):.3f} | {r.pct(0.99):.3f} | {added} | {header} "
            f"| {r.cpu_ms:.3f} |"
        )
    print()
    print(
        "Goals: Burro adds <= 0.5 ms p50 at 1 client; >= 2,000 req/s at 32 clients; stream "
        "adds <= 1 ms to time to first chunk."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=8.0, help="time bound per scenario")
    parser.add_argument("--requests", type=int, default=20_000, help="count bound per scenario")
    args = parser.parse_args()
    if args.upstream:
        serve_upstream(args.upstream)
        return
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
