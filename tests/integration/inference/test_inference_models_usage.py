"""`/v1/models` lists what a tenant can chat with; `/v1/usage` counts and prices its tokens."""

from __future__ import annotations

import datetime

import httpx
import openai
import pytest

from service.ids import new_id
from tests.support.data import asking
from tests.support.store import register
from tests.support.waiting import wait_for

QUESTION = asking(5)


def test_models_lists_the_tenants_models_and_aliases_only(
    sdk: openai.OpenAI, donkey: str, sandbox_model: str, redis_url: str
) -> None:
    register(redis_url, "globex", new_id("job_"), sandbox_model + "-theirs")

    models = {m.id: m for m in sdk.models.list()}

    # Burro's own base models (the local trainers') answer every tenant.
    assert set(models) == {sandbox_model, donkey, "gpt-4o-mini", "SmolLM2-135M-Instruct"}
    assert models[donkey].owned_by == "acme" and models[donkey].object == "model"
    assert models["SmolLM2-135M-Instruct"].owned_by == "burro"
    assert models[sandbox_model].created > 0
    assert sdk.models.retrieve(donkey).id == donkey


def test_an_unknown_model_is_a_404_on_models_too(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("nope")
    assert caught.value.code == "model_not_found"


def test_usage_is_counted_per_model_and_day_and_priced(
    sdk: openai.OpenAI, client: httpx.Client, donkey: str, sandbox_model: str
) -> None:
    plain = sdk.chat.completions.create(model=donkey, messages=QUESTION)
    streamed = list(
        sdk.chat.completions.create(
            model=donkey,
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert plain.usage is not None and streamed[-1].usage is not None

    def counted() -> dict[str, object] | None:
        rows = client.get("/v1/usage").json()["data"]
        return rows[0] if rows and rows[0]["requests"] == 2 else None

    row = wait_for(counted, timeout=10)

    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    tokens_in = plain.usage.prompt_tokens + streamed[-1].usage.prompt_tokens
    tokens_out = plain.usage.completion_tokens + streamed[-1].usage.completion_tokens
    assert row["date"] == today and row["model"] == sandbox_model
    assert row["base_model"] == "gpt-4.1-mini-2025-04-14"
    assert (row["input_tokens"], row["output_tokens"]) == (tokens_in, tokens_out)
    # gpt-4.1-mini: $0.80 in and $3.20 out per million tokens.
    assert row["cost_usd"] == round((tokens_in * 0.8 + tokens_out * 3.2) / 1e6, 6)
    assert (
        client.get("/v1/usage", params={"start": "2000-01-01", "end": "2000-01-31"}).json()["data"]
        == []
    )


def test_usage_is_the_tenants_own_and_checks_its_dates(
    client: httpx.Client, other_client: httpx.Client
) -> None:
    assert other_client.get("/v1/usage").json()["data"] == []
    assert client.get("/v1/usage", params={"start": "yesterday"}).status_code == 400
    bad_range = client.get("/v1/usage", params={"start": "2026-02-01", "end": "2026-01-01"})
    assert bad_range.status_code == 400
    assert bad_range.headers["content-type"].startswith("application/problem+json")
