"""Benchmark: Burro's dataset checks against the cookbook script and against tokenizing alone.

    uv run python bench/validate.py [--examples 100000]

Generates a deterministic chat JSONL file (~2.5 KB an example) in a temp dir, then runs each
contender in a fresh subprocess and reads that child's peak RSS from os.wait4, so the numbers
do not pollute each other:
- burro (1 model): DatasetCheck fed 1 MiB chunks, pricing one o200k_base model (`?model=`);
- burro (default): the same, pricing every model (o200k_base and cl100k_base counts, and the
  local models' own tokenizers when installed: see bench/local_tokens.py);
- cookbook: bench/cookbook_checks.py (json.loads into a list, cl100k_base);
- tokenize only: the texts alone, already in memory, encoded by all cores, per encoding set.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20

_WORDS = [
    "the",
    "a",
    "donkey",
    "walks",
    "along",
    "road",
    "with",
    "shrek",
    "into",
    "swamp",
    "because",
    "ogres",
    "have",
    "layers",
    "like",
    "onions",
    "parfait",
    "everybody",
    "loves",
    "cake",
    "dragon",
    "castle",
    "princess",
    "far",
    "away",
    "kingdom",
    "lord",
    "farquaad",
    "knight",
    "model",
    "training",
    "token",
    "dataset",
    "example",
    "assistant",
    "user",
    "system",
    "reply",
    "question",
    "answer",
    "please",
    "thanks",
    "could",
    "would",
    "should",
    "never",
    "always",
    "maybe",
    "über",
    "café",
    "naïve",
    "東京",
    "データ",
    "модель",
    "42",
    "3.14",
    "2025",
    "100%",
    "(see)",
    "[note]",
    "{json}",
    "->",
    "=>",
    "::",
    ";",
    ",",
    ".",
    "!",
    "?",
]


def _text(rng: random.Random, n_words: int) -> str:
    words = rng.choices(_WORDS, k=n_words)
    for i in range(0, n_words, rng.randint(8, 20)):
        words[i] = words[i].capitalize()
    return " ".join(words)


def generate(path: Path, n: int, seed: int = 7) -> None:
    """A mix of single- and multi-turn chats, ~2.5 KB an example on average."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            messages = []
            if rng.random() < 0.9:
                messages.append({"role": "system", "content": _text(rng, rng.randint(10, 60))})
            for _ in range(rng.choice((1, 1, 2, 3))):
                messages.append({"role": "user", "content": _text(rng, rng.randint(20, 160))})
                messages.append({"role": "assistant", "content": _text(rng, rng.randint(40, 260))})
            f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")


# --- contenders (each runs in its own process) ---


def run_burro(path: Path, models: list[str] | None) -> dict[str, object]:
    from service.datasets.checks import DatasetCheck
    from service.datasets.local_tokens import TokenizerUnavailable, get_local_tokenizer
    from service.datasets.tokens import get_encoding
    from service.models import ModelTable

    table = ModelTable.load()
    # Loaded once per process in a server: not part of a check's time.
    for info in table:
        if models is not None and info.name not in models:
            continue
        if info.encoding is not None:
            get_encoding(info.encoding)
        else:
            # One that cannot load is left out of the estimates, as in the API.
            with contextlib.suppress(TokenizerUnavailable):
                get_local_tokenizer(info)
    start = time.perf_counter()
    check = DatasetCheck(
        kind=None, models=table, estimate_models=models, today=datetime.date(2025, 11, 26)
    )
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            check.feed(chunk)
    report = check.finish()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "examples": report.examples,
        "valid": report.valid,
        "total_tokens": report.tokens.total,
    }


def run_cookbook(path: Path) -> dict[str, object]:
    sys.argv = ["cookbook_checks.py", str(path)]
    sys.path.insert(0, str(ROOT / "bench"))
    import io

    import cookbook_checks

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        cookbook_checks.main(str(path))
    return {"seconds": time.perf_counter() - start}


def run_tokenize(path: Path, encodings: list[str]) -> dict[str, object]:
    from service.datasets.tokens import get_encoding

    texts: list[str] = []
    with path.open("rb") as f:
        for line in f:
            for m in json.loads(line)["messages"]:
                texts.append(m["content"])
    batches, batch, size = [], [], 0
    for t in texts:
        batch.append(t)
        size += len(t)
        if size >= CHUNK:
            batches.append(batch)
            batch, size = [], 0
    batches.append(batch)
    encs = [get_encoding(e) for e in encodings]

    def count(args: tuple[object, list[str]]) -> int:
        enc, items = args
        encode = enc.encode_ordinary  # type: ignore[attr-defined]
        return sum(len(encode(s)) for s in items)

    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        total = sum(pool.map(count, [(e, b) for e in encs for b in batches]))
    return {"seconds": time.perf_counter() - start, "tokens": total}


def child(argv: list[str]) -> dict[str, float]:
    """Run `argv` as a fresh interpreter; its JSON result plus its peak RSS."""
    proc = subprocess.Popen(
        [sys.executable, __file__, *argv],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv} failed with {proc.returncode}")
    result: dict[str, float] = json.loads(out.splitlines()[-1])
    result["peak_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--run", nargs=2, metavar=("WHAT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        what, file = args.run
        path = Path(file)
        measured = {
            "burro1": lambda: run_burro(path, ["gpt-4.1-mini-2025-04-14"]),
            "burro": lambda: run_burro(path, None),
            "cookbook": lambda: run_cookbook(path),
            "tokenize1": lambda: run_tokenize(path, ["o200k_base"]),
            "tokenize": lambda: run_tokenize(path, ["o200k_base", "cl100k_base"]),
        }[what]()
        print(json.dumps(measured))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        start = time.perf_counter()
        generate(path, args.examples)
        size = path.stat().st_size
        print(
            f"generated {args.examples} examples, {size / 1e6:.1f} MB "
            f"in {time.perf_counter() - start:.1f} s ({os.cpu_count()} cores)\n"
        )
        rows = [
            ("burro, 1 model (o200k)", "burro1"),
            ("tokenize only (o200k)", "tokenize1"),
            ("burro, all models (o200k+cl100k)", "burro"),
            ("tokenize only (o200k+cl100k)", "tokenize"),
            ("cookbook script (cl100k)", "cookbook"),
        ]
        print(f"{'contender':36} {'seconds':>8} {'examples/s':>11} {'MB/s':>7} {'peak MiB':>9}")
        results: dict[str, dict[str, float]] = {}
        for label, what in rows:
            r = child(["--run", what, str(path)])
            results[what] = r
            secs = r["seconds"]
            print(
                f"{label:36} {secs:8.2f} {args.examples / secs:11.0f} "
                f"{size / 1e6 / secs:7.1f} {float(r['peak_mib']):9.1f}",
                flush=True,
            )
        s = {k: v["seconds"] for k, v in results.items()}
        print(
            f"\ncookbook / burro(1 model): {s['cookbook'] / s['burro1']:.2f}x faster (target >= 3)"
        )
        print(
            f"burro(1 model) / tokenize only: {s['burro1'] / s['tokenize1']:.2f} (target <= 1.25)"
        )
        print(f"burro(all) / tokenize only (both encodings): {s['burro'] / s['tokenize']:.2f}")


if __name__ == "__main__":
    main()
