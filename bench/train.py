"""Benchmark the local trainer against what a user would run instead, and its model server.

    uv run python bench/train.py [--repeat 1] [--threads N] [--generation-tokens 64]

Training: the README's Donkey (12 examples) on SmolLM2-135M-Instruct with the same LoRA, data,
hyperparameters (the Donkey's "auto" values: 8 epochs, batch 1, lr 5e-4) and seed, once through
`trainer.training.train` (hooks, metrics CSV, a checkpoint with resume state per epoch) and
once as a plain TRL `SFTTrainer` + PEFT script. Each run is its own process, so its wall time
(model load to adapter saved) and peak RSS are its own; with `--repeat` they alternate and the
median counts. Targets: Burro's wall time at most 1.10x the script's, final loss within 2%.

Generation: tokens/s of greedy answers from the same adapter through the model server (HTTP,
the openai SDK), through Burro's chat endpoint in front of it (what a caller of a local model
gets), and through plain `generate()` on a PEFT model; and through llama.cpp when
`llama_cpp` is importable (`uv run --with llama-cpp-python python bench/train.py`, a source
build of a few minutes), with the adapter converted by llama.cpp's `convert_lora_to_gguf.py`.

Both sides start from the prepared (dequantized) base model; preparing it from the GGUF file is
a one-time cost, reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from openai.types.chat import ChatCompletionMessageParam

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trainer  # noqa: E402, F401 - the trainer's process environment, before torch loads
from trainer.base_models import SMOLLM2_135M, locate_weights, prepare  # noqa: E402
from trainer.examples import PAIRS, write_chat_file  # noqa: E402

SEED = 42
EPOCHS, BATCH, LEARNING_RATE = 8, 1, 5e-4  # the Donkey's resolved "auto" (see hyperparameters)
STORY = "Write a long story about a donkey and a dragon."
PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": STORY}]
CACHE = ROOT / "bench" / "out" / "models"


# --- Children: one training run each ---------------------------------------------------------


def run_burro(data: Path, out: Path) -> dict[str, Any]:
    from trainer.hyperparameters import Hyperparameters
    from trainer.runs import TrainingRequest
    from trainer.training import train

    started = time.perf_counter()
    result = train(
        TrainingRequest(
            base_model=SMOLLM2_135M,
            training_file=data,
            output_dir=out,
            cache_dir=CACHE,
            seed=SEED,
            hyperparameters=Hyperparameters(
                n_epochs=EPOCHS, batch_size=BATCH, learning_rate_multiplier=1.0
            ),
        )
    )
    seconds = time.perf_counter() - started
    assert result.status == "succeeded"
    assert result.hyperparameters.learning_rate == LEARNING_RATE
    with result.results_file.open() as f:
        losses = [float(line.split(",")[1]) for line in list(f)[1:]]
    return {"seconds": seconds, "losses": losses}


def run_plain(data: Path, out: Path) -> dict[str, Any]:
    """What a user writes with TRL and PEFT: prompt/completion rows, SFTTrainer, a LoRA."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    started = time.perf_counter()
    model_dir = str(prepare(SMOLLM2_135M, CACHE))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = []
    for line in data.read_text().splitlines():
        messages = json.loads(line)["messages"]
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    config = SFTConfig(
        output_dir=str(out),
        num_train_epochs=EPOCHS,
        per_device_train_batch_size=BATCH,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        seed=SEED,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        max_length=SMOLLM2_135M.max_tokens_per_example,
        activation_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        # TRL's configs default to bf16 autocast; Burro trains in float32 on a CPU, so the
        # script is told the same (otherwise its losses differ from the first step on).
        bf16=False,
    )
    set_seed(SEED)
    sft = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        # Burro's adapter shape (trainer.runs.LoraSettings), as a user would write it.
        peft_config=LoraConfig(
            task_type="CAUSAL_LM",
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules="all-linear",
        ),
    )
    sft.train()
    sft.save_model(str(out / "adapter"))
    seconds = time.perf_counter() - started
    losses = [float(e["loss"]) for e in sft.state.log_history if "loss" in e]
    return {"seconds": seconds, "losses": losses}


def child(mode: str, data: Path, out: Path, threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    result = run_burro(data, out) if mode == "burro" else run_plain(data, out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(result), flush=True)


def spawn(mode: str, data: Path, out: Path, threads: int | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, str(data), str(out)]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line.removeprefix("RESULT ")))
    raise RuntimeError(f"{mode} run failed:\n{done.stderr[-3000:]}")


# --- Generation ------------------------------------------------------------------------------


def generation(adapter: Path, tokens: int, threads: int | None) -> dict[str, float]:
    """Tokens/s of greedy answers: the model server over HTTP, plain generate(), llama.cpp."""
    import openai
    import torch
    from peft import PeftModel
    from transformers import BatchEncoding

    from burro.testing import serve_in_thread
    from trainer.base_models import load_model, load_tokenizer
    from trainer.serving.adapters import MappingResolver
    from trainer.serving.app import create_app
    from trainer.serving.engine import Engine

    if threads:
        torch.set_num_threads(threads)
    model_dir = prepare(SMOLLM2_135M, CACHE)
    figures: dict[str, float] = {}

    engine = Engine(SMOLLM2_135M, model_dir, MappingResolver({"donkey": adapter}))
    with (
        serve_in_thread(create_app(engine)) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="unused", timeout=600) as client,
    ):
        for model, name in (("donkey", "server_adapter"), (SMOLLM2_135M.name, "server_base")):
            client.chat.completions.create(model=model, messages=PROMPT, max_tokens=4)
            started = time.perf_counter()
            answer = client.chat.completions.create(
                model=model, messages=PROMPT, max_tokens=tokens, temperature=0
            )
            assert answer.usage is not None
            figures[name] = answer.usage.completion_tokens / (time.perf_counter() - started)
        figures.update(through_burro(url + "/v1", tokens))
    del engine

    tokenizer = load_tokenizer(SMOLLM2_135M, model_dir)
    peft_model = PeftModel.from_pretrained(load_model(SMOLLM2_135M, model_dir), str(adapter))
    peft_model.eval()
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": STORY}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    assert isinstance(inputs, BatchEncoding)
    with torch.no_grad():
        # PEFT's generate() is untyped.
        peft_model.generate(  # type: ignore[no-untyped-call]
            **inputs, max_new_tokens=4, do_sample=False
        )
        started = time.perf_counter()
        output = peft_model.generate(  # type: ignore[no-untyped-call]
            **inputs, max_new_tokens=tokens, do_sample=False
        )
    made = output.shape[1] - inputs["input_ids"].shape[1]
    figures["plain_generate_adapter"] = made / (time.perf_counter() - started)
    figures.update(llama_cpp_speed(adapter, model_dir, tokens, threads))
    return figures


def through_burro(model_server: str, tokens: int) -> dict[str, float]:
    """The same adapter through Burro's own chat endpoint: the API (auth, the catalog look-up,
    usage) proxying to the model server, as a caller sees a local model."""
    import asyncio

    import openai
    from redis.asyncio import Redis

    from burro.redis_server import RedisServer
    from burro.testing import serve_in_thread
    from service.app import create_app as create_api
    from service.inference.catalog import register_model
    from service.settings import ProviderSettings, Settings

    async def register(url: str) -> None:
        async with Redis.from_url(url) as redis:
            await register_model(
                redis,
                tenant="bench",
                job_id="job_bench",
                model="donkey",
                provider="local",
                base_model=SMOLLM2_135M.name,
            )

    with RedisServer(data_dir=Path(tempfile.mkdtemp())) as redis_server:
        settings = Settings(
            redis_url=redis_server.url,
            data_dir=Path(tempfile.mkdtemp()),
            api_keys=(("bench", "bench-key"),),
            providers=(ProviderSettings(name="local", kind="local", base_url=model_server),),
            rate_limit=0,
            log_level="WARNING",
        )
        asyncio.run(register(redis_server.url))
        with (
            serve_in_thread(create_api(settings, configure_logs=False)) as burro,
            openai.OpenAI(base_url=burro + "/v1", api_key="bench-key", timeout=600) as client,
        ):
            client.chat.completions.create(model="donkey", messages=PROMPT, max_tokens=4)
            started = time.perf_counter()
            answer = client.chat.completions.create(
                model="donkey", messages=PROMPT, max_tokens=tokens, temperature=0
            )
            assert answer.usage is not None
            return {
                "burro_chat_adapter": answer.usage.completion_tokens
                / (time.perf_counter() - started)
            }


def llama_cpp_speed(
    adapter: Path, model_dir: Path, tokens: int, threads: int | None
) -> dict[str, float]:
    """llama.cpp on the original Q4_1 GGUF with the adapter converted to a GGUF LoRA."""
    try:
        import llama_cpp
    except ImportError:
        print("llama.cpp: not installed (uv run --with llama-cpp-python ...), skipped")
        return {}
    script = next(Path(llama_cpp.__file__).parent.parent.rglob("convert_lora_to_gguf.py"), None)
    if script is None:
        print("llama.cpp: convert_lora_to_gguf.py not found beside llama_cpp, skipped")
        return {}
    lora = Path(tempfile.mkdtemp()) / "donkey-lora.gguf"
    convert = [sys.executable, str(script), str(adapter), "--base", str(model_dir)]
    subprocess.run(
        [*convert, "--outfile", str(lora), "--outtype", "f32"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    llm = llama_cpp.Llama(
        model_path=str(locate_weights(SMOLLM2_135M)),
        lora_path=str(lora),
        n_ctx=2048,
        n_threads=threads or os.cpu_count() or 1,
        verbose=False,
    )
    llm.create_chat_completion(messages=PROMPT, max_tokens=4, temperature=0)
    started = time.perf_counter()
    answer = llm.create_chat_completion(messages=PROMPT, max_tokens=tokens, temperature=0)
    made = answer["usage"]["completion_tokens"]
    return {"llama_cpp_adapter": made / (time.perf_counter() - started)}


# --- The report ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="training runs of each kind")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--generation-tokens", type=int, default=64)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, data, out = args.child
        return child(mode, Path(data), Path(out), args.threads)

    started = time.perf_counter()
    prepare(SMOLLM2_135M, CACHE)
    print(
        f"base model prepared (one-time GGUF dequantization): {time.perf_counter() - started:.1f} s"
    )
    work = Path(tempfile.mkdtemp(prefix="burro-bench-train-"))
    data = write_chat_file(work / "donkey.jsonl", PAIRS)
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "burro": []}
    for i in range(args.repeat):
        for mode in ("plain", "burro"):
            result = spawn(mode, data, work / f"{mode}-{i}", args.threads)
            runs[mode].append(result)
            print(
                f"{mode:>5} run {i + 1}: {result['seconds']:.1f} s, first/final loss "
                f"{result['losses'][0]:.5f}/"
                f"{result['losses'][-1]:.5f}, peak RSS {result['peak_rss_mb']:.0f} MB, "
                f"{result['threads']} threads",
                flush=True,
            )
    plain_s = statistics.median(r["seconds"] for r in runs["plain"])
    burro_s = statistics.median(r["seconds"] for r in runs["burro"])
    plain_loss, burro_loss = runs["plain"][0]["losses"], runs["burro"][0]["losses"]
    per_epoch = len(burro_loss) // EPOCHS
    last_epoch = [statistics.mean(x[-per_epoch:]) for x in (plain_loss, burro_loss)]
    loss_gap = abs(burro_loss[-1] - plain_loss[-1]) / plain_loss[-1]
    print(f"\ntraining ({len(burro_loss)} steps, {len(PAIRS)} examples, {EPOCHS} epochs):")
    print(f"  wall time: burro {burro_s:.1f} s / plain {plain_s:.1f} s = {burro_s / plain_s:.3f}x")
    print(
        f"  final loss: burro {burro_loss[-1]:.4f} / plain {plain_loss[-1]:.4f} "
        f"({100 * loss_gap:.2f}% apart); last-epoch mean {last_epoch[1]:.4f} / {last_epoch[0]:.4f}"
    )
    print(
        f"  peak RSS: burro {max(r['peak_rss_mb'] for r in runs['burro']):.0f} MB, "
        f"plain {max(r['peak_rss_mb'] for r in runs['plain']):.0f} MB"
    )
    verdict = "meets" if burro_s <= 1.10 * plain_s and loss_gap <= 0.02 else "misses"
    print(f"  {verdict} the targets (<= 1.10x, final loss within 2%)")

    figures = generation(work / "burro-0" / "adapter", args.generation_tokens, args.threads)
    print(f"\ngeneration (greedy, up to {args.generation_tokens} tokens):")
    for name, value in figures.items():
        print(f"  {name:>24}: {value:6.1f} tokens/s ({1000 / value:.0f} ms/token)")
    return None


if __name__ == "__main__":
    main()
