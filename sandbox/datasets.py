"""Checks a training file the way OpenAI does at the end of `validating_files`, and keeps the
examples that the fine-tuned model will answer from."""

from __future__ import annotations

from typing import Any

import msgspec

from sandbox.records import DatasetCheck, Example, JobError

MIN_EXAMPLES = 10
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_LINE = msgspec.json.Decoder()


class _Invalid(Exception):
    pass


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _check_messages(messages: Any, key: str, *, need_assistant: bool) -> tuple[str, str]:
    if not isinstance(messages, list) or not messages:
        raise _Invalid(f'key "{key}" must be a non-empty list of messages')
    prompt = ""
    reply = ""
    for position, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            raise _Invalid(f'key "{key}", message {position} is not an object')
        role = message.get("role")
        if role not in _ROLES:
            raise _Invalid(f'key "{key}", message {position}: unrecognized role {role!r}')
        content = message.get("content")
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            raise _Invalid(f'key "{key}", message {position}: missing "content"')
        if role == "user":
            prompt = text_of(content)
            reply = ""
        elif role == "assistant" and not reply:
            reply = text_of(content)
    if need_assistant and not any(
        isinstance(m, dict) and m.get("role") == "assistant" for m in messages
    ):
        raise _Invalid(f'key "{key}": the example has no assistant message')
    return prompt, reply


def _example(line: Any, method: str) -> Example:
    if not isinstance(line, dict):
        raise _Invalid("each line must be a JSON object")
    if method == "dpo":
        source = line.get("input")
        if not isinstance(source, dict):
            raise _Invalid('key "input" is missing or not an object')
        prompt, _ = _check_messages(source.get("messages"), "input", need_assistant=False)
        preferred = line.get("preferred_output")
        if not isinstance(line.get("non_preferred_output"), list):
            raise _Invalid('key "non_preferred_output" is missing or not a list')
        _, reply = _check_messages(preferred, "preferred_output", need_assistant=True)
        return Example(prompt=prompt, reply=reply)
    if "messages" not in line:
        raise _Invalid('key "messages" is missing')
    prompt, reply = _check_messages(line["messages"], "messages", need_assistant=True)
    return Example(prompt=prompt, reply=reply)


def check_dataset(content: bytes, *, method: str, param: str) -> DatasetCheck:
    """Parse a JSONL training or validation file: the first problem found fails it."""
    examples: list[Example] = []
    for number, raw in enumerate(content.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = _LINE.decode(raw)
        except msgspec.DecodeError:
            return _failed(len(examples), param, f"Line {number}: invalid JSON")
        try:
            examples.append(_example(line, method))
        except _Invalid as exc:
            return _failed(len(examples), param, f"Line {number}, {exc}")
    if param == "training_file" and len(examples) < MIN_EXAMPLES:
        return DatasetCheck(
            n_examples=len(examples),
            error=JobError(
                code="invalid_n_examples",
                message=(
                    f"Training file has {len(examples)} example(s), but must have at least "
                    f"{MIN_EXAMPLES} examples"
                ),
                param=param,
            ),
        )
    return DatasetCheck(n_examples=len(examples), error=None, examples=tuple(examples))


def _failed(n_examples: int, param: str, reason: str) -> DatasetCheck:
    which = "training" if param == "training_file" else "validation"
    return DatasetCheck(
        n_examples=n_examples,
        error=JobError(
            code="invalid_file_format",
            message=f"The job failed due to an invalid {which} file. Invalid file format. {reason}",
            param=param,
        ),
    )
