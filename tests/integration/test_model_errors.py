"""Model errors a person can act on: the closest names to a typo, a retired model's date and
replacement, and what one line of JSONL looks like when a CSV or a JSON array is sent."""

from __future__ import annotations

import json

import httpx
import pytest

from service.settings import Settings
from tests.support.data import JSONL_HEADERS
from tests.support.fixtures import with_sandbox


@pytest.fixture
def settings(settings: Settings, sandbox_url: str) -> Settings:
    """With a provider to train on, a job's model is the first thing refused."""
    return with_sandbox(settings, sandbox_url)


def job_detail(client: httpx.Client, model: str) -> str:
    response = client.post("/v1/jobs", json={"training_dataset": "ds_none", "model": model})
    assert response.status_code == 422, response.text
    assert response.json()["param"] == "model"
    return str(response.json()["detail"])


def test_a_mistyped_model_names_the_closest_known_ones(client: httpx.Client) -> None:
    detail = job_detail(client, "gpt-4.1-mini-2025-04-41")
    assert "Did you mean gpt-4.1-mini-2025-04-14" in detail
    assert "Did you mean" not in job_detail(client, "dall-e-3")


def test_a_model_retired_long_ago_says_since_when_and_what_to_use(client: httpx.Client) -> None:
    detail = job_detail(client, "gpt-3.5-turbo-0613")
    assert "retired on 2024-09-13" in detail
    assert "Use gpt-4.1-mini-2025-04-14 instead" in detail
    assert "not in Burro's model table" not in detail


def test_a_model_in_the_table_that_retired_says_what_to_use(client: httpx.Client) -> None:
    detail = job_detail(client, "gpt-3.5-turbo-0125")
    assert "retired on 2026-10-23" in detail and "Use gpt-4.1-mini-2025-04-14 instead" in detail


def test_an_estimate_for_a_mistyped_model_names_the_closest(client: httpx.Client) -> None:
    response = client.post(
        "/v1/datasets/validate",
        content=b"{}\n",
        headers=JSONL_HEADERS,
        params={"model": "gpt-4o-mini-2024-07-81"},
    )
    assert response.status_code == 422
    assert "Did you mean gpt-4o-mini-2024-07-18" in response.json()["detail"]


def test_a_csv_body_is_told_what_one_jsonl_line_looks_like(client: httpx.Client) -> None:
    csv = b"prompt,completion\nHola burro,Hola!\n" * 6
    stored = client.post("/v1/datasets", content=csv, headers=JSONL_HEADERS)
    assert stored.status_code == 422
    detail = stored.json()["detail"]
    assert "looks like CSV" in detail and '{"messages": [' in detail
    report = client.post("/v1/datasets/validate", content=csv, headers=JSONL_HEADERS).json()
    assert "looks like CSV" in report["errors"][0]["message"]


def test_a_json_array_body_is_told_what_one_jsonl_line_looks_like(client: httpx.Client) -> None:
    example = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    }
    for body in (json.dumps([example] * 12), json.dumps([example] * 12, indent=2)):
        stored = client.post("/v1/datasets", content=body.encode(), headers=JSONL_HEADERS)
        assert stored.status_code == 422
        assert "JSON array, not JSONL" in stored.json()["detail"]
        assert '{"messages": [' in stored.json()["detail"]
