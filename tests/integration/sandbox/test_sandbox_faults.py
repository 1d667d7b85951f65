"""Injected faults and request counts, the controls tests use to see how Burro copes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.support.data import chat_examples, jsonl
from tests.support.sandboxes import add_fault, stats, upload_training, upstream_sdk
from tests.support.waiting import wait_for

# Longer than any test waits: a request a delay fault holds is let go by clearing the faults.
HELD = 300.0


def test_a_500_fault_fails_the_next_request_then_lets_the_next_through(
    upstream: openai.OpenAI, sandbox: httpx.Client
) -> None:
    file_id = upload_training(upstream, jsonl(chat_examples(10)))
    add_fault(sandbox, path_prefix="/v1/fine_tuning/jobs", method="POST", status=500, count=1)

    with pytest.raises(openai.InternalServerError):
        upstream.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    job = upstream.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)

    assert job.status == "validating_files"
    assert stats(sandbox)["POST /v1/fine_tuning/jobs"] == 2
    assert len(upstream.fine_tuning.jobs.list().data) == 1


def test_the_sdk_retries_through_a_fault(sandbox_url: str, sandbox: httpx.Client) -> None:
    add_fault(sandbox, path_prefix="/v1/models", status=429, count=1, retry_after=0)

    with upstream_sdk(sandbox_url) as client:
        assert client.with_options(max_retries=2).models.list().data

    assert stats(sandbox)["GET /v1/models"] == 2


def test_a_delay_fault_holds_the_answer_until_the_faults_are_cleared(
    sandbox: httpx.Client,
) -> None:
    add_fault(sandbox, path_prefix="/v1/models", count=1, delay=HELD)

    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(sandbox.get, "/v1/models")
        wait_for(lambda: stats(sandbox).get("GET /v1/models") == 1, what="the request to arrive")
        # The fault is spent: the next request is answered while the first is still held.
        assert sandbox.get("/v1/models").status_code == 200
        assert not held.done()
        sandbox.delete("/sandbox/faults").raise_for_status()
        assert held.result(timeout=30).status_code == 200


def test_a_short_delay_fault_answers_on_its_own(sandbox: httpx.Client) -> None:
    add_fault(sandbox, path_prefix="/v1/models", count=1, delay=0.05)

    assert sandbox.get("/v1/models").status_code == 200
    assert sandbox.get("/sandbox/faults").json() == {"faults": []}


def test_clearing_faults_and_stats(sandbox: httpx.Client) -> None:
    add_fault(sandbox, status=503, count=5)
    sandbox.delete("/sandbox/faults").raise_for_status()
    assert sandbox.get("/v1/models").status_code == 200

    sandbox.delete("/sandbox/stats").raise_for_status()
    assert sandbox.get("/sandbox/stats").json() == {"requests": {}, "total": 0, "chat_prompts": {}}


def test_unknown_routes_answer_in_openai_shape(sandbox: httpx.Client) -> None:
    response = sandbox.get("/v1/nothing-here")

    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
