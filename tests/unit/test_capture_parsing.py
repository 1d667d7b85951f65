"""What capture keeps of an exchange: the request's messages and the answer's text, plain or
assembled from a stream's deltas; nothing when either is missing."""

from __future__ import annotations

import json

import msgspec

from service.inference.captures import Captured, answer_text, exchange, training_lines

BODY = json.dumps(
    {"model": "donkey", "temperature": 0.2, "messages": [{"role": "user", "content": "Hola"}]}
).encode()


def _event(content: str | None, index: int = 0) -> bytes:
    chunk = {"choices": [{"index": index, "delta": {"content": content}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def test_a_plain_answer_keeps_the_first_choices_text() -> None:
    answer = json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": "Hi!"}}, {"message": {}}]}
    ).encode()
    assert answer_text(answer, stream=False) == "Hi!"


def test_a_streamed_answer_is_assembled_from_its_deltas() -> None:
    events = (
        b": keep-alive\n\n"
        + _event("Ho")
        + _event("other choice", index=1)
        + _event(None)
        + _event("la")
        + b'data: {"choices":[],"usage":{"prompt_tokens":3}}\n\n'
        + b"data: [DONE]\n\n"
    )
    assert answer_text(events, stream=True) == "Hola"


def test_answers_without_text_are_not_kept() -> None:
    tool_call = json.dumps({"choices": [{"message": {"content": None}}]}).encode()
    assert answer_text(tool_call, stream=False) is None
    assert answer_text(b"not json", stream=False) is None
    assert exchange(b'{"model": "donkey"}', b"", "m", stream=False) is None


def test_only_the_messages_of_the_request_are_kept() -> None:
    answer = json.dumps({"choices": [{"message": {"content": "Hi!"}}]}).encode()
    kept = exchange(BODY, answer, "ft:m", stream=False)
    assert kept is not None
    assert set(json.loads(msgspec.json.encode(kept))) == {"messages", "answer", "model"}
    assert json.loads(bytes(kept.messages)) == [{"role": "user", "content": "Hola"}]


def test_captures_become_chat_examples_ending_with_the_answer() -> None:
    messages = msgspec.Raw(b'[{"role":"user","content":"Hola"}]')
    captured = [Captured(id="1-0", created_at=1, messages=messages, answer="Hi!", model="m")]
    lines = training_lines(captured).splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "messages": [
                {"role": "user", "content": "Hola"},
                {"role": "assistant", "content": "Hi!"},
            ]
        }
    ]
    assert training_lines([]) == b""
