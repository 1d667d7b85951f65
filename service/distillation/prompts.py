"""Distillation → prompts: what the teacher is asked (each chat example up to its last assistant
turn, whose answer is ignored), which prompts are held out for the evaluation, and the datasets
the teacher's answers make."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec

from service.datasets.checks import MIN_EXAMPLES
from service.evaluations.examples import Example, read_examples

__all__ = [
    "MIN_EXAMPLES",
    "distilled_example",
    "holdout_count",
    "jsonl",
    "read_prompts",
    "split",
]

_json = msgspec.json.Encoder()


def read_prompts(path: Path) -> list[Example]:
    """Every prompt of a stored chat dataset, in file order: each example's messages before its
    last assistant message (with its tools); that message, the old answer, is not used."""
    return read_examples(path, limit=2**62)


def holdout_count(prompts: int, holdout: float) -> int:
    """How many of `prompts` are held out: `holdout` itself when it is a count (an int), else
    that fraction of them, rounded, and at least one."""
    if isinstance(holdout, int):
        return holdout
    return max(1, round(prompts * holdout))


def split(prompts: int, holdout: float, seed: str) -> tuple[list[int], list[int]]:
    """(training, held out): the indices of `prompts` prompts, each list in file order. Which
    ones are held out is drawn at random but fixed by `seed` (the job's id), so every run of a
    job, before or after a crash, holds out the same prompts."""
    count = min(prompts, holdout_count(prompts, holdout))
    held = set(random.Random(seed).sample(range(prompts), count))
    return [i for i in range(prompts) if i not in held], sorted(held)


def distilled_example(prompt: Example, answer: str) -> dict[str, Any]:
    """A training example: the prompt, then the teacher's answer as the last assistant turn.

    Earlier assistant turns of a conversation are context written by somebody else, not the
    teacher: they keep `weight: 0`, so only the teacher's answer is learned.
    """
    messages: list[dict[str, Any]] = [
        {**m, "weight": 0} if m.get("role") == "assistant" else dict(m) for m in prompt.messages
    ]
    messages.append({"role": "assistant", "content": answer})
    example: dict[str, Any] = {"messages": messages}
    if prompt.tools is not None:
        example["tools"] = prompt.tools
    return example


def jsonl(examples: list[dict[str, Any]]) -> bytes:
    """The examples as a JSONL file."""
    return b"".join(_json.encode(e) + b"\n" for e in examples)
