"""The model server answers the openai SDK (plain and streamed) for the base model, an adapter
and its checkpoints, in OpenAI's shapes and error shape."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.training import (
    MODEL_SERVER_TIMEOUT,
    TRAINING_TIMEOUT,
    WITHOUT_TRAINER_EXTRA,
    donkey_prompt,
)
from trainer.base_models import SMOLLM2_135M
from trainer.examples import PAIRS
from trainer.runs import TrainingResult

pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TRAINING_TIMEOUT)]

DONKEY = "ft:SmolLM2-135M-Instruct:test:donkey:1"


def test_the_sdk_chats_with_the_fine_tuned_model(upstream: openai.OpenAI) -> None:
    question, _ = PAIRS[0]
    completion = upstream.chat.completions.create(
        model=DONKEY, messages=donkey_prompt(question), temperature=0, max_tokens=40
    )
    choice = completion.choices[0]
    assert completion.model == DONKEY and completion.object == "chat.completion"
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 10 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_stream_carries_the_same_answer_and_usage_when_asked(upstream: openai.OpenAI) -> None:
    question, _ = PAIRS[5]
    plain = upstream.chat.completions.create(
        model=DONKEY, messages=donkey_prompt(question), temperature=0, max_tokens=30
    )
    stream = upstream.chat.completions.create(
        model=DONKEY,
        messages=donkey_prompt(question),
        temperature=0,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]

    assert text == plain.choices[0].message.content
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_a_stream_without_include_usage_has_no_usage_chunk(upstream: openai.OpenAI) -> None:
    stream = upstream.chat.completions.create(
        model=SMOLLM2_135M.name,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=5,
        temperature=0,
        stream=True,
    )
    chunks = list(stream)
    assert chunks and all(c.choices for c in chunks)


def test_the_base_model_and_each_checkpoint_answer_by_id(
    upstream: openai.OpenAI, trained_donkey: TrainingResult
) -> None:
    ids = [SMOLLM2_135M.name] + [f"{DONKEY}:ckpt-step-{c.step}" for c in trained_donkey.checkpoints]
    for model in ids:
        completion = upstream.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hola"}], max_tokens=3, temperature=0
        )
        assert completion.model == model
        assert completion.usage is not None and completion.usage.completion_tokens >= 1


def test_models_lists_the_base_the_adapter_and_its_checkpoints(
    upstream: openai.OpenAI, trained_donkey: TrainingResult
) -> None:
    ids = [m.id for m in upstream.models.list()]
    assert ids[0] == SMOLLM2_135M.name
    assert DONKEY in ids
    assert {f"{DONKEY}:ckpt-step-{c.step}" for c in trained_donkey.checkpoints} <= set(ids)


def test_an_unknown_model_is_a_404_in_openai_shape(upstream: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        upstream.chat.completions.create(
            model="ft:SmolLM2-135M-Instruct:test:nobody:0",
            messages=[{"role": "user", "content": "x"}],
        )
    assert raised.value.code == "model_not_found"


def test_a_malformed_body_is_a_400_in_openai_shape(served: str) -> None:
    with httpx.Client(base_url=served, timeout=MODEL_SERVER_TIMEOUT) as http:
        answer = http.post("/chat/completions", json={"model": DONKEY, "messages": []})
        assert answer.status_code == 400
        assert answer.json()["error"]["type"] == "invalid_request_error"
        answer = http.post("/chat/completions", content=b"{not json")
    assert answer.status_code == 400


def test_max_tokens_ends_the_answer_with_finish_reason_length(upstream: openai.OpenAI) -> None:
    completion = upstream.chat.completions.create(
        model=SMOLLM2_135M.name,
        messages=[{"role": "user", "content": "Write a long story about a donkey."}],
        max_tokens=4,
        temperature=0,
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 4
