"""`POST /v1/jobs` refuses what cannot train (422 naming the field) and replays by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from burro.testing import serve_in_thread
from service.app import create_app
from service.settings import ProviderSettings, Settings
from tests.jobs.conftest import MODEL, upload_dataset

RETIRED_TABLE = """
[[models]]
name = "gpt-4.1-mini-2025-04-14"
encoding = "o200k_base"
max_tokens_per_example = 65536
training_usd_per_1m_tokens = 5.0
input_usd_per_1m_tokens = 0.80
output_usd_per_1m_tokens = 3.20
methods = ["supervised", "dpo"]

[[models]]
name = "babbage-ft-2023"
encoding = "cl100k_base"
max_tokens_per_example = 4096
training_usd_per_1m_tokens = 0.4
input_usd_per_1m_tokens = 1.6
output_usd_per_1m_tokens = 1.6
shutdown = 2024-10-27
"""


def refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail: str = response.json()["detail"]
    assert detail.startswith(f"{field}:"), detail
    return detail


def post_job(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/v1/jobs", json=body)


def test_an_unknown_dataset_is_a_422(api: httpx.Client) -> None:
    response = post_job(api, training_dataset="ds_nope", model=MODEL)
    assert "ds_nope" in refused(response, "training_dataset")


def test_another_tenants_dataset_is_a_422_like_an_unknown_one(
    api: httpx.Client, other_api: httpx.Client
) -> None:
    theirs = upload_dataset(other_api)
    response = post_job(api, training_dataset=theirs, model=MODEL)
    assert "no dataset" in refused(response, "training_dataset")
    bad_validation = post_job(
        api, training_dataset=upload_dataset(api), validation_dataset=theirs, model=MODEL
    )
    refused(bad_validation, "validation_dataset")


def test_a_model_that_cannot_be_fine_tuned_is_a_422(api: httpx.Client, dataset: str) -> None:
    assert "cannot be fine-tuned" in refused(
        post_job(api, training_dataset=dataset, model="dall-e-3"), "model"
    )


def test_a_retired_model_is_a_422_that_says_since_when(
    job_settings: Settings, tmp_path: Path
) -> None:
    table = tmp_path / "models.toml"
    table.write_text(RETIRED_TABLE)
    custom = msgspec.structs.replace(job_settings, models_file=table)
    with (
        serve_in_thread(create_app(custom, configure_logs=False)) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer key-acme"}) as api,
    ):
        dataset = upload_dataset(api)
        detail = refused(post_job(api, training_dataset=dataset, model="babbage-ft-2023"), "model")
        assert "2024-10-27" in detail and "retired" in detail
        # An `ft:` model is judged by its base.
        detail = refused(
            post_job(api, training_dataset=dataset, model="ft:babbage-ft-2023:acme:x:abc"),
            "model",
        )
        assert "2024-10-27" in detail


def test_a_dpo_method_on_a_chat_set_is_a_422(api: httpx.Client, dataset: str) -> None:
    response = post_job(api, training_dataset=dataset, model=MODEL, method={"type": "dpo"})
    assert "preference" in refused(response, "method.type")


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "example.com"])
def test_a_webhook_url_that_is_not_http_is_a_422(api: httpx.Client, dataset: str, url: str) -> None:
    response = post_job(api, training_dataset=dataset, model=MODEL, webhook={"url": url})
    refused(response, "webhook.url")


def test_a_private_webhook_address_is_a_422_unless_allowed(
    job_settings: Settings, dataset: str
) -> None:
    strict = msgspec.structs.replace(job_settings, webhook_allow_private=False)
    with (
        serve_in_thread(create_app(strict, configure_logs=False)) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer key-acme"}) as api,
    ):
        response = post_job(
            api, training_dataset=dataset, model=MODEL, webhook={"url": "http://127.0.0.1/hook"}
        )
        assert "loopback" in refused(response, "webhook.url")


def test_too_many_metadata_keys_is_a_422(api: httpx.Client, dataset: str) -> None:
    fifteen = {f"k{i}": "v" for i in range(15)}
    assert post_job(api, training_dataset=dataset, model=MODEL, metadata=fifteen).status_code == 202
    sixteen = {**fifteen, "k15": "v"}
    response = post_job(api, training_dataset=dataset, model=MODEL, metadata=sixteen)
    assert "at most 15" in refused(response, "metadata")
    reserved = post_job(api, training_dataset=dataset, model=MODEL, metadata={"burro_job": "x"})
    refused(reserved, "metadata")


def test_an_unknown_provider_is_a_422(api: httpx.Client, dataset: str) -> None:
    refused(post_job(api, training_dataset=dataset, model=MODEL, provider="nope"), "provider")


def test_malformed_bodies_are_client_errors_never_500(api: httpx.Client, dataset: str) -> None:
    for body in (
        {"training_dataset": dataset},
        {"training_dataset": dataset, "model": MODEL, "surprise": 1},
        {"training_dataset": dataset, "model": MODEL, "seed": -1},
        {"training_dataset": dataset, "model": MODEL, "method": {"type": "reinforcement"}},
    ):
        response = api.post("/v1/jobs", json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
    assert api.post("/v1/jobs", content=b"{not json").status_code == 400


def test_a_given_webhook_secret_is_kept_and_shown_only_once(
    api: httpx.Client, dataset: str
) -> None:
    secret = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    created = post_job(
        api,
        training_dataset=dataset,
        model=MODEL,
        webhook={"url": "http://127.0.0.1:9/h", "secret": secret},
    ).json()
    assert created["webhook"]["secret"] == secret
    assert api.get(f"/v1/jobs/{created['id']}").json()["webhook"] == {"url": "http://127.0.0.1:9/h"}


def test_the_same_idempotency_key_and_body_answers_the_first_job_again(
    api: httpx.Client, dataset: str
) -> None:
    body = {"training_dataset": dataset, "model": MODEL, "suffix": "again"}
    headers = {"Idempotency-Key": "key-1"}
    first = api.post("/v1/jobs", json=body, headers=headers)
    again = api.post("/v1/jobs", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert len(api.get("/v1/jobs").json()["data"]) == 1
    other = api.post("/v1/jobs", json={**body, "suffix": "other"}, headers=headers)
    assert other.status_code == 409, other.text


def test_cancel_of_a_finished_job_is_a_409(api: httpx.Client, dataset: str) -> None:
    job_id = post_job(api, training_dataset=dataset, model=MODEL).json()["id"]
    assert api.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 409


def test_the_openai_provider_without_a_key_is_a_422(job_settings: Settings, dataset: str) -> None:
    keyless = msgspec.structs.replace(
        job_settings,
        providers=(*job_settings.providers, ProviderSettings(name="openai", api_key=None)),
    )
    with (
        serve_in_thread(create_app(keyless, configure_logs=False)) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer key-acme"}) as api,
    ):
        response = post_job(api, training_dataset=dataset, model=MODEL, provider="openai")
        assert "OPENAI_API_KEY" in refused(response, "provider")
