"""Logs at DEBUG never carry a secret: a whole job with a webhook and a chat through the openai
SDK, every log line of the API, the worker and the libraries captured and searched."""

from __future__ import annotations

import base64
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest
import structlog

from service.logging import configure_logging
from service.settings import Settings
from tests.jobs.conftest import MODEL, StartWorker, upload_dataset, wait_for

# Distinctive values that the redaction's value patterns (Bearer …, sk-…, bk_…) do not know:
# found in a log, they leaked through a field, not around a pattern.
BURRO_KEY = "acme-Zq9vPlumbus7781-burro-key"
PROVIDER_KEY = "upstream-Xy81Grumbo2290-provider-key"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"log-test-Wubba5531-webhook-secret").decode()
OPENAI_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"log-test-Quux6620-openai-hooks").decode()
SECRETS = {
    "Burro API key": BURRO_KEY,
    "provider API key": PROVIDER_KEY,
    "webhook secret": WEBHOOK_SECRET,
    "webhook secret (base64 part)": WEBHOOK_SECRET.removeprefix("whsec_"),
    "OpenAI webhook secret": OPENAI_WEBHOOK_SECRET,
    "Authorization header": f"Bearer {BURRO_KEY}",
}


def _forget_cached_loggers() -> None:
    """structlog's proxies keep the configuration of their first use (cache_logger_on_first_use):
    make Burro's module loggers pick up the next configure_logging()."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("service", "workers", "sandbox", "burro"):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, structlog._config.BoundLoggerLazyProxy):
                vars(value).pop("bind", None)


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Every log line of this process, at DEBUG and as JSON, written to a file."""
    path = tmp_path / "burro.log"
    with path.open("w", buffering=1) as stream:
        _forget_cached_loggers()
        configure_logging("DEBUG", json=True, stream=stream)
        try:
            yield path
        finally:
            _forget_cached_loggers()
            configure_logging("WARNING", json=True)


@pytest.fixture
def job_settings(job_settings: Settings, debug_log: Path) -> Settings:
    """The jobs' settings with the secrets above (logging is set up before anything starts)."""
    provider = msgspec.structs.replace(job_settings.providers[0], api_key=PROVIDER_KEY)
    return msgspec.structs.replace(
        job_settings,
        api_keys=(("acme", BURRO_KEY),),
        providers=(provider,),
        openai_webhook_secret=OPENAI_WEBHOOK_SECRET,
        log_level="DEBUG",
        log_json=True,
    )


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps the event types it was sent."""

    def __init__(self) -> None:
        self.types: list[str] = []
        types = self.types

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = msgspec.json.decode(self.rfile.read(int(self.headers["content-length"])))
                types.append(body["type"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_no_secret_reaches_the_logs_of_a_whole_job_at_debug_level(
    api_url: str, debug_log: Path, receiver: Receiver, start_worker: StartWorker
) -> None:
    start_worker()
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {BURRO_KEY}"}, timeout=30
    ) as api:
        dataset = upload_dataset(api, name="donkey.jsonl")
        created = api.post(
            "/v1/jobs",
            json={
                "training_dataset": dataset,
                "model": MODEL,
                "webhook": {"url": receiver.url, "secret": WEBHOOK_SECRET},
                "promote_to": "donkey",
            },
        )
        assert created.status_code == 202, created.text
        wait_for(lambda: "job.succeeded" in receiver.types, timeout=60, what="job.succeeded")
        # A failed attempt too: an unknown key is logged as a refusal, never as the key.
        refused = httpx.get(
            f"{api_url}/v1/jobs", headers={"Authorization": f"Bearer {BURRO_KEY}-wrong"}
        )
        assert refused.status_code == 401
    with openai.OpenAI(base_url=f"{api_url}/v1", api_key=BURRO_KEY, max_retries=0) as client:
        answer = client.chat.completions.create(
            model="donkey", messages=[{"role": "user", "content": "Question 3: how are you?"}]
        )
    assert answer.choices[0].message.content

    # Canaries through both paths (structlog, and a library's stdlib logger): the capture sees
    # them, the redaction hides what they carry.
    structlog.get_logger("burro.test").warning(
        "test.canary", authorization=f"Bearer {BURRO_KEY}", note=f"secret {WEBHOOK_SECRET}"
    )
    logging.getLogger("aiohttp.client").warning("canary Authorization: Bearer %s", BURRO_KEY)

    text = debug_log.read_text()
    assert '"event": "test.canary"' in text and "canary Authorization" in text
    # Not vacuous: the API, the worker and the libraries all wrote here, at DEBUG.
    for event in ("job.created", "http.request", "job.succeeded", "webhook.attempted"):
        assert f'"event": "{event}"' in text, f"no {event} in the captured logs"
    assert '"level": "debug"' in text
    assert "/v1/chat/completions" in text
    for what, secret in SECRETS.items():
        leaks = [line for line in text.splitlines() if secret in line]
        assert not leaks, f"the {what} leaked into the logs: {leaks[:3]}"
    wrong = f"{BURRO_KEY}-wrong"
    assert wrong not in text
