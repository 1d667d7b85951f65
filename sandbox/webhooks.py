"""OpenAI-style webhooks for finished jobs (`fine_tuning.job.succeeded|failed|cancelled`),
signed as Standard Webhooks, sent best effort."""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import logging

import anyio
import httpx
import msgspec

from sandbox import training
from sandbox.state import SandboxState, new_id

log = logging.getLogger("sandbox.webhooks")
_ENCODE = msgspec.json.Encoder()
# Seconds to wait before each further attempt; the first is immediate.
RETRY_DELAYS = (0.5, 2.0)
TICK_SECONDS = 0.05


class EventData(msgspec.Struct, frozen=True):
    id: str


class WebhookEvent(msgspec.Struct, frozen=True):
    id: str
    object: str
    type: str
    created_at: int
    data: EventData


def sign(secret: str | None, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the base64 part of a
    `whsec_` secret (or the secret's bytes otherwise), as OpenAI and Standard Webhooks do."""
    if not secret:
        key = b""
    elif secret.startswith("whsec_"):
        key = base64.b64decode(secret[len("whsec_") :])
    else:
        key = secret.encode()
    payload = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def build(sandbox: SandboxState, job_id: str) -> tuple[bytes, dict[str, str]]:
    job = sandbox.jobs[job_id]
    now = sandbox.now_int()
    event = WebhookEvent(
        id=new_id("evt_"),
        object="event",
        type=f"fine_tuning.job.{job.status}",
        created_at=int(job.finished_at or now),
        data=EventData(id=job_id),
    )
    body = _ENCODE.encode(event)
    webhook_id = new_id("wh_", 32)
    headers = {
        "content-type": "application/json",
        "user-agent": "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(sandbox.config.webhook_secret, webhook_id, now, body),
    }
    return body, headers


async def deliver(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> None:
    for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
        if delay:
            await anyio.sleep(delay)
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("sandbox.webhook_failed attempt=%s error=%r", attempt + 1, exc)
            continue
        if response.is_success:
            return
        log.warning(
            "sandbox.webhook_failed attempt=%s status=%s", attempt + 1, response.status_code
        )


async def run_ticker(sandbox: SandboxState, client: httpx.AsyncClient) -> None:
    """Advance jobs whose phase ended and send the webhooks of those that finished.

    Only the jobs in the `due` heap are looked at, so idle jobs cost nothing.
    """
    url = sandbox.config.webhook_url
    assert url is not None
    async with anyio.create_task_group() as tasks:
        while True:
            now = sandbox.now()
            while sandbox.due and sandbox.due[0][0] <= now:
                _, job_id = heapq.heappop(sandbox.due)
                job = training.advance(sandbox, job_id)
                training.schedule(sandbox, job)
            while sandbox.outbox:
                body, headers = build(sandbox, sandbox.outbox.pop(0))
                tasks.start_soon(deliver, client, url, body, headers)
            await anyio.sleep(TICK_SECONDS)
