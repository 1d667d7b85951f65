"""Finished jobs send OpenAI-style webhooks that the official SDK's verifier accepts."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import openai
import pytest
from sandbox_helpers import StartSandbox, chat_examples, jsonl, upload_training

from sandbox.config import SandboxConfig
from sandbox.testing import wait_for

SECRET = "whsec_" + base64.b64encode(b"burro-sandbox-test-secret").decode()


class Receiver:
    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    """An HTTP server on loopback that records every POST it is sent."""
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.deliveries.append((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_succeeded_and_cancelled_jobs_send_signed_webhooks(
    start_sandbox: StartSandbox, receiver: tuple[str, Receiver]
) -> None:
    url, received = receiver
    config = SandboxConfig(step_seconds=0.1, webhook_url=url, webhook_secret=SECRET)
    base_url = start_sandbox(config)
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        file_id = upload_training(client, jsonl(chat_examples(10)))
        done = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        cancelled = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        client.fine_tuning.jobs.cancel(cancelled.id)

        # Nobody polls the job: the sandbox notices on its own that it finished.
        wait_for(lambda: len(received.deliveries) == 2)
        events = {
            e.data.id: e
            for e in (
                client.webhooks.unwrap(body, headers, secret=SECRET)
                for body, headers in received.deliveries
            )
        }
        body, headers = received.deliveries[0]
        with pytest.raises(openai.InvalidWebhookSignatureError):
            client.webhooks.verify_signature(
                body, headers, secret="whsec_" + base64.b64encode(b"wrong").decode()
            )

    assert events[done.id].type == "fine_tuning.job.succeeded"
    assert events[cancelled.id].type == "fine_tuning.job.cancelled"
    assert all(e.id.startswith("evt_") and e.object == "event" for e in events.values())
