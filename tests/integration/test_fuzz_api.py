"""Fuzzing: schemathesis sends generated requests, valid and invalid, to every operation of the
committed OpenAPI document, over real HTTP, and checks every answer against that document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from burro.redis_server import RedisServer
from burro.testing import serve_in_thread
from service.app import create_app
from service.settings import Settings
from tests.support import ROOT
from tests.support.fixtures import with_sandbox

AUTH = {"Authorization": "Bearer key-fuzz"}
MODEL = "gpt-4.1-mini-2025-04-14"
# Examples per operation (Hypothesis phase): the whole document takes about 35 s on 2 cores.
MAX_EXAMPLES = 80
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_path(ROOT / "openapi" / "openapi.json")
# A dataset upload is raw bytes whatever its JSONL media type: send them as octet streams are.
schemathesis.serializer.alias(
    ["application/jsonl", "application/x-ndjson"], "application/octet-stream"
)


@dataclass(frozen=True)
class Burro:
    url: str
    # Path parameter -> the id of a record that exists, so valid cases also reach real ones.
    ids: dict[str, str]


@pytest.fixture(scope="module")
def burro(
    redis_server: RedisServer, sandbox_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Burro]:
    """Burro over HTTP on loopback, a real Redis behind it and the sandbox as its upstream,
    with one dataset, job and webhook endpoint already there."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    fuzz_settings = Settings(
        redis_url=redis_server.url,
        data_dir=tmp_path_factory.mktemp("fuzz") / "data",
        api_keys=(("fuzz", "key-fuzz"),),
        webhook_allow_private=True,
        # The fuzzer is one fast tenant: a rate limit would answer most of it with 429s.
        rate_limit=0,
        # Configured, so the route checks signatures rather than answering 404.
        openai_webhook_secret="whsec_" + "ZnV6ei1vcGVuYWktd2ViaG9vaw==",
        log_level="WARNING",
        log_json=True,
    )
    app = create_app(with_sandbox(fuzz_settings, sandbox_url), configure_logs=False)
    with serve_in_thread(app) as url:
        yield Burro(url, _seed_records(url))


def _seed_records(url: str) -> dict[str, str]:
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
        examples = [
            {
                "messages": [
                    {"role": "user", "content": f"Question {i}?"},
                    {"role": "assistant", "content": f"Answer {i}."},
                ]
            }
            for i in range(12)
        ]
        body = "".join(json.dumps(e) + "\n" for e in examples).encode()
        dataset = http.post(
            "/v1/datasets", content=body, headers={"Content-Type": "application/jsonl"}
        )
        assert dataset.status_code == 201, dataset.text
        dataset_id = dataset.json()["id"]
        job = http.post("/v1/jobs", json={"training_dataset": dataset_id, "model": MODEL})
        assert job.status_code == 202, job.text
        endpoint = http.post(
            "/v1/webhook-endpoints",
            json={"url": "http://127.0.0.1:9/hooks", "events": ["job.succeeded"]},
        )
        assert endpoint.status_code == 201, endpoint.text
    return {
        "dataset_id": dataset_id,
        "job_id": job.json()["id"],
        "endpoint_id": endpoint.json()["id"],
        # The same records seen through OpenAI's files and fine-tuning API.
        "file_id": dataset_id,
        "fine_tuning_job_id": job.json()["id"],
    }


@pytest.mark.slow
@pytest.mark.timeout(150)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=timedelta(seconds=5),
    derandomize=True,  # the same cases on every run, so CI is reproducible
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_conforms_to_the_document_and_none_is_a_5xx(
    case: schemathesis.Case[Any], burro: Burro
) -> None:
    checks = CONFORMANCE
    if case.operation.label == "GET /health/ready":
        # No worker runs here, so its documented answer is 503: not a failure.
        checks = [c for c in CONFORMANCE if c is not not_a_server_error]
    if _is_positive(case) and not _streams(case):
        for name in case.path_parameters or {}:
            if name in burro.ids:
                case.path_parameters[name] = burro.ids[name]
    case.call_and_validate(base_url=burro.url, headers=AUTH, checks=checks, timeout=10)


def _is_positive(case: schemathesis.Case[Any]) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _streams(case: schemathesis.Case[Any]) -> bool:
    # The job's event stream ends only when the job does, and no worker runs here: it would
    # hold the connection until the timeout. Its stream of events is not a document either.
    return case.operation.path.endswith("/events") and str(
        (case.query or {}).get("stream")
    ).lower() in ("true", "1")
