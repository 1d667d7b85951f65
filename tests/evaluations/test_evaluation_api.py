"""`/v1/evaluations` end to end: Burro over HTTP, the sandbox as the upstream, an arq worker in
burst mode running the evaluation."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from evaluation_helpers import (
    BASE_MODEL,
    JSONL,
    drain_queue,
    enqueue,
    job_record,
    jsonl,
    on_redis,
    save_job,
    training_examples,
)
from redis.asyncio import Redis

from burro.testing import serve_in_thread
from service.datasets.records import users_key
from service.evaluations.records import rows_key
from service.evaluations.runner import evaluations
from service.settings import Settings
from service.tasks import RUN_EVALUATION


def evaluate(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/evaluations", json=body)
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


def test_the_fine_tuned_model_beats_its_base_model_on_examples_it_was_trained_on(
    acme: httpx.Client, acme_job: str, test_set: str, sandbox_model: str, sandbox_settings: Settings
) -> None:
    created = evaluate(acme, job=acme_job, dataset=test_set)
    assert created["id"].startswith("eval_")
    assert created["status"] == "queued"
    assert created["model"] == sandbox_model
    assert created["baseline_model"] == BASE_MODEL  # default: the job's base model
    assert created["progress"] == {"done": 0, "total": 10}

    drain_queue(sandbox_settings)

    evaluation = acme.get(f"/v1/evaluations/{created['id']}").json()
    assert evaluation["status"] == "completed", evaluation
    assert evaluation["progress"] == {"done": 10, "total": 10}
    rows = evaluation["rows"]
    assert [r["index"] for r in rows] == list(range(10))
    for i, row in enumerate(rows):
        example = training_examples()[i]["messages"]
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

    listed = acme.get("/v1/evaluations", params={"job": acme_job}).json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert "rows" not in listed["data"][0]
    assert listed["data"][0]["summary"]["winner"] == "fine_tuned"


def test_max_examples_bounds_the_rows_and_a_named_baseline_is_used(
    acme: httpx.Client, acme_job: str, test_set: str, sandbox_settings: Settings
) -> None:
    created = evaluate(
        acme, job=acme_job, dataset=test_set, max_examples=3, baseline_model="gpt-4o-mini"
    )
    assert created["progress"]["total"] == 3
    drain_queue(sandbox_settings)
    evaluation = acme.get(f"/v1/evaluations/{created['id']}").json()
    assert len(evaluation["rows"]) == 3
    assert {r["baseline"]["model"] for r in evaluation["rows"]} == {"gpt-4o-mini"}
    assert evaluation["summary"]["baseline"]["model"] == "gpt-4o-mini"


def test_transient_upstream_failures_are_retried(
    acme: httpx.Client,
    acme_job: str,
    test_set: str,
    sandbox_settings: Settings,
    sandbox_controls: httpx.Client,
) -> None:
    fault = {"path_prefix": "/v1/chat/completions", "status": 503, "count": 3}
    assert sandbox_controls.post("/sandbox/faults", json=fault).status_code == 200
    created = evaluate(acme, job=acme_job, dataset=test_set, max_examples=2)
    drain_queue(sandbox_settings, concurrency=1)
    evaluation = acme.get(f"/v1/evaluations/{created['id']}").json()
    assert evaluation["status"] == "completed"
    assert all(
        r["fine_tuned"]["error"] is None and r["baseline"]["error"] is None
        for r in evaluation["rows"]
    )
    assert evaluation["summary"]["wins"]["fine_tuned"] == 2


def test_a_request_that_keeps_failing_loses_its_example_and_is_kept_as_an_error(
    acme: httpx.Client,
    acme_job: str,
    test_set: str,
    sandbox_settings: Settings,
    sandbox_controls: httpx.Client,
) -> None:
    # Enough 500s to exhaust the retries of the first request (max_tries=4 in the helper).
    fault = {"path_prefix": "/v1/chat/completions", "status": 500, "count": 4}
    assert sandbox_controls.post("/sandbox/faults", json=fault).status_code == 200
    created = evaluate(acme, job=acme_job, dataset=test_set, max_examples=2)
    drain_queue(sandbox_settings, concurrency=1)
    evaluation = acme.get(f"/v1/evaluations/{created['id']}").json()
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
    acme: httpx.Client,
    acme_job: str,
    test_set: str,
    sandbox_settings: Settings,
    sandbox_controls: httpx.Client,
    redis_url: str,
) -> None:
    created = evaluate(acme, job=acme_job, dataset=test_set, max_examples=4)
    drain_queue(sandbox_settings)
    first = acme.get(f"/v1/evaluations/{created['id']}").json()

    # As if the worker had died after two rows: drop two rows, reopen it, run it again.
    async def reopen(redis: Redis) -> None:
        await redis.hdel(rows_key(created["id"]), "2", "3")  # type: ignore[misc]
        record = await evaluations(redis).get(created["id"])
        assert record is not None
        await evaluations(redis).save(msgspec.structs.replace(record, status="running"))

    on_redis(redis_url, reopen)
    sandbox_controls.delete("/sandbox/stats")
    enqueue(redis_url, RUN_EVALUATION, created["id"])
    drain_queue(sandbox_settings)

    stats = sandbox_controls.get("/sandbox/stats").json()["requests"]
    chat_calls = sum(n for path, n in stats.items() if "chat/completions" in path)
    assert chat_calls == 4  # two rows, two models each
    second = acme.get(f"/v1/evaluations/{created['id']}").json()
    assert second["status"] == "completed"
    assert second["rows"][:2] == first["rows"][:2]
    assert second["summary"]["wins"] == first["summary"]["wins"]


def test_a_run_past_its_time_budget_continues_in_a_new_queued_job(
    acme: httpx.Client,
    acme_job: str,
    test_set: str,
    sandbox_settings: Settings,
    sandbox_controls: httpx.Client,
    redis_url: str,
) -> None:
    # Every chat call takes 0.3 s: six rows, asked one call at a time, outlast a 1 s budget.
    slow = {"path_prefix": "/v1/chat/completions", "delay": 0.3, "count": 1000}
    assert sandbox_controls.post("/sandbox/faults", json=slow).status_code == 200
    created = evaluate(acme, job=acme_job, dataset=test_set, max_examples=6)
    drain_queue(sandbox_settings, concurrency=1, budget_seconds=1.0, keep_results=True)
    evaluation = acme.get(f"/v1/evaluations/{created['id']}").json()
    assert evaluation["status"] == "completed"
    assert len(evaluation["rows"]) == 6

    async def continuations(redis: Redis) -> list[bytes]:
        return [k async for k in redis.scan_iter(f"arq:result:evaluation:{created['id']}:*")]

    assert on_redis(redis_url, continuations)


def test_the_dataset_cannot_be_deleted_while_its_evaluation_runs(
    acme: httpx.Client, acme_job: str, test_set: str, sandbox_settings: Settings, redis_url: str
) -> None:
    created = evaluate(acme, job=acme_job, dataset=test_set, max_examples=1)
    assert acme.delete(f"/v1/datasets/{test_set}").status_code == 409
    drain_queue(sandbox_settings)
    assert not on_redis(redis_url, lambda r: r.exists(users_key(test_set)))
    assert acme.get(f"/v1/evaluations/{created['id']}").json()["status"] == "completed"
    assert acme.delete(f"/v1/datasets/{test_set}").status_code == 204


def test_another_tenants_evaluation_job_or_dataset_is_not_found(
    acme: httpx.Client,
    globex: httpx.Client,
    acme_job: str,
    test_set: str,
    sandbox_settings: Settings,
) -> None:
    created = evaluate(acme, job=acme_job, dataset=test_set, max_examples=1)
    response = globex.get(f"/v1/evaluations/{created['id']}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert globex.get("/v1/evaluations").json()["data"] == []
    own = globex.post(
        "/v1/datasets", content=jsonl(training_examples()[:10]), headers=JSONL
    ).json()["id"]
    assert globex.post("/v1/evaluations", json={"job": acme_job, "dataset": own}).status_code == 404
    # Acme's job with globex's dataset: the dataset is not acme's.
    assert acme.post("/v1/evaluations", json={"job": acme_job, "dataset": own}).status_code == 404
    assert acme.get("/v1/evaluations/eval_nope").status_code == 404


def test_a_job_that_has_not_succeeded_cannot_be_evaluated(
    acme: httpx.Client, test_set: str, redis_url: str
) -> None:
    save_job(redis_url, job_record("job_running1", "acme", "running"))
    response = acme.post("/v1/evaluations", json={"job": "job_running1", "dataset": test_set})
    assert response.status_code == 422
    problem = response.json()
    assert problem["param"] == "job" and "running" in problem["detail"]


def test_a_dataset_without_a_prompted_assistant_message_cannot_be_evaluated(
    acme: httpx.Client, acme_job: str
) -> None:
    preference = [
        {
            "input": {"messages": [{"role": "user", "content": f"Hay {i}?"}]},
            "preferred_output": [{"role": "assistant", "content": "Yes."}],
            "non_preferred_output": [{"role": "assistant", "content": "No."}],
        }
        for i in range(10)
    ]
    dataset = acme.post("/v1/datasets", content=jsonl(preference), headers=JSONL)
    assert dataset.status_code == 201, dataset.text
    response = acme.post("/v1/evaluations", json={"job": acme_job, "dataset": dataset.json()["id"]})
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
    dataset = acme.post("/v1/datasets", content=jsonl(opening), headers=JSONL)
    assert dataset.status_code == 201, dataset.text
    response = acme.post("/v1/evaluations", json={"job": acme_job, "dataset": dataset.json()["id"]})
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
    acme: httpx.Client, acme_job: str, test_set: str, body: dict[str, Any]
) -> None:
    response = acme.post("/v1/evaluations", json={"job": acme_job, "dataset": test_set, **body})
    assert response.status_code == 400, response.text


def test_an_unknown_baseline_model_is_refused(
    acme: httpx.Client, acme_job: str, test_set: str
) -> None:
    response = acme.post(
        "/v1/evaluations",
        json={"job": acme_job, "dataset": test_set, "baseline_model": "llama-9000"},
    )
    assert response.status_code == 422
    assert response.json()["param"] == "baseline_model"


def test_evaluations_need_a_key(burro: str) -> None:
    assert httpx.get(f"{burro}/v1/evaluations/eval_x").status_code == 401


class Hooks:
    """A webhook receiver on loopback that records each body and answers 204."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rpartition(".")[2]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        with self.lock:
            self.bodies.append(json.loads(body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def hooks() -> Iterator[tuple[Hooks, str]]:
    receiver = Hooks()
    with serve_in_thread(receiver) as url:
        yield receiver, url


def test_a_finished_evaluation_is_announced_by_webhook(
    acme: httpx.Client,
    acme_job: str,
    test_set: str,
    sandbox_settings: Settings,
    redis_url: str,
    hooks: tuple[Hooks, str],
) -> None:
    receiver, url = hooks
    endpoint = acme.post("/v1/webhook-endpoints", json={"url": f"{url}/all", "events": ["*"]})
    assert endpoint.status_code == 201, endpoint.text
    created = evaluate(acme, job=acme_job, dataset=test_set, max_examples=2)
    drain_queue(sandbox_settings)

    assert [b["type"] for b in receiver.bodies] == ["evaluation.completed"]
    data = receiver.bodies[0]["data"]
    assert data["id"] == created["id"] and data["status"] == "completed"
    assert data["summary"]["wins"]["fine_tuned"] == 2
    assert "rows" not in data
    messages = acme.get("/v1/webhook-messages", params={"job": created["id"]}).json()["data"]
    assert [m["state"] for m in messages] == ["delivered"]
