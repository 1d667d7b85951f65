"""Aliases: point, inspect, roll back and remove; promotion by a succeeded job."""

from __future__ import annotations

import httpx
import openai
import pytest

from service.ids import new_id
from service.inference.aliases import get_alias, move_alias
from service.jobs.records import Job
from service.store import now
from tests.support.data import asking, job_record
from tests.support.store import on_redis, register, save_job

QUESTION = asking(3)


def test_an_alias_moves_keeps_its_history_and_rolls_back(
    client: httpx.Client, sdk: openai.OpenAI, redis_url: str, sandbox_model: str
) -> None:
    first, second = new_id("job_"), new_id("job_")
    register(redis_url, "acme", first, sandbox_model)
    register(redis_url, "acme", second, sandbox_model + "-v2")

    created = client.put("/v1/aliases/donkey", json={"job": first})
    moved = client.put("/v1/aliases/donkey", json={"job": second})
    again = client.put("/v1/aliases/donkey", json={"job": second})

    assert created.status_code == 201 and created.json()["job"] == first
    assert moved.status_code == 200 and moved.json()["model"] == sandbox_model + "-v2"
    assert len(again.json()["history"]) == 2, "pointing where it points already is a no-op"

    rolled = client.post("/v1/aliases/donkey/rollback")
    assert rolled.status_code == 200
    assert rolled.json()["job"] == first and rolled.json()["can_roll_back"] is False
    history = client.get("/v1/aliases/donkey").json()["history"]
    assert [(h["job"], h["reason"]) for h in history] == [
        (first, "rollback"),
        (second, "put"),
        (first, "put"),
    ]
    assert all(isinstance(h["at"], int) for h in history)
    # The rolled-back alias serves the first model again.
    answer = sdk.chat.completions.create(model="donkey", messages=QUESTION)
    assert answer.model == sandbox_model

    nothing_left = client.post("/v1/aliases/donkey/rollback")
    assert nothing_left.status_code == 409
    assert nothing_left.headers["content-type"].startswith("application/problem+json")


def test_aliases_are_listed_and_deleted(
    client: httpx.Client, sdk: openai.OpenAI, acme_job: str
) -> None:
    for name in ("donkey", "mule"):
        assert client.put(f"/v1/aliases/{name}", json={"job": acme_job}).status_code == 201

    listed = client.get("/v1/aliases", params={"limit": 1})
    assert listed.json()["object"] == "list" and listed.json()["has_more"] is True
    rest = client.get("/v1/aliases", params={"after": listed.json()["data"][0]["name"]})
    assert {a["name"] for a in listed.json()["data"] + rest.json()["data"]} == {"donkey", "mule"}

    assert client.delete("/v1/aliases/mule").status_code == 204
    assert client.get("/v1/aliases/mule").status_code == 404
    assert client.delete("/v1/aliases/mule").status_code == 404
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="mule", messages=QUESTION)
    assert caught.value.code == "model_not_found"


def test_an_alias_needs_a_succeeded_job_of_the_tenant(
    client: httpx.Client, redis_url: str, sandbox_model: str
) -> None:
    running = new_id("job_")
    save_job(redis_url, job_record(running, "acme", "running"))
    theirs = new_id("job_")
    register(redis_url, "globex", theirs, sandbox_model)

    not_yet = client.put("/v1/aliases/donkey", json={"job": running})
    not_ours = client.put("/v1/aliases/donkey", json={"job": theirs})
    unknown = client.put("/v1/aliases/donkey", json={"job": "job_nope"})

    assert not_yet.status_code == 422
    assert not_yet.headers["content-type"].startswith("application/problem+json")
    assert not_ours.status_code == 404
    assert unknown.status_code == 404
    assert client.get("/v1/aliases/donkey").status_code == 404


def test_a_bad_alias_name_or_body_is_refused(client: httpx.Client, acme_job: str) -> None:
    assert client.put("/v1/aliases/job_x", json={"job": acme_job}).status_code == 422
    assert client.put("/v1/aliases/-x", json={"job": acme_job}).status_code == 422
    assert client.put("/v1/aliases/ok", json={"job": acme_job, "x": 1}).status_code == 400


def test_promote_to_moves_the_alias_once_and_registers_the_model(
    redis_url: str, sandbox_model: str, sdk: openai.OpenAI
) -> None:
    stamp = now()
    job = Job(
        id=new_id("job_"),
        tenant="acme",
        status="succeeded",
        provider="sandbox",
        model="gpt-4.1-mini-2025-04-14",
        training_dataset="ds_x",
        fine_tuned_model=sandbox_model,
        promote_to="donkey",
        created_at=stamp,
        updated_at=stamp,
    )

    for _ in range(2):  # an at-least-once worker may repeat it
        on_redis(redis_url, lambda r: move_alias(r, "acme", "donkey", job))

    alias = on_redis(redis_url, lambda r: get_alias(r, "acme", "donkey"))
    assert alias is not None and alias.job == job.id and alias.model == sandbox_model
    assert [(h.job, h.reason) for h in alias.history] == [(job.id, f"promote_to {job.id}")]
    by_job = sdk.chat.completions.create(model=job.id, messages=QUESTION)
    assert by_job.choices[0].message.content == "Answer 3: hay number 3 is golden."


def test_move_alias_by_job_id_needs_a_registered_job(redis_url: str, acme_job: str) -> None:
    on_redis(
        redis_url,
        lambda r: move_alias(r, "acme", "donkey", job_id=acme_job, reason=f"promote_to {acme_job}"),
    )

    alias = on_redis(redis_url, lambda r: get_alias(r, "acme", "donkey"))
    assert alias is not None and alias.job == acme_job
