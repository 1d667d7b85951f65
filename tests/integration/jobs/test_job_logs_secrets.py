"""Logs at DEBUG never carry a secret: a whole job with a webhook and a chat through the openai
SDK, every log line of the API, the worker and the libraries captured and searched."""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import structlog

from service.logging import configure_logging
from service.settings import Settings
from tests.support.api import create_job, upload_dataset
from tests.support.clients import tenant_sdk
from tests.support.data import question
from tests.support.fixtures import MakeClient, MakeWorker
from tests.support.receivers import Receiver
from tests.support.waiting import wait_for

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
def settings(settings: Settings, debug_log: Path) -> Settings:
    """The jobs' settings with the secrets above (logging is set up before anything starts)."""
    provider = msgspec.structs.replace(settings.providers[0], api_key=PROVIDER_KEY)
    return msgspec.structs.replace(
        settings,
        api_keys=(("acme", BURRO_KEY),),
        providers=(provider,),
        openai_webhook_secret=OPENAI_WEBHOOK_SECRET,
        log_level="DEBUG",
        log_json=True,
    )


def test_no_secret_reaches_the_logs_of_a_whole_job_at_debug_level(
    burro_url: str,
    debug_log: Path,
    receiver: Receiver,
    worker: MakeWorker,
    make_client: MakeClient,
) -> None:
    worker(burst=False).start()
    client = make_client(key=BURRO_KEY)
    dataset = upload_dataset(client, name="donkey.jsonl")
    create_job(
        client,
        dataset,
        webhook={"url": receiver.url(), "secret": WEBHOOK_SECRET},
        promote_to="donkey",
    )
    wait_for(
        lambda: "job.succeeded" in [b["type"] for b in receiver.bodies()], what="job.succeeded"
    )
    # A failed attempt too: an unknown key is logged as a refusal, never as the key.
    assert make_client(key=f"{BURRO_KEY}-wrong").get("/v1/jobs").status_code == 401
    with tenant_sdk(burro_url, key=BURRO_KEY) as sdk:
        reply = sdk.chat.completions.create(
            model="donkey", messages=[{"role": "user", "content": question(3)}]
        )
    assert reply.choices[0].message.content

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
