"""Distillation jobs on the sandbox: a teacher (a model fine-tuned on the sandbox, behind the
alias the caller's code uses) answers every prompt once, its answers become two readable
datasets, the student trains on them, and the alias moves to the student only when the student
answers the held-out prompts close enough to the teacher. The teacher's tokens and cost are
counted."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.distillation.teacher import answers_key
from tests.support.api import job_status, upload_dataset
from tests.support.data import (
    BASE_MODEL,
    answer,
    chat_examples,
    jsonl,
    preference_examples,
    question,
)
from tests.support.fixtures import MakeWorker, SpawnWorker
from tests.support.sandboxes import add_fault, chat_prompts, stats
from tests.support.store import RedisSession
from tests.support.waiting import wait_for

OLD_ANSWER = "An answer nobody should learn."
# Longer than the test: a request the fault holds goes on only when the faults are cleared.
HELD = 300.0
# Seconds: arq runs a killed worker's job again once its timeout + 10 s have passed.
FUNCTION_TIMEOUT = 3.0


def prompts_file(n: int = 12) -> bytes:
    """`n` chat examples whose answers are not the teacher's: a distillation ignores them."""
    examples = chat_examples(n)
    for example in examples:
        example["messages"][-1]["content"] = OLD_ANSWER
    return jsonl(examples)


@pytest.fixture
def keeper(client: httpx.Client, acme_job: str) -> str:
    """The alias acme's code talks to, on the model to rescue (the sandbox model)."""
    response = client.put("/v1/aliases/keeper", json={"job": acme_job})
    assert response.status_code == 201, response.text
    return "keeper"


def distil(client: httpx.Client, prompts: str, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/jobs",
        json={
            "training_dataset": prompts,
            "model": BASE_MODEL,
            "teacher": {"model": "keeper"},
            "promote_to": "keeper",
            **body,
        },
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def decided(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job once its promotion gate has decided."""

    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("failed", "cancelled"):
            raise AssertionError(job)
        gate = job["promotion"]
        return job if gate and gate["status"] in ("promoted", "not_promoted") else None

    return wait_for(check, what=f"{job_id}'s promotion")


def last_answers(client: httpx.Client, dataset: str) -> list[str]:
    content = client.get(f"/v1/datasets/{dataset}/content")
    assert content.status_code == 200
    return [json.loads(line)["messages"][-1]["content"] for line in content.text.splitlines()]


def test_a_distillation_trains_the_student_on_the_teachers_answers_and_moves_the_alias(
    client: httpx.Client,
    worker: MakeWorker,
    sandbox: httpx.Client,
    sandbox_model: str,
    keeper: str,
) -> None:
    worker(burst=False).start()
    prompts = upload_dataset(client, prompts_file(12), name="prompts.jsonl")
    created = distil(client, prompts)
    assert created["status"] == "pending"
    assert created["distillation"]["phase"] == "teacher"
    assert created["distillation"]["teacher_model"] == sandbox_model

    job = decided(client, created["id"])
    d = job["distillation"]
    assert job["status"] == "succeeded"
    assert (d["phase"], d["prompts"], d["answered"], d["failed"]) == ("finished", 12, 12, 0)
    assert job["training_dataset"] == d["dataset"] != prompts
    # The teacher's answers, not the prompts' own: the sandbox model answers them word for word.
    trained = last_answers(client, d["dataset"])
    held = last_answers(client, d["holdout_dataset"])
    assert (len(trained), len(held)) == (10, 2)
    assert sorted(trained + held) == sorted(answer(i) for i in range(12))
    assert OLD_ANSWER not in trained + held

    # Every prompt was put to the teacher exactly once.
    asked = chat_prompts(sandbox, sandbox_model)
    assert sorted(asked.values()) == [1] * 12, asked

    gate = job["promotion"]
    assert gate["evaluation_dataset"] == d["holdout_dataset"]
    assert gate["min_similarity"] == 0.6
    assert gate["status"] == "promoted", gate
    alias = client.get(f"/v1/aliases/{keeper}").json()
    assert alias["model"] == job["fine_tuned_model"]
    assert alias["history"][0]["reason"] == gate["reason"]
    assert "≥ threshold 0.600" in gate["reason"]

    # The teacher's tokens are the tenant's usage, priced as any chat; the job shows the cost.
    usage = client.get("/v1/usage").json()
    row = next(r for r in usage["data"] if r["model"] == sandbox_model)
    assert row["requests"] == 12
    assert (row["input_tokens"], row["output_tokens"]) == (
        d["prompt_tokens"],
        d["completion_tokens"],
    )
    assert d["teacher_cost_usd"] > 0
    assert d["teacher_cost_usd"] == pytest.approx(row["cost_usd"], abs=1e-6)
    kinds = [e["type"] for e in client.get(f"/v1/jobs/{job['id']}/events").json()["data"]]
    assert kinds.count("distillation") == 2

    # The job's page shows the distillation's steps, the one it is at, and what it made.
    html = client.get(f"/ui/jobs/{job['id']}").text
    assert 'aria-current="step"><strong>Finished</strong>' in html
    assert "12 of 12 answered" in html and d["holdout_dataset"] in html


def test_a_student_that_falls_short_of_the_teacher_leaves_the_alias_where_it_was(
    client: httpx.Client,
    worker: MakeWorker,
    sandbox_model: str,
    keeper: str,
    acme_job: str,
) -> None:
    worker(burst=False).start()
    prompts = upload_dataset(client, prompts_file(12), name="prompts.jsonl")
    job = decided(
        client, distil(client, prompts, distillation={"holdout": 2, "min_similarity": 1.01})["id"]
    )
    gate = job["promotion"]
    assert job["status"] == "succeeded"
    assert gate["status"] == "not_promoted", gate
    assert "< threshold 1.010" in gate["reason"]
    alias = client.get(f"/v1/aliases/{keeper}").json()
    assert (alias["job"], alias["model"]) == (acme_job, sandbox_model)
    latest = alias["history"][0]
    assert (latest["job"], latest["moved"], latest["reason"]) == (job["id"], False, gate["reason"])


def test_a_distillation_without_an_alias_trains_says_what_was_cut_and_frees_its_datasets(
    client: httpx.Client, worker: MakeWorker, keeper: str
) -> None:
    worker(burst=False).start()
    prompts = upload_dataset(client, prompts_file(12), name="prompts.jsonl")
    created = client.post(
        "/v1/jobs",
        json={
            "training_dataset": prompts,
            "model": BASE_MODEL,
            "teacher": {"model": keeper},
            "distillation": {"max_tokens": 4},
        },
    )
    assert created.status_code == 202, created.text
    job = job_status(client, created.json()["id"])
    assert job["status"] == "succeeded" and job["promotion"] is None
    d = job["distillation"]
    # The teacher was asked for four tokens at most (the sandbox cuts at four characters each),
    # and the job says that every answer was cut.
    assert all(len(a) <= 16 for a in last_answers(client, d["dataset"]))
    events = client.get(f"/v1/jobs/{job['id']}/events").json()["data"]
    end = [e for e in events if e["type"] == "distillation"][-1]
    assert (end["level"], end["data"]["cut_at_max_tokens"]) == ("warn", 12)
    assert end["message"].endswith("; 12 answers were cut at max_tokens (4)")
    for dataset in (prompts, d["dataset"], d["holdout_dataset"]):
        assert client.delete(f"/v1/datasets/{dataset}").status_code == 204, dataset


def test_a_teacher_that_refuses_the_prompts_fails_the_job_and_says_why(
    client: httpx.Client, worker: MakeWorker, sandbox: httpx.Client, keeper: str
) -> None:
    worker(burst=False).start()
    # Refused for good (a 400 is never tried again): twelve prompts, eleven refusals.
    add_fault(sandbox, path_prefix="/v1/chat/completions", status=400, count=11)
    prompts = upload_dataset(client, prompts_file(12), name="prompts.jsonl")
    job = job_status(client, distil(client, prompts)["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "teacher_failed"
    assert job["error"]["message"].startswith(
        "The teacher answered 1 of 12 prompts (first failure:"
    )
    assert "at least 10 are needed" in job["error"]["message"]
    assert (job["distillation"]["answered"], job["distillation"]["failed"]) == (1, 11)
    assert job["upstream"]["job_id"] is None
    # The job no longer holds its prompts.
    assert client.delete(f"/v1/datasets/{prompts}").status_code == 204


def test_a_job_request_with_a_teacher_is_checked_when_it_is_made(
    client: httpx.Client, keeper: str
) -> None:
    prompts = upload_dataset(client, prompts_file(12), name="prompts.jsonl")
    preference = upload_dataset(client, jsonl(preference_examples(12)), name="pref.jsonl")

    def refused(**body: Any) -> str:
        response = client.post(
            "/v1/jobs", json={"training_dataset": prompts, "model": BASE_MODEL, **body}
        )
        assert response.status_code == 422, response.text
        detail: str = response.json()["detail"]
        return detail

    assert refused(teacher={"model": "nobody"}).startswith("teacher.model: 'nobody' is none")
    assert refused(teacher={"model": keeper}, distillation={"holdout": 3}).startswith(
        "distillation.holdout: holding out 3 of the 12 prompts"
    )
    assert refused(distillation={"holdout": 2}).startswith("distillation: only a job with")
    assert refused(
        teacher={"model": keeper},
        promote_to="keeper",
        promotion={"evaluation_dataset": prompts},
    ).startswith("promotion: a distillation gates promote_to")
    dpo = {"type": "dpo"}
    assert refused(teacher={"model": keeper}, training_dataset=preference, method=dpo).startswith(
        f"training_dataset: {preference} is a preference set"
    )
    malformed = client.post(
        "/v1/jobs",
        json={
            "training_dataset": prompts,
            "model": BASE_MODEL,
            "teacher": {"model": keeper},
            "distillation": {"holdout": 1.5},
        },
    )
    assert malformed.status_code == 400


def test_a_distillation_cancelled_while_the_teacher_answers_asks_nothing_more(
    client: httpx.Client,
    worker: MakeWorker,
    sandbox: httpx.Client,
    sandbox_model: str,
    keeper: str,
) -> None:
    worker(burst=False).start()
    # The teacher holds its answers until the faults are cleared.
    add_fault(sandbox, path_prefix="/v1/chat/completions", delay=HELD, count=1000)
    prompts = upload_dataset(client, prompts_file(12), name="prompts.jsonl")
    job_id = distil(client, prompts, distillation={"max_concurrency": 2})["id"]
    wait_for(
        lambda: stats(sandbox).get("POST /v1/chat/completions", 0) == 2,
        what="two questions in flight",
    )
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    sandbox.delete("/sandbox/faults").raise_for_status()

    def both_answered() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["distillation"]["answered"] == 2 else None

    job = wait_for(both_answered, what="the two answers in flight to be stored")
    assert job["status"] == "cancelled" and job["distillation"]["phase"] == "finished"
    assert sum(chat_prompts(sandbox, sandbox_model).values()) == 2
    assert client.delete(f"/v1/datasets/{prompts}").status_code == 204


@pytest.mark.crash
def test_a_worker_killed_while_the_teacher_answers_is_replaced_and_no_stored_answer_is_asked_again(
    client: httpx.Client,
    sandbox: httpx.Client,
    spawn_worker: SpawnWorker,
    store: RedisSession,
    sandbox_model: str,
    keeper: str,
) -> None:
    # The teacher answers four prompts at once, then holds every other question: the worker
    # dies with four answers stored and questions in flight.
    add_fault(sandbox, path_prefix="/v1/chat/completions", count=4)
    add_fault(sandbox, path_prefix="/v1/chat/completions", delay=HELD, count=1000)
    first = spawn_worker(function_timeout=FUNCTION_TIMEOUT)
    prompts = upload_dataset(client, prompts_file(12), name="prompts.jsonl")
    job_id = distil(client, prompts, distillation={"max_concurrency": 2})["id"]

    async def keys(redis: Redis) -> list[bytes]:
        found: list[bytes] = await redis.hkeys(answers_key(job_id))  # type: ignore[misc]
        return found

    def stored() -> list[int]:
        return sorted(int(k) for k in store(keys))

    wait_for(
        lambda: len(stored()) == 4 and stats(sandbox).get("POST /v1/chat/completions", 0) >= 6,
        what="four answers stored and the next questions held",
    )
    first.kill()  # SIGKILL: no clean-up at all
    first.wait(10)
    before = stored()
    assert len(before) == 4
    sandbox.delete("/sandbox/faults").raise_for_status()
    spawn_worker(function_timeout=FUNCTION_TIMEOUT)

    job = decided(client, job_id)
    d = job["distillation"]
    assert (d["prompts"], d["answered"], d["failed"]) == (12, 12, 0)
    assert job["promotion"]["status"] == "promoted"
    asked = chat_prompts(sandbox, sandbox_model)
    assert set(asked) == {question(i) for i in range(12)}
    # An answer stored before the kill was never asked again: only questions that had no
    # answer yet (held when the worker died) may have been asked twice.
    assert [asked[question(i)] for i in before] == [1] * len(before)
    unanswered = {question(i) for i in range(12) if i not in before}
    assert {q for q, n in asked.items() if n > 1} <= unanswered
    # Each answer counted once in the tenant's usage, however often it was asked.
    row = next(r for r in client.get("/v1/usage").json()["data"] if r["model"] == sandbox_model)
    assert row["requests"] == 12
