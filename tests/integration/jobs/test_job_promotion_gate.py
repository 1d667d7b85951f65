"""A job with a promotion gate moves its `promote_to` alias only when an evaluation on a test
set says its model is at least as good as the baseline (or a threshold); the alias history and
the job's timeline say why it moved or did not. The sandbox is the upstream: a model it
fine-tuned answers from its training data, so it beats the base model on those examples."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.api import upload_dataset
from tests.support.data import BASE_MODEL, chat_file
from tests.support.fixtures import MakeWorker
from tests.support.waiting import wait_for


def _gated_job(client: httpx.Client, dataset: str, test_set: str, **gate: Any) -> str:
    created = client.post(
        "/v1/jobs",
        json={
            "training_dataset": dataset,
            "model": BASE_MODEL,
            "promote_to": "donkey",
            "promotion": {"evaluation_dataset": test_set, "max_examples": 10, **gate},
        },
    )
    assert created.status_code == 202, created.text
    body: dict[str, Any] = created.json()
    assert body["promotion"] == {
        "evaluation_dataset": test_set,
        "min_similarity": gate.get("min_similarity"),
        "baseline_model": None,
        "max_examples": 10,
        "status": "pending",
        "evaluation": None,
        "reason": None,
    }
    job_id: str = body["id"]
    return job_id


def _decided(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        gate = job["promotion"]
        return job if gate["status"] in ("promoted", "not_promoted") else None

    return wait_for(check, what=f"{job_id}'s promotion")


def test_a_gated_job_is_promoted_only_when_its_evaluation_says_so(
    client: httpx.Client, worker: MakeWorker
) -> None:
    worker(burst=False).start()
    training = chat_file(12)
    dataset = upload_dataset(client, training, name="donkey.jsonl")
    # Ten of the twelve training examples: the fine-tuned model answers them word for word.
    test_set = upload_dataset(client, b"".join(training.splitlines(keepends=True)[:10]), name="t")

    first = _decided(client, _gated_job(client, dataset, test_set))
    gate = first["promotion"]
    assert first["status"] == "succeeded"
    assert gate["status"] == "promoted", gate
    assert gate["evaluation"].startswith("eval_")
    assert gate["reason"].startswith(f"promoted: evaluation {gate['evaluation']} fine-tuned 1.000")
    assert "≥ baseline" in gate["reason"]
    evaluation = client.get(f"/v1/evaluations/{gate['evaluation']}").json()
    assert evaluation["status"] == "completed" and evaluation["job"] == first["id"]
    assert evaluation["summary"]["winner"] == "fine_tuned"
    alias = client.get("/v1/aliases/donkey").json()
    assert alias["job"] == first["id"] and alias["model"] == first["fine_tuned_model"]
    assert alias["history"][0] == {
        "job": first["id"],
        "model": first["fine_tuned_model"],
        "at": alias["history"][0]["at"],
        "reason": gate["reason"],
        "moved": True,
    }

    # A threshold no model reaches: the job succeeds, the alias stays where it was.
    second = _decided(client, _gated_job(client, dataset, test_set, min_similarity=1.01))
    gate = second["promotion"]
    assert second["status"] == "succeeded"
    assert gate["status"] == "not_promoted", gate
    assert gate["reason"] == (
        f"not promoted: evaluation {gate['evaluation']} fine-tuned 1.000 < threshold 1.010"
    )
    alias = client.get("/v1/aliases/donkey").json()
    assert alias["job"] == first["id"] and alias["can_roll_back"] is False
    latest = alias["history"][0]
    assert (latest["job"], latest["moved"], latest["reason"]) == (
        second["id"],
        False,
        gate["reason"],
    )
    events = client.get(f"/v1/jobs/{second['id']}/events").json()["data"]
    said = [e for e in events if e["type"] == "promotion"]
    assert said[-1]["message"].startswith("Not promoted: evaluation")
    assert said[-1]["data"] == {
        "alias": "donkey",
        "promoted": False,
        "evaluation": gate["evaluation"],
    }
    # Both gates are closed: the test set is free to delete again.
    assert client.delete(f"/v1/datasets/{test_set}").status_code == 204


def test_a_promotion_gate_is_checked_when_the_job_is_created(
    client: httpx.Client, dataset: str, other_client: httpx.Client
) -> None:
    theirs = upload_dataset(other_client, chat_file(10, salt="x"))

    def refused(promotion: Any, promote_to: str | None = "donkey") -> dict[str, Any]:
        body: dict[str, Any] = {"training_dataset": dataset, "model": BASE_MODEL}
        body["promotion"] = promotion
        if promote_to is not None:
            body["promote_to"] = promote_to
        response = client.post("/v1/jobs", json=body)
        assert response.status_code in (400, 422), response.text
        problem: dict[str, Any] = response.json()
        return problem

    unknown = refused({"evaluation_dataset": "ds_nope"})
    assert unknown["status"] == 422
    assert unknown["detail"].startswith("promotion.evaluation_dataset: no dataset")
    assert refused({"evaluation_dataset": theirs})["detail"] == unknown["detail"].replace(
        "ds_nope", theirs
    )
    no_alias = refused({"evaluation_dataset": dataset}, promote_to=None)
    assert no_alias["status"] == 422 and no_alias["detail"].startswith("promotion: ")
    baseline = refused({"evaluation_dataset": dataset, "baseline_model": "ft:nobody:x"})
    assert baseline["status"] == 422
    assert baseline["detail"].startswith("promotion.baseline_model: ")
    assert refused({"evaluation_dataset": dataset, "typo": 1})["status"] == 400
    assert refused({"evaluation_dataset": dataset, "min_similarity": -1})["status"] == 400
