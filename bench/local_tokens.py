"""Benchmark: counting a dataset with tiktoken against counting it with a local model's tokenizer.

    uv run python bench/local_tokens.py [--examples 5000] [--model SmolLM2-135M-Instruct]

Generates bench/validate.py's deterministic chat file, then counts it, in this one process,
each way a dataset upload can (tokenizers loaded beforehand, as a server has them):
- upload, o200k (`?model=gpt-4o-mini`): the cookbook count with tiktoken;
- upload, local (`?model=` the local model): each example rendered with its chat template and
  encoded with its own tokenizer (service/datasets/local_tokens.py);
- upload, every hosted model: both tiktoken encodings (what an upload without `?model=` counted
  before local models);
- upload, every model: both tiktoken encodings and the local model, as an upload without
  `?model=` does now;
- encode only: the same rendered texts, already in memory, encoded by tiktoken (o200k, all
  cores) and by the local tokenizer (`encode_batch_fast`), without rendering or checks.
Tokens/s is the tokens that way counts over its seconds; MB/s is the file's size over them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from validate import CHUNK, generate  # noqa: E402

from service.datasets.checks import DatasetCheck  # noqa: E402 - after the path is set
from service.datasets.local_tokens import LocalTokenizer, get_local_tokenizer  # noqa: E402
from service.datasets.tokens import get_encoding  # noqa: E402
from service.models import ModelInfo, ModelTable  # noqa: E402

TODAY = datetime.date(2026, 12, 2)
HOSTED = "gpt-4o-mini-2024-07-18"


def upload(path: Path, table: ModelTable, models: list[str] | None) -> tuple[float, int]:
    """Seconds to check and count `path` as an upload does, and the report's token total."""
    start = time.perf_counter()
    check = DatasetCheck(kind=None, models=table, estimate_models=models, today=TODAY)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            check.feed(chunk)
    report = check.finish()
    return time.perf_counter() - start, report.tokens.total


def encode_only(texts: list[str], local: LocalTokenizer) -> dict[str, tuple[float, int]]:
    """Seconds and tokens to encode `texts` with o200k (all cores) and the local tokenizer."""
    o200k = get_encoding("o200k_base")
    batches = [texts[i : i + 512] for i in range(0, len(texts), 512)]

    def tiktoken_count(batch: list[str]) -> int:
        return sum(len(o200k.encode_ordinary(t)) for t in batch)

    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        tiktoken_tokens = sum(pool.map(tiktoken_count, batches))
    tiktoken_s = time.perf_counter() - start
    start = time.perf_counter()
    local_tokens = sum(sum(local.count_texts(b)) for b in batches)
    local_s = time.perf_counter() - start
    return {
        "encode only, o200k": (tiktoken_s, tiktoken_tokens),
        "encode only, local tokenizer": (local_s, local_tokens),
    }


def rendered_texts(path: Path, local: LocalTokenizer) -> list[str]:
    """Every example of `path` rendered with the local model's chat template."""
    import msgspec

    texts = []
    with path.open("rb") as f:
        for line in f:
            texts.append(local.render(msgspec.json.decode(line)["messages"]))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    args = parser.parse_args()
    table = ModelTable.load()
    info = table.get(args.model)
    if info is None or not info.is_local:
        raise SystemExit(f"{args.model} is not a local model of the table")
    local = _load(info)
    get_encoding("o200k_base")
    get_encoding("cl100k_base")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        generate(path, args.examples)
        size = path.stat().st_size
        print(f"{args.examples} examples, {size / 1e6:.1f} MB, {os.cpu_count()} cores\n")
        hosted = [m.name for m in table if not m.is_local and m.name in _open(table)]
        runs: dict[str, Callable[[], tuple[float, int]]] = {
            "upload, o200k (?model=gpt-4o-mini)": lambda: upload(path, table, [HOSTED]),
            f"upload, local (?model={info.name})": lambda: upload(path, table, [info.name]),
            "upload, every hosted model (o200k+cl100k)": lambda: upload(path, table, hosted),
            "upload, every model (the default)": lambda: upload(path, table, None),
        }
        results = {label: run() for label, run in runs.items()}
        results |= encode_only(rendered_texts(path, local), local)
    print(f"{'way':44} {'seconds':>8} {'tokens':>11} {'tokens/s':>11} {'MB/s':>6}")
    for label, (seconds, tokens) in results.items():
        print(
            f"{label:44} {seconds:8.2f} {tokens:11,} {tokens / seconds:11,.0f} "
            f"{size / 1e6 / seconds:6.1f}"
        )


def _open(table: ModelTable) -> set[str]:
    """The models an upload without `?model=` prices (neither retired nor closed)."""
    return {
        m.name
        for m in table
        if not table.is_retired(m.name, TODAY) and not table.training_closed(m.name, TODAY)
    }


def _load(info: ModelInfo) -> LocalTokenizer:
    start = time.perf_counter()
    local = get_local_tokenizer(info)
    print(f"{info.name}: tokenizer loaded in {time.perf_counter() - start:.2f} s")
    return local


if __name__ == "__main__":
    main()
