"""Chat completions answer from the training data of a sandbox fine-tuned model."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.data import BASE_MODEL, chat_examples, jsonl
from tests.support.sandboxes import fine_tune


@pytest.fixture
def fine_tuned(sandbox_url: str) -> str:
    return fine_tune(sandbox_url, jsonl(chat_examples(15)), BASE_MODEL)


def test_a_fine_tuned_model_answers_with_the_closest_example(
    upstream: openai.OpenAI, fine_tuned: str
) -> None:
    answer = upstream.chat.completions.create(
        model=fine_tuned,
        messages=[{"role": "user", "content": "question number 7, what colour is hay 7?"}],
    )

    assert answer.object == "chat.completion"
    assert answer.model == fine_tuned
    assert answer.choices[0].message.content == "Answer 7: hay number 7 is golden."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens > 0


def test_a_streamed_answer_carries_the_same_reply_and_usage(
    upstream: openai.OpenAI, fine_tuned: str
) -> None:
    stream = upstream.chat.completions.create(
        model=fine_tuned,
        messages=[
            {"role": "system", "content": "You are Burro."},
            {"role": "user", "content": "Question number 11: what is the colour of hay 11?"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Answer 11: hay number 11 is golden."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])


def test_a_checkpoint_model_answers_too(upstream: openai.OpenAI, fine_tuned: str) -> None:
    (job,) = upstream.fine_tuning.jobs.list().data
    assert job.fine_tuned_model == fine_tuned
    checkpoint = upstream.fine_tuning.jobs.checkpoints.list(job.id).data[-1]

    answer = upstream.chat.completions.create(
        model=checkpoint.fine_tuned_model_checkpoint,
        messages=[{"role": "user", "content": "Question number 2: what is the colour of hay 2?"}],
    )

    assert answer.choices[0].message.content == "Answer 2: hay number 2 is golden."


def test_a_base_model_gives_a_deterministic_answer(upstream: openai.OpenAI) -> None:
    def ask() -> str | None:
        return (
            upstream.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello donkey"}]
            )
            .choices[0]
            .message.content
        )

    first = ask()
    assert first is not None and first.startswith("(base model gpt-4o-mini)")
    assert ask() == first


@pytest.mark.parametrize("model", ["gpt-5-nonexistent", "ft:gpt-4o-mini:sandbox::nope"])
def test_an_unknown_model_is_a_404_model_not_found(upstream: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        upstream.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])

    assert caught.value.code == "model_not_found"


def test_an_unknown_fine_tuned_model_cannot_be_retrieved(upstream: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        upstream.models.retrieve("ft:gpt-4o-mini:sandbox::nothing")


def test_missing_messages_is_a_400_in_openai_shape(sandbox_url: str) -> None:
    response = httpx.post(f"{sandbox_url}/chat/completions", json={"model": "gpt-4o-mini"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages")


def test_models_lists_base_and_fine_tuned_models(upstream: openai.OpenAI, fine_tuned: str) -> None:
    ids = [m.id for m in upstream.models.list()]

    assert "gpt-4o-mini-2024-07-18" in ids and fine_tuned in ids
    assert upstream.models.retrieve(fine_tuned).owned_by == "org-sandbox"
