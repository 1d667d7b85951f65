"""Webhook → records: endpoints, messages and their attempts as stored, and their wire shapes."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec

from service.store import PREFIX

ENDPOINTS = "webhook-endpoints"
MESSAGES = "webhook-messages"

MessageState = Literal["pending", "delivered", "failed"]

# The job statuses, as event names. Kept here rather than imported from the jobs package so the
# webhook records load without it; a new status needs a line here to be subscribable by name
# ("*" and "job.*" take it without one).
JOB_EVENTS: tuple[str, ...] = (
    "job.pending",
    "job.uploading",
    "job.validating_files",
    "job.queued",
    "job.running",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
)
# Events about the models behind a tenant's aliases (`service.inference.shutdowns`): Burro's
# body, with a shutdown notice as `data`.
MODEL_EVENTS: tuple[str, ...] = ("model.shutdown_approaching",)
# OpenAI's own event names, in OpenAI's body (`service.webhooks.openai_form`): sent only to the
# endpoints that name them, never through "*", whose receivers expect Burro's body.
OPENAI_JOB_EVENTS: tuple[str, ...] = (
    "fine_tuning.job.succeeded",
    "fine_tuning.job.failed",
    "fine_tuning.job.cancelled",
)
EventFilter = Literal[
    "*",
    "fine_tuning.job.succeeded",
    "fine_tuning.job.failed",
    "fine_tuning.job.cancelled",
    "job.*",
    "job.pending",
    "job.uploading",
    "job.validating_files",
    "job.queued",
    "job.running",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "model.*",
    "model.shutdown_approaching",
]

# A message keeps its latest attempts only; redelivering forever must not grow it forever.
MAX_KEPT_ATTEMPTS = 100


# --- Stored ----------------------------------------------------------------------------------


class WebhookEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's standing subscription: every event it names goes to `url`."""

    id: str
    tenant: str
    url: str
    events: tuple[str, ...] = ("*",)
    description: str = ""
    secret: str
    created_at: int

    def subscribes(self, event_type: str) -> bool:
        """True when `event_type` (`job.succeeded`) is one this endpoint asked for."""
        if event_type in OPENAI_JOB_EVENTS:
            return event_type in self.events
        family = event_type.partition(".")[0] + ".*"
        return any(e in ("*", family, event_type) for e in self.events)


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One try to deliver a message: when, what came back, how long it took."""

    at: float
    """Unix seconds when the attempt started."""
    redelivery: int = 0
    """0 for the first series of attempts, n for the series the n-th redelivery started."""
    number: int
    """1 for the first attempt of its series."""
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0.0
    response_excerpt: str = ""


class WebhookMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One event for one destination. `body` is encoded once and sent as is on every attempt,
    under the same `webhook-id` (the message id), so a receiver can drop duplicates."""

    id: str
    tenant: str
    job_id: str
    event_type: str
    endpoint_id: str | None = None
    """The endpoint it goes to; None for the job's own `webhook.url`."""
    url: str
    secret: str
    body: bytes
    created_at: int
    state: MessageState = "pending"
    redelivery: int = 0
    """How many times it was redelivered; attempts of an older series are obsolete."""
    attempts: tuple[Attempt, ...] = ()
    next_attempt_at: float | None = None
    """When the next attempt is due (Unix seconds), while pending."""
    delivered_at: float | None = None

    def attempt(self, redelivery: int, number: int) -> Attempt | None:
        """The recorded attempt `number` of series `redelivery`, if it ran."""
        return next(
            (a for a in self.attempts if a.redelivery == redelivery and a.number == number), None
        )


def message_job_index_key(job_id: str) -> str:
    """Sorted set of a job's message ids, by creation time."""
    return f"{PREFIX}:{MESSAGES}:by-job:{job_id}"


def message_once_key(job_id: str, event_type: str, destination: str) -> str:
    """Holds the id of the one message of an event for a destination (publish runs twice)."""
    return f"{PREFIX}:{MESSAGES}:once:{job_id}:{event_type}:{destination}"


# --- Requests --------------------------------------------------------------------------------


class WebhookEndpointCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /v1/webhook-endpoints`."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    events: Annotated[list[EventFilter], msgspec.Meta(max_length=32)] = []
    """Event names, `job.*`, `model.*` or `*`; empty means `*`. OpenAI's names
    (`fine_tuning.job.succeeded`, `.failed`, `.cancelled`) bring OpenAI's event body."""
    description: Annotated[str, msgspec.Meta(max_length=512)] = ""


# --- Responses -------------------------------------------------------------------------------


class WebhookEndpointOut(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An endpoint as callers see it; `secret` only in the 201 that created it."""

    id: str
    object: Literal["webhook_endpoint"]
    url: str
    events: list[str]
    description: str
    created_at: int
    secret: str | msgspec.UnsetType = msgspec.UNSET

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, *, show_secret: bool = False) -> WebhookEndpointOut:
        return cls(
            id=endpoint.id,
            object="webhook_endpoint",
            url=endpoint.url,
            events=list(endpoint.events),
            description=endpoint.description,
            created_at=endpoint.created_at,
            secret=endpoint.secret if show_secret else msgspec.UNSET,
        )


class WebhookEndpointList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[WebhookEndpointOut]
    has_more: bool


class AttemptOut(msgspec.Struct, frozen=True, kw_only=True):
    at: int
    redelivery: int
    number: int
    status_code: int | None
    error: str | None
    duration_ms: float
    response_excerpt: str

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(
            at=int(attempt.at),
            redelivery=attempt.redelivery,
            number=attempt.number,
            status_code=attempt.status_code,
            error=attempt.error,
            duration_ms=attempt.duration_ms,
            response_excerpt=attempt.response_excerpt,
        )


class WebhookMessageOut(msgspec.Struct, frozen=True, kw_only=True):
    """A message as callers see it: where it went, its state and its attempts, oldest first."""

    id: str
    object: Literal["webhook_message"]
    event_type: str
    job: str
    endpoint: str | None
    url: str
    state: MessageState
    created_at: int
    next_attempt_at: int | None
    delivered_at: int | None
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, message: WebhookMessage) -> WebhookMessageOut:
        next_at = message.next_attempt_at
        return cls(
            id=message.id,
            object="webhook_message",
            event_type=message.event_type,
            job=message.job_id,
            endpoint=message.endpoint_id,
            url=message.url,
            state=message.state,
            created_at=message.created_at,
            next_attempt_at=(
                math.ceil(next_at) if next_at is not None and message.state == "pending" else None
            ),
            delivered_at=None if message.delivered_at is None else int(message.delivered_at),
            attempts=[AttemptOut.of(a) for a in message.attempts],
        )


class WebhookMessageList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[WebhookMessageOut]
    has_more: bool
