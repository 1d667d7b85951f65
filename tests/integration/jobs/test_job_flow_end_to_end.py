"""The whole flow through real parts: dataset → job → upload → poll → signed webhooks → alias →
chat with the openai SDK, against the sandbox as the upstream and a receiver on loopback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.api import create_job, job_status, upload_dataset
from tests.support.data import BASE_MODEL, answer, question
from tests.support.fixtures import MakeWorker, StartReceiver
from tests.support.receivers import Received, Receiver, Reply
from tests.support.sandboxes import ClockedSandbox
from tests.support.waiting import wait_for


@pytest.fixture
def sandbox_url(clocked_sandbox: ClockedSandbox) -> str:
    return clocked_sandbox.url


def test_a_job_trains_notifies_promotes_and_then_answers_by_its_alias(
    client: httpx.Client,
    sdk: openai.OpenAI,
    start_receiver: StartReceiver,
    worker: MakeWorker,
    clocked_sandbox: ClockedSandbox,
) -> None:
    alias_seen_on_success: list[dict[str, Any]] = []

    def call_back_on_success(request: Received, receiver: Receiver) -> Reply:
        if request.json()["type"] == "job.succeeded":
            # A receiver that calls back must already see the promoted alias.
            alias_seen_on_success.append(client.get("/v1/aliases/donkey").json())
        return Reply(status=204)

    receiver = start_receiver(call_back_on_success)
    worker(burst=False).start()
    dataset = upload_dataset(client, name="donkey.jsonl")
    job = create_job(
        client,
        dataset,
        suffix="donkey",
        webhook={"url": receiver.url("/hooks")},
        promote_to="donkey",
    )
    secret = job["webhook"]["secret"]
    assert secret.startswith("whsec_")
    # The upstream job moves on once Burro has seen each of its statuses.
    for status in ("validating_files", "queued", "running"):
        job_status(client, job["id"], status)
        clocked_sandbox.advance(1)

    def types() -> list[str]:
        return [body["type"] for body in receiver.bodies()]

    wait_for(lambda: "job.succeeded" in types(), what="job.succeeded")

    # Every status the job went through was announced, in order, each signed and verifiable.
    assert types()[0] == "job.pending"
    assert types().index("job.running") < types().index("job.succeeded")
    verifier = Webhook(secret)
    for request in receiver.requests:
        verifier.verify(request.body, request.headers)
        assert request.headers["webhook-id"].startswith("msg_")
    success = next(b for b in receiver.bodies() if b["type"] == "job.succeeded")
    assert success["data"]["id"] == job["id"]
    assert success["data"]["fine_tuned_model"].startswith(f"ft:{BASE_MODEL}")
    assert "secret" not in json.dumps(success["data"]["webhook"])

    # The alias moved before the webhook was sent.
    assert [seen["model"] for seen in alias_seen_on_success] == [
        success["data"]["fine_tuned_model"]
    ]

    # The caller talks to the new model by its alias with the official SDK.
    reply = sdk.chat.completions.create(
        model="donkey", messages=[{"role": "user", "content": question(3)}]
    )
    assert reply.choices[0].message.content == answer(3)
