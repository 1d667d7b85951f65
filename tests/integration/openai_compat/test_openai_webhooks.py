"""Webhooks in OpenAI's form: an endpoint that subscribes to `fine_tuning.job.*` names gets
OpenAI's event body, signed so that the official SDK's `client.webhooks.unwrap` accepts it."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai.types.webhooks import (
    FineTuningJobCancelledWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobSucceededWebhookEvent,
)

from tests.support.data import TUTORIAL_MODEL
from tests.support.receivers import Received, Receiver
from tests.support.waiting import wait_for
from tests.support.workers import BurroWorker

FINE_TUNING_EVENTS = (
    FineTuningJobSucceededWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobCancelledWebhookEvent,
)
OPENAI_NAMES = ["fine_tuning.job.succeeded", "fine_tuning.job.failed", "fine_tuning.job.cancelled"]


def at(receiver: Receiver, path: str) -> list[Received]:
    """The deliveries `receiver` got on `path`, in order."""
    return [r for r in receiver.requests if r.path_qs == path]


def event_type(delivery: Received) -> str:
    kind: str = delivery.json()["type"]
    return kind


def subscribe(http: httpx.Client, url: str, events: list[str]) -> str:
    created = http.post("/v1/webhook-endpoints", json={"url": url, "events": events})
    assert created.status_code == 201, created.text
    secret: str = created.json()["secret"]
    return secret


def test_a_handler_built_on_the_sdks_unwrap_accepts_burros_openai_form_deliveries(
    sdk: openai.OpenAI,
    client: httpx.Client,
    receiver: Receiver,
    running_worker: BurroWorker,
    training_file: str,
) -> None:
    secret = subscribe(client, receiver.url("/openai"), OPENAI_NAMES)
    subscribe(client, receiver.url("/burro"), ["*"])
    succeeding = sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file)
    cancelled = sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file)
    sdk.fine_tuning.jobs.cancel(cancelled.id)

    wait_for(lambda: len(at(receiver, "/openai")) == 2, timeout=60, what="two OpenAI events")

    handler = openai.OpenAI(api_key="used-only-to-verify")
    events = {}
    for delivery in at(receiver, "/openai"):
        event = handler.webhooks.unwrap(delivery.body, delivery.headers, secret=secret)
        assert isinstance(event, FINE_TUNING_EVENTS)
        events[event.type] = event
        body = json.loads(delivery.body)
        assert set(body) == {"id", "object", "type", "created_at", "data"}
        assert body["object"] == "event"
        assert body["id"].startswith("evt_")
    assert events["fine_tuning.job.succeeded"].data.id == succeeding.id
    assert events["fine_tuning.job.cancelled"].data.id == cancelled.id
    job = sdk.fine_tuning.jobs.retrieve(succeeding.id)
    assert events["fine_tuning.job.succeeded"].created_at == job.finished_at
    # A tampered body is refused by the same call.
    delivery = at(receiver, "/openai")[0]
    with pytest.raises(openai.InvalidWebhookSignatureError):
        handler.webhooks.unwrap(delivery.body + b" ", delivery.headers, secret=secret)


def test_an_endpoint_for_every_event_keeps_getting_burros_body_only(
    sdk: openai.OpenAI,
    client: httpx.Client,
    receiver: Receiver,
    running_worker: BurroWorker,
    training_file: str,
) -> None:
    subscribe(client, receiver.url("/burro"), ["*"])
    subscribe(client, receiver.url("/openai"), ["fine_tuning.job.succeeded"])
    job = sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file)

    wait_for(lambda: at(receiver, "/openai"), timeout=60, what="the OpenAI event")
    wait_for(
        lambda: "job.succeeded" in [event_type(d) for d in at(receiver, "/burro")],
        what="Burro's job.succeeded",
    )

    assert all(event_type(d).startswith("job.") for d in at(receiver, "/burro"))
    assert [event_type(d) for d in at(receiver, "/openai")] == ["fine_tuning.job.succeeded"]
    messages = client.get("/v1/webhook-messages", params={"job": job.id}).json()["data"]
    openai_form = [m for m in messages if m["event_type"].startswith("fine_tuning.")]
    assert len(openai_form) == 1


def test_an_unknown_openai_event_name_is_refused_when_subscribing(client: httpx.Client) -> None:
    response = client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "events": ["fine_tuning.job.paused"]},
    )

    assert response.status_code == 400
    assert client.get("/v1/webhook-endpoints").json()["data"] == []
