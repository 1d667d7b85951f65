"""Training data and uploads shared by the sandbox tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai

# The `start_sandbox` fixture: start a sandbox with a config (and clock), get its base URL.
StartSandbox = Callable[..., str]


def chat_examples(n: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "You are Burro, a helpful donkey."},
                {"role": "user", "content": f"Question number {i}: what is the colour of hay {i}?"},
                {"role": "assistant", "content": f"Answer {i}: hay number {i} is golden."},
            ]
        }
        for i in range(n)
    ]


def jsonl(examples: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in examples)


def upload_training(client: openai.OpenAI, content: bytes, name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, content), purpose="fine-tune").id
