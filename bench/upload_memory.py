"""Benchmark: the API's peak memory while several tenants upload huge single-line files at once.

    uv run python bench/upload_memory.py [--uploads 4] [--megabytes 50] [--root PATH]

Starts a private redis-server and `burro serve` (from `--root`, default this checkout, so an
older checkout can be measured the same way), writes one file that is a single JSONL line of
`--megabytes` MB (a chat example whose user message is that long), and posts it to
`/v1/datasets` from `--uploads` threads at once. Reports each answer's status and the API's
resident memory: before the uploads and at its peak (VmHWM of the largest process of the
server's tree, which under granian is its worker). Target: peak <= 300 MiB for 4 uploads of 50 MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from burro.redis_server import RedisServer, free_port  # noqa: E402
from burro.testing import stop_process, wait_until_up  # noqa: E402

TEXT = b"the donkey walks along the road to the swamp because ogres have layers like onions "


def write_single_line(path: Path, megabytes: int) -> None:
    words = TEXT
    target = megabytes * 1_000_000
    with path.open("wb") as out:
        out.write(b'{"messages": [{"role": "user", "content": "')
        written = 0
        while written < target:
            out.write(words)
            written += len(words)
        out.write(b'"}, {"role": "assistant", "content": "Hee-haw!"}]}\n')


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for text in child.read_text().split():
            found += tree(int(text))
    return found


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def largest(pids: list[int], field: str) -> int:
    return max(memory_kib(p, field) for p in pids)


def upload(url: str, path: Path) -> tuple[int, float]:
    started = time.perf_counter()

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as source:
            while block := source.read(1 << 20):
                yield block

    response = httpx.post(
        f"{url}/v1/datasets",
        content=chunks(),
        headers={"Authorization": "Bearer bench-key", "Content-Type": "application/jsonl"},
        timeout=600,
    )
    return response.status_code, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="burro-bench-") as tmp, RedisServer() as redis:
        folder = Path(tmp)
        big = folder / "one-line.jsonl"
        write_single_line(big, args.megabytes)
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(args.root),
            "REDIS_URL": redis.url,
            "BURRO_API_KEYS": "bench:bench-key",
            "BURRO_DATA_DIR": str(folder / "data"),
            "BURRO_RATE_LIMIT": "0",
            "BURRO_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "burro", "serve", "--port", str(port)],
            cwd=args.root,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(f"{url}/health/live", server)
            pids = tree(server.pid)
            before = largest(pids, "VmRSS")
            with ThreadPoolExecutor(args.uploads) as pool:
                results = list(pool.map(lambda _: upload(url, big), range(args.uploads)))
            peak = largest(tree(server.pid), "VmHWM")
        finally:
            stop_process(server)
    print(f"served from: {args.root}")
    print(f"uploads: {args.uploads} at once, each a file of one line of {args.megabytes} MB")
    for status, seconds in results:
        print(f"  answer {status} after {seconds:.1f} s")
    print(f"API resident memory before: {before / 1024:.0f} MiB")
    print(f"API peak resident memory:   {peak / 1024:.0f} MiB (target <= 300 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
