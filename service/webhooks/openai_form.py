"""Webhook → OpenAI's form: a job that ends is also announced as `fine_tuning.job.<status>`, in
OpenAI's event body, to the tenant's endpoints that subscribe to those names, so a handler built
on the official SDK's `client.webhooks.unwrap(body, headers, secret=…)` accepts it unchanged.

The event is one of the effects of the job's change (`service.jobs.transitions.effects_of`),
written in the change's own transaction and published by the relay like Burro's own."""

from __future__ import annotations

import hashlib

import msgspec

# The job statuses OpenAI sends webhooks for, and their names there.
OPENAI_EVENT_TYPES: dict[str, str] = {
    "succeeded": "fine_tuning.job.succeeded",
    "failed": "fine_tuning.job.failed",
    "cancelled": "fine_tuning.job.cancelled",
}


class _JobRef(msgspec.Struct, frozen=True):
    id: str


class OpenAIEvent(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's webhook event body: `data` names the job, the receiver fetches the rest."""

    id: str
    object: str = "event"
    type: str
    created_at: int
    data: _JobRef


_encoder = msgspec.json.Encoder()


def openai_event_id(job_id: str, event_type: str) -> str:
    """The `evt_` id of a job's one event of a type: the same every time it is computed, so
    publishing twice makes the same body (and the outbox keeps one message)."""
    digest = hashlib.sha256(f"{job_id}:{event_type}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def openai_event_body(job_id: str, event_type: str, created_at: int) -> bytes:
    """The JSON body OpenAI sends for `event_type` about fine-tuning job `job_id`."""
    event = OpenAIEvent(
        id=openai_event_id(job_id, event_type),
        type=event_type,
        created_at=created_at,
        data=_JobRef(id=job_id),
    )
    return _encoder.encode(event)


def openai_event(job_id: str, status: str, at: int) -> tuple[str, bytes] | None:
    """OpenAI's event type and body for a job that entered `status` at `at` (Unix seconds);
    None for a status OpenAI does not announce."""
    event_type = OPENAI_EVENT_TYPES.get(status)
    if event_type is None:
        return None
    return event_type, openai_event_body(job_id, event_type, at)
