"""What follows a job's change (`service.jobs.transitions.effects_of`), in order: the alias or
its gate, then Burro's webhook, then, for an end OpenAI announces, OpenAI's form of it."""

from __future__ import annotations

import json

import msgspec
import pytest
from openai.types.webhooks import FineTuningJobSucceededWebhookEvent

from service.effects import Effect, MoveAlias, PublishOpenAIEvent, PublishWebhook
from service.jobs.records import JobStatus
from service.jobs.transitions import effects_of
from tests.support.data import BASE_MODEL, job_record

FINISHED_AT = 1_764_160_123


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_an_end_openai_announces_follows_in_its_form_after_burros_own(status: JobStatus) -> None:
    job = job_record("job_1", status=status, finished_at=FINISHED_AT)

    followed = effects_of(job, to_endpoints=True)

    assert [type(e) for e in followed] == [PublishWebhook, PublishOpenAIEvent]
    burros, openais = followed
    assert isinstance(burros, PublishWebhook) and isinstance(openais, PublishOpenAIEvent)
    assert burros.event_type == f"job.{status}"
    assert openais.event_type == f"fine_tuning.job.{status}"
    assert (openais.tenant, openais.subject) == ("acme", "job_1")
    body = json.loads(openais.body)
    assert set(body) == {"id", "object", "type", "created_at", "data"}
    assert body["type"] == openais.event_type
    assert body["created_at"] == FINISHED_AT and body["data"] == {"id": "job_1"}


def test_openais_form_is_a_body_the_sdk_parses_as_its_own_event() -> None:
    job = job_record("job_1", status="succeeded", finished_at=FINISHED_AT)

    [_, openais] = effects_of(job, to_endpoints=True)

    assert isinstance(openais, PublishOpenAIEvent)
    event = FineTuningJobSucceededWebhookEvent.model_validate_json(openais.body)
    assert event.data.id == "job_1" and event.created_at == FINISHED_AT


@pytest.mark.parametrize("status", ["pending", "running", "validating_files", "queued"])
def test_a_status_openai_does_not_announce_has_no_effect_in_its_form(status: JobStatus) -> None:
    job = job_record("job_1", status=status)

    assert [type(e) for e in effects_of(job, to_endpoints=True)] == [PublishWebhook]


def test_a_tenant_without_endpoints_gets_no_effect_in_openais_form() -> None:
    job = job_record(
        "job_1", status="succeeded", webhook_url="http://127.0.0.1:9/hook", webhook_secret="s"
    )

    followed = effects_of(job, to_endpoints=False)

    assert [type(e) for e in followed] == [PublishWebhook]
    assert isinstance(followed[0], PublishWebhook) and not followed[0].to_endpoints


def test_the_alias_moves_before_anyone_is_told_in_either_form() -> None:
    job = job_record(
        "job_1",
        status="succeeded",
        promote_to="donkey",
        fine_tuned_model=f"ft:{BASE_MODEL}:acme::x",
        finished_at=FINISHED_AT,
    )

    followed = effects_of(job, to_endpoints=True)

    assert [type(e) for e in followed] == [MoveAlias, PublishWebhook, PublishOpenAIEvent]


def test_an_effect_in_openais_form_survives_the_outbox_encoding() -> None:
    [_, effect] = effects_of(job_record("job_1", status="failed"), to_endpoints=True)

    encoded = msgspec.msgpack.encode(effect)
    decoded = msgspec.msgpack.decode(encoded, type=Effect)

    assert decoded == effect
