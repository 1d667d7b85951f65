"""Injected faults and request counts, the controls tests use to see how Burro copes."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from sandbox_helpers import chat_examples, jsonl, upload_training


def root(sandbox_url: str) -> str:
    return sandbox_url.removesuffix("/v1")


def test_a_500_fault_fails_the_next_request_then_lets_the_next_through(
    client: openai.OpenAI, sandbox_url: str
) -> None:
    file_id = upload_training(client, jsonl(chat_examples(10)))
    httpx.post(
        f"{root(sandbox_url)}/sandbox/faults",
        json={"path_prefix": "/v1/fine_tuning/jobs", "method": "POST", "status": 500, "count": 1},
    ).raise_for_status()

    with pytest.raises(openai.InternalServerError):
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)

    assert job.status == "validating_files"
    counts = httpx.get(f"{root(sandbox_url)}/sandbox/stats").json()["requests"]
    assert counts["POST /v1/fine_tuning/jobs"] == 2
    assert len(client.fine_tuning.jobs.list().data) == 1


def test_the_sdk_retries_through_a_fault(sandbox_url: str) -> None:
    httpx.post(
        f"{root(sandbox_url)}/sandbox/faults",
        json={"path_prefix": "/v1/models", "status": 429, "count": 1, "retry_after": 0},
    ).raise_for_status()

    with openai.OpenAI(base_url=sandbox_url, api_key="sk-test", max_retries=2) as client:
        assert client.models.list().data

    counts = httpx.get(f"{root(sandbox_url)}/sandbox/stats").json()["requests"]
    assert counts["GET /v1/models"] == 2


def test_a_delay_fault_hangs_before_answering(sandbox_url: str) -> None:
    httpx.post(
        f"{root(sandbox_url)}/sandbox/faults",
        json={"path_prefix": "/v1/models", "count": 1, "delay": 0.3},
    ).raise_for_status()

    started = time.monotonic()
    assert httpx.get(f"{sandbox_url}/models").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_clearing_faults_and_stats(sandbox_url: str) -> None:
    httpx.post(
        f"{root(sandbox_url)}/sandbox/faults", json={"status": 503, "count": 5}
    ).raise_for_status()
    httpx.delete(f"{root(sandbox_url)}/sandbox/faults").raise_for_status()
    assert httpx.get(f"{sandbox_url}/models").status_code == 200

    httpx.delete(f"{root(sandbox_url)}/sandbox/stats").raise_for_status()
    assert httpx.get(f"{root(sandbox_url)}/sandbox/stats").json() == {"requests": {}, "total": 0}


def test_unknown_routes_answer_in_openai_shape(sandbox_url: str) -> None:
    response = httpx.get(f"{sandbox_url}/nothing-here")

    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
