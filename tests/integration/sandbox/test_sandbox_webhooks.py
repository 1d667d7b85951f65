"""Finished jobs send OpenAI-style webhooks that the official SDK's verifier accepts."""

from __future__ import annotations

import base64

import openai
import pytest
from openai.types.webhooks import (
    FineTuningJobCancelledWebhookEvent,
    FineTuningJobSucceededWebhookEvent,
)

from sandbox.config import SandboxConfig
from tests.support.data import chat_examples, jsonl
from tests.support.fixtures import StartSandbox
from tests.support.receivers import Receiver
from tests.support.sandboxes import upload_training
from tests.support.waiting import wait_for

SECRET = "whsec_" + base64.b64encode(b"burro-sandbox-test-secret").decode()
FineTuningEvent = FineTuningJobSucceededWebhookEvent | FineTuningJobCancelledWebhookEvent


def test_succeeded_and_cancelled_jobs_send_signed_webhooks(
    start_sandbox: StartSandbox, receiver: Receiver
) -> None:
    config = SandboxConfig(step_seconds=0.1, webhook_url=receiver.url(), webhook_secret=SECRET)
    base_url = start_sandbox(config)
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as upstream:
        file_id = upload_training(upstream, jsonl(chat_examples(10)))
        done = upstream.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        cancelled = upstream.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        upstream.fine_tuning.jobs.cancel(cancelled.id)

        # Nobody polls the job: the sandbox notices on its own that it finished.
        wait_for(lambda: len(receiver.requests) == 2, what="two webhooks")
        events: dict[str, FineTuningEvent] = {}
        for request in receiver.requests:
            event = upstream.webhooks.unwrap(request.body, request.headers, secret=SECRET)
            assert isinstance(event, FineTuningEvent)
            events[event.data.id] = event
        first = receiver.requests[0]
        with pytest.raises(openai.InvalidWebhookSignatureError):
            upstream.webhooks.verify_signature(
                first.body, first.headers, secret="whsec_" + base64.b64encode(b"wrong").decode()
            )

    assert events[done.id].type == "fine_tuning.job.succeeded"
    assert events[cancelled.id].type == "fine_tuning.job.cancelled"
    assert all(e.id.startswith("evt_") and e.object == "event" for e in events.values())
