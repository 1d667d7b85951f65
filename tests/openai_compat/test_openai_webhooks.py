"""Webhooks in OpenAI's form: an endpoint that subscribes to `fine_tuning.job.*` names gets
OpenAI's event body, signed so that the official SDK's `client.webhooks.unwrap` accepts it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from tests.jobs.conftest import wait_for
from tests.openai_compat.conftest import MODEL, StartWorker

OPENAI_NAMES = ["fine_tuning.job.succeeded", "fine_tuning.job.failed", "fine_tuning.job.cancelled"]


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def type(self) -> str:
        kind: str = json.loads(self.body)["type"]
        return kind


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that records every delivery and answers 204."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    deliveries: list[Delivery] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            deliveries.append(Delivery(self.path, headers, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(f"http://127.0.0.1:{server.server_address[1]}", deliveries)
    server.shutdown()
    server.server_close()


def subscribe(http: httpx.Client, url: str, events: list[str]) -> str:
    created = http.post("/v1/webhook-endpoints", json={"url": url, "events": events})
    assert created.status_code == 201, created.text
    secret: str = created.json()["secret"]
    return secret


def test_a_handler_built_on_the_sdks_unwrap_accepts_burros_openai_form_deliveries(
    acme: openai.OpenAI,
    acme_http: httpx.Client,
    receiver: Receiver,
    start_worker: StartWorker,
    training_file: str,
) -> None:
    secret = subscribe(acme_http, f"{receiver.url}/openai", OPENAI_NAMES)
    subscribe(acme_http, f"{receiver.url}/burro", ["*"])
    start_worker()
    succeeding = acme.fine_tuning.jobs.create(model=MODEL, training_file=training_file)
    cancelled = acme.fine_tuning.jobs.create(model=MODEL, training_file=training_file)
    acme.fine_tuning.jobs.cancel(cancelled.id)

    wait_for(lambda: len(receiver.at("/openai")) == 2, timeout=60, what="two OpenAI events")

    handler = openai.OpenAI(api_key="used-only-to-verify")
    events = {}
    for delivery in receiver.at("/openai"):
        event = handler.webhooks.unwrap(delivery.body, delivery.headers, secret=secret)
        events[event.type] = event
        body = json.loads(delivery.body)
        assert set(body) == {"id", "object", "type", "created_at", "data"}
        assert body["object"] == "event"
        assert body["id"].startswith("evt_")
    assert events["fine_tuning.job.succeeded"].data.id == succeeding.id
    assert events["fine_tuning.job.cancelled"].data.id == cancelled.id
    job = acme.fine_tuning.jobs.retrieve(succeeding.id)
    assert events["fine_tuning.job.succeeded"].created_at == job.finished_at
    # A tampered body is refused by the same call.
    delivery = receiver.at("/openai")[0]
    with pytest.raises(openai.InvalidWebhookSignatureError):
        handler.webhooks.unwrap(delivery.body + b" ", delivery.headers, secret=secret)


def test_an_endpoint_for_every_event_keeps_getting_burros_body_only(
    acme: openai.OpenAI,
    acme_http: httpx.Client,
    receiver: Receiver,
    start_worker: StartWorker,
    training_file: str,
) -> None:
    subscribe(acme_http, f"{receiver.url}/burro", ["*"])
    subscribe(acme_http, f"{receiver.url}/openai", ["fine_tuning.job.succeeded"])
    start_worker()
    job = acme.fine_tuning.jobs.create(model=MODEL, training_file=training_file)

    wait_for(lambda: receiver.at("/openai"), timeout=60, what="the OpenAI event")
    wait_for(
        lambda: "job.succeeded" in [d.type for d in receiver.at("/burro")],
        what="Burro's job.succeeded",
    )

    assert all(d.type.startswith("job.") for d in receiver.at("/burro"))
    assert [d.type for d in receiver.at("/openai")] == ["fine_tuning.job.succeeded"]
    messages = acme_http.get("/v1/webhook-messages", params={"job": job.id}).json()["data"]
    openai_form = [m for m in messages if m["event_type"].startswith("fine_tuning.")]
    assert len(openai_form) == 1


def test_an_unknown_openai_event_name_is_refused_when_subscribing(acme_http: httpx.Client) -> None:
    response = acme_http.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "events": ["fine_tuning.job.paused"]},
    )

    assert response.status_code == 400
    assert acme_http.get("/v1/webhook-endpoints").json()["data"] == []
