"""An alias may not take a model's name: the model table's (retired included), a base model
open for chat, or a name shaped like one of OpenAI's base models."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import upload_dataset
from tests.support.data import BASE_MODEL


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4.1-mini-2025-04-14",  # in the model table
        "gpt-4.1-mini",  # a table alias
        "GPT-4o-2024-08-06",  # whatever the case
        "gpt-4o-mini",  # BURRO_ALLOWED_BASE_MODELS in these tests
        "gpt-4o",  # shaped like an OpenAI base model
        "o3-mini",
    ],
)
def test_an_alias_cannot_take_a_models_name(client: httpx.Client, acme_job: str, name: str) -> None:
    response = client.put(f"/v1/aliases/{name}", json={"job": acme_job})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["param"] == "name" and "alias needs a name of its own" in problem["detail"]
    assert client.get(f"/v1/aliases/{name}").status_code == 404


def test_names_that_only_start_like_a_model_are_fine(client: httpx.Client, acme_job: str) -> None:
    for name in ("gpt-4o-donkey", "donkey-gpt-4o", "burro"):
        assert client.put(f"/v1/aliases/{name}", json={"job": acme_job}).status_code == 201


def test_a_job_cannot_promote_to_a_models_name(client: httpx.Client) -> None:
    dataset = upload_dataset(client)
    response = client.post(
        "/v1/jobs",
        json={"training_dataset": dataset, "model": BASE_MODEL, "promote_to": "gpt-4.1-mini"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["param"] == "promote_to"
    assert client.get("/v1/jobs").json()["data"] == []
