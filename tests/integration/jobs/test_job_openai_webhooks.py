"""`POST /v1/upstream/openai/webhooks`: OpenAI's signed news refreshes a job at once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from burro.testing import serve_in_thread
from service.app import create_app
from service.settings import Settings
from tests.jobs.conftest import MODEL, WEBHOOK_SECRET, StartWorker, wait_for, wait_status

PATH = "/v1/upstream/openai/webhooks"


@pytest.fixture
def job_settings(job_settings: Settings) -> Settings:
    # Polls far apart: only the webhook can bring the news in time.
    return msgspec.structs.replace(job_settings, poll_interval=60.0)


def signed(body: bytes, webhook_id: str, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        "content-type": "application/json",
    }


def event(upstream_id: str, kind: str = "succeeded") -> bytes:
    return json.dumps(
        {
            "id": "evt_" + upstream_id,
            "object": "event",
            "type": f"fine_tuning.job.{kind}",
            "created_at": int(time.time()),
            "data": {"id": upstream_id},
        }
    ).encode()


@pytest.fixture
def anonymous(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=10) as http:
        yield http


def test_a_signed_webhook_refreshes_the_job_at_once_and_duplicates_are_dropped(
    api: httpx.Client,
    anonymous: httpx.Client,
    dataset: str,
    sandbox: httpx.Client,
    start_worker: StartWorker,
) -> None:
    start_worker()
    job_id = api.post("/v1/jobs", json={"training_dataset": dataset, "model": MODEL}).json()["id"]
    job = wait_status(api, job_id, "validating_files", "queued", "running")
    upstream_id = job["upstream"]["job_id"]
    wait_for(
        lambda: sandbox.get(f"/v1/fine_tuning/jobs/{upstream_id}").json()["status"] == "succeeded",
        what="the sandbox job to finish",
    )
    body = event(upstream_id)
    answer = anonymous.post(PATH, content=body, headers=signed(body, "wh_1"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "refreshing", "job": job_id}
    assert wait_status(api, job_id, "succeeded", timeout=10)["fine_tuned_model"]
    again = anonymous.post(PATH, content=body, headers=signed(body, "wh_1"))
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"


def test_a_bad_or_missing_signature_is_a_400(anonymous: httpx.Client) -> None:
    body = event("ftjob-whatever")
    wrong = signed(body, "wh_2", secret="whsec_" + base64.b64encode(b"not-the-secret").decode())
    assert anonymous.post(PATH, content=body, headers=wrong).status_code == 400
    assert anonymous.post(PATH, content=body).status_code == 400
    tampered = signed(body, "wh_3")
    assert anonymous.post(PATH, content=body + b" ", headers=tampered).status_code == 400


def test_a_webhook_for_an_unknown_job_is_acknowledged(anonymous: httpx.Client) -> None:
    body = event("ftjob-unknown")
    answer = anonymous.post(PATH, content=body, headers=signed(body, "wh_4"))
    assert answer.status_code == 200
    assert answer.json()["status"] == "unknown_job"


def test_without_a_configured_secret_the_endpoint_is_404(job_settings: Settings) -> None:
    bare = msgspec.structs.replace(job_settings, openai_webhook_secret=None)
    with (
        serve_in_thread(create_app(bare, configure_logs=False)) as url,
        httpx.Client(base_url=url) as http,
    ):
        body = event("ftjob-x")
        assert http.post(PATH, content=body, headers=signed(body, "wh_5")).status_code == 404
