"""`/v1/evaluations` end to end: Burro over HTTP, the sandbox as the upstream, an arq worker in
burst mode running the evaluation."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from service.datasets.records import users_key
from service.evaluations.records import rows_key
from service.evaluations.runner import RetryPolicy, evaluations
from service.tasks import RUN_EVALUATION
from tests.support.api import upload_dataset
from tests.support.data import (
    BASE_MODEL,
    chat_examples,
    chat_file,
    job_record,
    jsonl,
    preference_examples,
)
from tests.support.fixtures import MakeWorker
from tests.support.receivers import Receiver
from tests.support.store import enqueue, on_redis, save_job
from tests.support.workers import BurroWorker

# Fast retries of the evaluation's upstream calls, at most four tries each.
RETRY = RetryPolicy(max_tries=4, base=0.02, cap=0.1)


def evaluation_worker(
    worker: MakeWorker, *, concurrency: int = 4, budget_seconds: float | None = None, **kwargs: Any
) -> BurroWorker:
    """A burst worker whose evaluation runs take `concurrency` examples at once (and stop after
    `budget_seconds` to continue in a new queued job)."""
    if budget_seconds is not None:
        kwargs["evaluation_budget"] = budget_seconds
    return worker(evaluation_concurrency=concurrency, evaluation_retry=RETRY, **kwargs)


def evaluate(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/evaluations", json=body)
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


def test_the_fine_tuned_model_beats_its_base_model_on_examples_it_was_trained_on(
    client: httpx.Client, acme_job: str, test_set: str, sandbox_model: str, worker: MakeWorker
) -> None:
    created = evaluate(client, job=acme_job, dataset=test_set)
    assert created["id"].startswith("eval_")
    assert created["status"] == "queued"
    assert created["model"] == sandbox_model
    assert created["baseline_model"] == BASE_MODEL  # default: the job's base model
    assert created["progress"] == {"done": 0, "total": 10}

    evaluation_worker(worker).drain()

    evaluation = client.get(f"/v1/evaluations/{created['id']}").json()
    assert evaluation["status"] == "completed", evaluation
    assert evaluation["progress"] == {"done": 10, "total": 10}
    rows = evaluation["rows"]
    assert [r["index"] for r in rows] == list(range(10))
    for i, row in enumerate(rows):
        example = chat_examples()[i]["messages"]
        assert row["line"] == i + 1
        assert row["prompt"] == [{"role": m["role"], "content": m["content"]} for m in example[:2]]
        assert row["reference"] == example[2]["content"]
        tuned, base = row["fine_tuned"], row["baseline"]
        assert tuned["model"] == sandbox_model and base["model"] == BASE_MODEL
        assert tuned["text"] == row["reference"]  # the sandbox answers from training data
        assert tuned["exact_match"] is True and tuned["similarity"] == 1.0
        assert base["text"] and base["exact_match"] is False and base["similarity"] < 1.0
        for answer in (tuned, base):
            assert answer["error"] is None
            assert answer["prompt_tokens"] > 0 and answer["completion_tokens"] > 0
            assert answer["latency_ms"] > 0
            assert answer["cost_usd"] > 0  # the base model's inference prices
        assert row["winner"] == "fine_tuned"

    summary = evaluation["summary"]
    assert summary["examples"] == 10
    assert summary["wins"] == {"fine_tuned": 10, "baseline": 0, "tie": 0}
    assert summary["winner"] == "fine_tuned"
    assert summary["fine_tuned"]["wins"] == 10
    assert summary["fine_tuned"]["exact_match_rate"] == 1.0
    assert summary["fine_tuned"]["mean_similarity"] == 1.0
    assert summary["baseline"]["mean_similarity"] < 0.8
    assert summary["baseline"]["exact_matches"] == 0
    assert summary["fine_tuned"]["cost_usd"] == pytest.approx(
        sum(r["fine_tuned"]["cost_usd"] for r in rows)
    )

    listed = client.get("/v1/evaluations", params={"job": acme_job}).json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert "rows" not in listed["data"][0]
    assert listed["data"][0]["summary"]["winner"] == "fine_tuned"


def test_max_examples_bounds_the_rows_and_a_named_baseline_is_used(
    client: httpx.Client, acme_job: str, test_set: str, worker: MakeWorker
) -> None:
    created = evaluate(
        client, job=acme_job, dataset=test_set, max_examples=3, baseline_model="gpt-4o-mini"
    )
    assert created["progress"]["total"] == 3
    evaluation_worker(worker).drain()
    evaluation = client.get(f"/v1/evaluations/{created['id']}").json()
    assert len(evaluation["rows"]) == 3
    assert {r["baseline"]["model"] for r in evaluation["rows"]} == {"gpt-4o-mini"}
    assert evaluation["summary"]["baseline"]["model"] == "gpt-4o-mini"


def test_transient_upstream_failures_are_retried(
    client: httpx.Client, acme_job: str, test_set: str, sandbox: httpx.Client, worker: MakeWorker
) -> None:
    fault = {"path_prefix": "/v1/chat/completions", "status": 503, "count": 3}
    assert sandbox.post("/sandbox/faults", json=fault).status_code == 200
    created = evaluate(client, job=acme_job, dataset=test_set, max_examples=2)
    evaluation_worker(worker, concurrency=1).drain()
    evaluation = client.get(f"/v1/evaluations/{created['id']}").json()
    assert evaluation["status"] == "completed"
    assert all(
        r["fine_tuned"]["error"] is None and r["baseline"]["error"] is None
        for r in evaluation["rows"]
    )
    assert evaluation["summary"]["wins"]["fine_tuned"] == 2


def test_a_request_that_keeps_failing_loses_its_example_and_is_kept_as_an_error(
    client: httpx.Client, acme_job: str, test_set: str, sandbox: httpx.Client, worker: MakeWorker
) -> None:
    # Enough 500s to exhaust the retries of the first request (max_tries=4 in the helper).
    fault = {"path_prefix": "/v1/chat/completions", "status": 500, "count": 4}
    assert sandbox.post("/sandbox/faults", json=fault).status_code == 200
    created = evaluate(client, job=acme_job, dataset=test_set, max_examples=2)
    evaluation_worker(worker, concurrency=1).drain()
    evaluation = client.get(f"/v1/evaluations/{created['id']}").json()
    assert evaluation["status"] == "completed"
    errors = [
        a["error"]
        for r in evaluation["rows"]
        for a in (r["fine_tuned"], r["baseline"])
        if a["error"]
    ]
    assert len(errors) == 1
    summary = evaluation["summary"]
    assert summary["fine_tuned"]["errors"] + summary["baseline"]["errors"] == 1


def test_a_second_run_asks_only_for_the_rows_not_yet_scored(
    client: httpx.Client,
    acme_job: str,
    test_set: str,
    sandbox: httpx.Client,
    redis_url: str,
    worker: MakeWorker,
) -> None:
    created = evaluate(client, job=acme_job, dataset=test_set, max_examples=4)
    evaluation_worker(worker).drain()
    first = client.get(f"/v1/evaluations/{created['id']}").json()

    # As if the worker had died after two rows: drop two rows, reopen it, run it again.
    async def reopen(redis: Redis) -> None:
        await redis.hdel(rows_key(created["id"]), "2", "3")  # type: ignore[misc]
        record = await evaluations(redis).get(created["id"])
        assert record is not None
        await evaluations(redis).save(msgspec.structs.replace(record, status="running"))

    on_redis(redis_url, reopen)
    sandbox.delete("/sandbox/stats")
    enqueue(redis_url, RUN_EVALUATION, created["id"])
    evaluation_worker(worker).drain()

    stats = sandbox.get("/sandbox/stats").json()["requests"]
    chat_calls = sum(n for path, n in stats.items() if "chat/completions" in path)
    assert chat_calls == 4  # two rows, two models each
    second = client.get(f"/v1/evaluations/{created['id']}").json()
    assert second["status"] == "completed"
    assert second["rows"][:2] == first["rows"][:2]
    assert second["summary"]["wins"] == first["summary"]["wins"]


@pytest.mark.slow  # seconds of slow upstream answers, to outlast the run's time budget
def test_a_run_past_its_time_budget_continues_in_a_new_queued_job(
    client: httpx.Client,
    acme_job: str,
    test_set: str,
    sandbox: httpx.Client,
    redis_url: str,
    worker: MakeWorker,
) -> None:
    # Every chat call takes 0.3 s: six rows, asked one call at a time, outlast a 1 s budget.
    slow = {"path_prefix": "/v1/chat/completions", "delay": 0.3, "count": 1000}
    assert sandbox.post("/sandbox/faults", json=slow).status_code == 200
    created = evaluate(client, job=acme_job, dataset=test_set, max_examples=6)
    evaluation_worker(worker, concurrency=1, budget_seconds=1.0, keep_result=60).drain()
    evaluation = client.get(f"/v1/evaluations/{created['id']}").json()
    assert evaluation["status"] == "completed"
    assert len(evaluation["rows"]) == 6

    async def continuations(redis: Redis) -> list[bytes]:
        return [k async for k in redis.scan_iter(f"arq:result:evaluation:{created['id']}:*")]

    assert on_redis(redis_url, continuations)


def test_the_dataset_cannot_be_deleted_while_its_evaluation_runs(
    client: httpx.Client, acme_job: str, test_set: str, redis_url: str, worker: MakeWorker
) -> None:
    created = evaluate(client, job=acme_job, dataset=test_set, max_examples=1)
    assert client.delete(f"/v1/datasets/{test_set}").status_code == 409
    evaluation_worker(worker).drain()
    assert not on_redis(redis_url, lambda r: r.exists(users_key(test_set)))
    assert client.get(f"/v1/evaluations/{created['id']}").json()["status"] == "completed"
    assert client.delete(f"/v1/datasets/{test_set}").status_code == 204


def test_another_tenants_evaluation_job_or_dataset_is_not_found(
    client: httpx.Client,
    other_client: httpx.Client,
    acme_job: str,
    test_set: str,
) -> None:
    created = evaluate(client, job=acme_job, dataset=test_set, max_examples=1)
    response = other_client.get(f"/v1/evaluations/{created['id']}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert other_client.get("/v1/evaluations").json()["data"] == []
    own = upload_dataset(other_client, chat_file(10))
    assert (
        other_client.post("/v1/evaluations", json={"job": acme_job, "dataset": own}).status_code
        == 404
    )
    # Acme's job with globex's dataset: the dataset is not acme's.
    assert client.post("/v1/evaluations", json={"job": acme_job, "dataset": own}).status_code == 404
    assert client.get("/v1/evaluations/eval_nope").status_code == 404


def test_a_job_that_has_not_succeeded_cannot_be_evaluated(
    client: httpx.Client, test_set: str, redis_url: str
) -> None:
    save_job(redis_url, job_record("job_running1", "acme", "running"))
    response = client.post("/v1/evaluations", json={"job": "job_running1", "dataset": test_set})
    assert response.status_code == 422
    problem = response.json()
    assert problem["param"] == "job" and "running" in problem["detail"]


def test_a_dataset_without_a_prompted_assistant_message_cannot_be_evaluated(
    client: httpx.Client, acme_job: str
) -> None:
    preference = upload_dataset(client, jsonl(preference_examples()))
    response = client.post("/v1/evaluations", json={"job": acme_job, "dataset": preference})
    assert response.status_code == 422
    assert response.json()["param"] == "dataset"

    # Chat examples whose only assistant message opens the conversation: nothing to prompt.
    opening = [
        {
            "messages": [
                {"role": "assistant", "content": f"Hello {i}"},
                {"role": "user", "content": "hi"},
            ]
        }
        for i in range(10)
    ]
    dataset = upload_dataset(client, jsonl(opening))
    response = client.post("/v1/evaluations", json={"job": acme_job, "dataset": dataset})
    assert response.status_code == 422
    assert "assistant" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"max_examples": 0},
        {"max_examples": 1001},
        {"surprise": True},
        {"baseline_model": ""},
    ],
)
def test_malformed_requests_are_refused(
    client: httpx.Client, acme_job: str, test_set: str, body: dict[str, Any]
) -> None:
    response = client.post("/v1/evaluations", json={"job": acme_job, "dataset": test_set, **body})
    assert response.status_code == 400, response.text


def test_an_unknown_baseline_model_is_refused(
    client: httpx.Client, acme_job: str, test_set: str
) -> None:
    response = client.post(
        "/v1/evaluations",
        json={"job": acme_job, "dataset": test_set, "baseline_model": "llama-9000"},
    )
    assert response.status_code == 422
    assert response.json()["param"] == "baseline_model"


def test_evaluations_need_a_key(anonymous: httpx.Client) -> None:
    assert anonymous.get("/v1/evaluations/eval_x").status_code == 401


def test_a_finished_evaluation_is_announced_by_webhook(
    client: httpx.Client,
    acme_job: str,
    test_set: str,
    receiver: Receiver,
    worker: MakeWorker,
) -> None:
    endpoint = client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url("/all"), "events": ["*"]}
    )
    assert endpoint.status_code == 201, endpoint.text
    created = evaluate(client, job=acme_job, dataset=test_set, max_examples=2)
    evaluation_worker(worker).drain()

    assert [b["type"] for b in receiver.bodies()] == ["evaluation.completed"]
    data = receiver.bodies()[0]["data"]
    assert data["id"] == created["id"] and data["status"] == "completed"
    assert data["summary"]["wins"]["fine_tuned"] == 2
    assert "rows" not in data
    messages = client.get("/v1/webhook-messages", params={"job": created["id"]}).json()["data"]
    assert [m["state"] for m in messages] == ["delivered"]
