"""Dataset → test examples: each chat example split at its last assistant message into the
prompt (everything before it) and the reference (that message)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from service.evaluations.records import PromptMessage

__all__ = ["Example", "read_examples", "text_of"]

# What a Chat Completions request accepts of a training message; `weight` (fine-tuning only)
# and anything else is left out.
_REQUEST_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "function_call")

_line_decoder = msgspec.json.Decoder(dict[str, Any])
_json = msgspec.json.Encoder()


class Example(msgspec.Struct, frozen=True, kw_only=True):
    """One test example: what to send, what to show, and what a good answer is."""

    line: int
    messages: list[dict[str, Any]]  # the prompt as the chat request sends it
    tools: list[Any] | None
    prompt: list[PromptMessage]  # the prompt as text, for people
    reference: str


def text_of(message: dict[str, Any]) -> str:
    """A message's text: its content (text parts joined), else its tool or function calls as
    JSON, so a tool-calling reference is compared as what the model should emit."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    for key in ("tool_calls", "function_call"):
        if message.get(key):
            return _json.encode(message[key]).decode()
    return ""


def _split(example: dict[str, Any], line: int) -> Example | None:
    messages = example.get("messages")
    if not isinstance(messages, list):
        return None
    last = next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if isinstance(messages[i], dict) and messages[i].get("role") == "assistant"
        ),
        None,
    )
    # Without an assistant message there is no reference; without anything before it, no prompt.
    if last is None or last == 0:
        return None
    before = [m for m in messages[:last] if isinstance(m, dict)]
    tools = example.get("tools")
    return Example(
        line=line,
        messages=[{k: m[k] for k in _REQUEST_KEYS if k in m} for m in before],
        tools=tools if isinstance(tools, list) and tools else None,
        prompt=[PromptMessage(role=str(m.get("role", "")), content=text_of(m)) for m in before],
        reference=text_of(messages[last]),
    )


def read_examples(path: Path, limit: int) -> list[Example]:
    """The first `limit` usable examples of a stored chat dataset, in file order.

    Reads line by line and stops once it has `limit`: a large dataset is never held whole.
    Lines that are no chat example with a prompt and a reference are skipped (a stored dataset
    was checked on the way in; a preference set has none).
    """
    found: list[Example] = []
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if not raw.strip():
                continue
            try:
                example = _line_decoder.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            split = _split(example, number)
            if split is not None:
                found.append(split)
                if len(found) >= limit:
                    break
    return found
