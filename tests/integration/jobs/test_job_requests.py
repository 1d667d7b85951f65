"""`POST /v1/jobs` over HTTP: each rule's refusal is a 422 problem naming the field (the rules
themselves are unit-tested in tests/unit/jobs), nothing else is a 5xx, and keys replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from service.settings import ProviderSettings, Settings
from tests.support.api import upload_dataset
from tests.support.data import BASE_MODEL, RETIRED_MODEL_TABLE
from tests.support.fixtures import MakeClient, ServeBurro

SIXTEEN_KEYS = {f"k{i}": "v" for i in range(16)}


def refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["param"] == field, problem
    detail: str = problem["detail"]
    assert detail.startswith(f"{field}:"), detail
    return detail


def post_job(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/jobs", json=body)


def test_an_unknown_dataset_is_a_422(client: httpx.Client) -> None:
    response = post_job(client, training_dataset="ds_nope", model=BASE_MODEL)
    assert "ds_nope" in refused(response, "training_dataset")


def test_another_tenants_dataset_is_a_422_like_an_unknown_one(
    client: httpx.Client, other_client: httpx.Client
) -> None:
    theirs = upload_dataset(other_client)
    response = post_job(client, training_dataset=theirs, model=BASE_MODEL)
    assert "no dataset" in refused(response, "training_dataset")
    bad_validation = post_job(
        client, training_dataset=upload_dataset(client), validation_dataset=theirs, model=BASE_MODEL
    )
    refused(bad_validation, "validation_dataset")


# (changes to a valid body, the field named, words of the detail): one case per rule.
RULES: list[tuple[dict[str, Any], str, str]] = [
    ({"model": "dall-e-3"}, "model", "cannot be fine-tuned"),
    ({"method": {"type": "dpo"}}, "method.type", "preference"),
    ({"webhook": {"url": "ftp://example.com/hook"}}, "webhook.url", "http"),
    ({"webhook": {"url": "file:///etc/passwd"}}, "webhook.url", "http"),
    ({"webhook": {"url": "example.com"}}, "webhook.url", "http"),
    ({"metadata": SIXTEEN_KEYS}, "metadata", "at most 15"),
    ({"metadata": {"burro_job": "x"}}, "metadata", "Burro's own"),
    ({"provider": "nope"}, "provider", "nope"),
]


def test_each_rule_refuses_with_a_422_naming_its_field(
    client: httpx.Client, dataset: str, subtests: pytest.Subtests
) -> None:
    """One server for every rule: a refusal stores nothing, so the cases cannot interfere."""
    for changes, field, words in RULES:
        with subtests.test(field=field, changes=changes):
            body = {"training_dataset": dataset, "model": BASE_MODEL, **changes}
            assert words in refused(client.post("/v1/jobs", json=body), field)
    assert client.get("/v1/jobs").json()["data"] == []


def test_fifteen_metadata_keys_are_accepted(client: httpx.Client, dataset: str) -> None:
    fifteen = {f"k{i}": "v" for i in range(15)}
    response = post_job(client, training_dataset=dataset, model=BASE_MODEL, metadata=fifteen)
    assert response.status_code == 202, response.text
    assert response.json()["metadata"] == fifteen


def test_a_deployment_refuses_retired_models_private_webhooks_and_keyless_openai(
    settings: Settings, tmp_path: Path, serve_burro: ServeBurro, make_client: MakeClient
) -> None:
    table = tmp_path / "models.toml"
    table.write_text(RETIRED_MODEL_TABLE)
    deployed = msgspec.structs.replace(
        settings,
        models_file=table,
        webhook_allow_private=False,
        providers=(*settings.providers, ProviderSettings(name="openai", api_key=None)),
    )
    client = make_client("acme", base_url=serve_burro(deployed))
    dataset = upload_dataset(client)

    detail = refused(post_job(client, training_dataset=dataset, model="babbage-ft-2023"), "model")
    assert "2024-10-27" in detail and "retired" in detail
    # An `ft:` model is judged by its base.
    ft = post_job(client, training_dataset=dataset, model="ft:babbage-ft-2023:acme:x:abc")
    assert "2024-10-27" in refused(ft, "model")
    private = post_job(
        client,
        training_dataset=dataset,
        model=BASE_MODEL,
        webhook={"url": "http://127.0.0.1/hook"},
    )
    assert "loopback" in refused(private, "webhook.url")
    keyless = post_job(client, training_dataset=dataset, model=BASE_MODEL, provider="openai")
    assert "OPENAI_API_KEY" in refused(keyless, "provider")


def test_malformed_bodies_are_client_errors_never_500(client: httpx.Client, dataset: str) -> None:
    for body in (
        {"training_dataset": dataset},
        {"training_dataset": dataset, "model": BASE_MODEL, "surprise": 1},
        {"training_dataset": dataset, "model": BASE_MODEL, "seed": -1},
        {"training_dataset": dataset, "model": BASE_MODEL, "method": {"type": "reinforcement"}},
    ):
        response = client.post("/v1/jobs", json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
    assert client.post("/v1/jobs", content=b"{not json").status_code == 400


def test_a_given_webhook_secret_is_kept_and_shown_only_once(
    client: httpx.Client, dataset: str
) -> None:
    secret = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    created = post_job(
        client,
        training_dataset=dataset,
        model=BASE_MODEL,
        webhook={"url": "http://127.0.0.1:9/h", "secret": secret},
    ).json()
    assert created["webhook"]["secret"] == secret
    assert client.get(f"/v1/jobs/{created['id']}").json()["webhook"] == {
        "url": "http://127.0.0.1:9/h"
    }


def test_the_same_idempotency_key_and_body_answers_the_first_job_again(
    client: httpx.Client, dataset: str
) -> None:
    body = {"training_dataset": dataset, "model": BASE_MODEL, "suffix": "again"}
    headers = {"Idempotency-Key": "key-1"}
    first = client.post("/v1/jobs", json=body, headers=headers)
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert len(client.get("/v1/jobs").json()["data"]) == 1
    other = client.post("/v1/jobs", json={**body, "suffix": "other"}, headers=headers)
    assert other.status_code == 409, other.text


def test_cancel_of_a_finished_job_is_a_409(client: httpx.Client, dataset: str) -> None:
    job_id = post_job(client, training_dataset=dataset, model=BASE_MODEL).json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
