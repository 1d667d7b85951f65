"""A chat whose model is none of the tenant's says what the caller can do, in OpenAI's shape."""

from __future__ import annotations

import openai
import pytest

from tests.support.data import asking


def refusal(sdk: openai.OpenAI, model: str) -> str:
    with pytest.raises(openai.NotFoundError) as refused:
        sdk.chat.completions.create(model=model, messages=asking(0))
    assert refused.value.code == "model_not_found"
    return str(refused.value.message)


def test_a_mistyped_alias_names_the_closest_of_the_tenants_names(
    sdk: openai.OpenAI, donkey: str
) -> None:
    assert "Did you mean donkey?" in refusal(sdk, "donkee")


def test_a_base_model_that_is_not_allowed_says_what_opens_it(sdk: openai.OpenAI) -> None:
    message = refusal(sdk, "gpt-4.1-mini-2025-04-14")
    assert "BURRO_ALLOWED_BASE_MODELS" in message


def test_a_retired_model_says_since_when_and_what_to_use(sdk: openai.OpenAI) -> None:
    message = refusal(sdk, "gpt-3.5-turbo-0613")
    assert "retired on 2024-09-13" in message and "gpt-4.1-mini-2025-04-14" in message
