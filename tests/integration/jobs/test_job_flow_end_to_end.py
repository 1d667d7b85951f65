"""The whole flow through real parts: dataset → job → upload → poll → signed webhooks → alias →
chat with the openai SDK, against the sandbox as the upstream and a receiver on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest
from standardwebhooks.webhooks import Webhook

from tests.jobs.conftest import MODEL, StartWorker, upload_dataset, wait_for


class Receiver:
    """A webhook receiver on 127.0.0.1 that records deliveries and, on success, calls back."""

    def __init__(self, api_url: str) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.alias_seen_on_success: dict[str, Any] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                event = json.loads(body)
                if event["type"] == "job.succeeded":
                    # A receiver that calls back must already see the promoted alias.
                    receiver.alias_seen_on_success = httpx.get(
                        f"{api_url}/v1/aliases/donkey",
                        headers={"Authorization": "Bearer key-acme"},
                    ).json()
                receiver.deliveries.append({"headers": headers, "body": body, "event": event})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def types(self) -> list[str]:
        return [d["event"]["type"] for d in self.deliveries]


@pytest.fixture
def receiver(api_url: str) -> Iterator[Receiver]:
    receiver = Receiver(api_url)
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_a_job_trains_notifies_promotes_and_then_answers_by_its_alias(
    api: httpx.Client, api_url: str, receiver: Receiver, start_worker: StartWorker
) -> None:
    start_worker()
    dataset = upload_dataset(api, name="donkey.jsonl")
    created = api.post(
        "/v1/jobs",
        json={
            "training_dataset": dataset,
            "model": MODEL,
            "suffix": "donkey",
            "webhook": {"url": receiver.url},
            "promote_to": "donkey",
        },
    )
    assert created.status_code == 202, created.text
    job = created.json()
    secret = job["webhook"]["secret"]
    assert secret.startswith("whsec_")

    wait_for(lambda: "job.succeeded" in receiver.types(), timeout=60, what="job.succeeded")

    # Every status the job went through was announced, in order, each signed and verifiable.
    types = receiver.types()
    assert types[0] == "job.pending"
    assert types.index("job.running") < types.index("job.succeeded")
    verifier = Webhook(secret)
    for delivery in receiver.deliveries:
        verifier.verify(delivery["body"], delivery["headers"])
        assert delivery["headers"]["webhook-id"].startswith("msg_")
    success = next(d["event"] for d in receiver.deliveries if d["event"]["type"] == "job.succeeded")
    assert success["data"]["id"] == job["id"]
    assert success["data"]["fine_tuned_model"].startswith(f"ft:{MODEL}")
    assert "secret" not in json.dumps(success["data"]["webhook"])

    # The alias moved before the webhook was sent.
    assert receiver.alias_seen_on_success is not None
    assert receiver.alias_seen_on_success["model"] == success["data"]["fine_tuned_model"]

    # The caller talks to the new model by its alias with the official SDK.
    with openai.OpenAI(base_url=f"{api_url}/v1", api_key="key-acme", max_retries=0) as client:
        answer = client.chat.completions.create(
            model="donkey",
            messages=[{"role": "user", "content": "Question 3: how are you?"}],
        )
    assert answer.choices[0].message.content == "Oh, I'm great, answer 3!"
