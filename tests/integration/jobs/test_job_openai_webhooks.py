"""`POST /v1/upstream/openai/webhooks`: OpenAI's signed news refreshes a job at once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import msgspec
import pytest

from service.settings import Settings
from tests.support.api import create_job, job_status
from tests.support.fixtures import MakeClient, MakeWorker, ServeBurro
from tests.support.sandboxes import ClockedSandbox

PATH = "/v1/upstream/openai/webhooks"
WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci1vcGVuYWktd2ViaG9va3M="


@pytest.fixture
def sandbox_url(clocked_sandbox: ClockedSandbox) -> str:
    return clocked_sandbox.url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Polls far apart: only the webhook can bring the news in time.
    return msgspec.structs.replace(
        settings, poll_interval=60.0, openai_webhook_secret=WEBHOOK_SECRET
    )


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


def test_a_signed_webhook_refreshes_the_job_at_once_and_duplicates_are_dropped(
    client: httpx.Client,
    anonymous: httpx.Client,
    dataset: str,
    clocked_sandbox: ClockedSandbox,
    worker: MakeWorker,
) -> None:
    worker(burst=False).start()
    job_id = create_job(client, dataset)["id"]
    upstream_id = job_status(client, job_id, "validating_files")["upstream"]["job_id"]
    clocked_sandbox.advance(3)  # the upstream job succeeds, and Burro does not poll to see it
    body = event(upstream_id)
    answer = anonymous.post(PATH, content=body, headers=signed(body, "wh_1"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "refreshing", "job": job_id}
    assert job_status(client, job_id, "succeeded", timeout=10)["fine_tuned_model"]
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


def test_without_a_configured_secret_the_endpoint_is_404(
    settings: Settings, serve_burro: ServeBurro, make_client: MakeClient
) -> None:
    bare = msgspec.structs.replace(settings, openai_webhook_secret=None)
    http = make_client(None, base_url=serve_burro(bare))
    body = event("ftjob-x")
    assert http.post(PATH, content=body, headers=signed(body, "wh_5")).status_code == 404
