"""One request followed from the API into the worker: every line a background job logs names the
queued job, its function, its try and the request that caused it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx

from service.settings import Settings
from tests.support import ROOT
from tests.support.data import BASE_MODEL
from tests.support.processes import worker_env

# A worker in burst mode: it runs what is queued, then exits.
BURST_WORKER = (
    "from arq.worker import create_worker; from service.logging import configure_logging; "
    "from service.settings import Settings; from workers.main import worker_settings; "
    "s = Settings.from_env(); configure_logging(s.log_level, s.log_json); "
    "create_worker(worker_settings(s), burst=True, poll_delay=0.05).run()"
)


def run_burst_worker(settings: Settings) -> list[dict[str, Any]]:
    """Run a burst worker process for `settings`, logging at INFO; its JSON log lines."""
    # The job's webhook goes nowhere: one quick retry, then the message is failed.
    env = worker_env(settings, BURRO_LOG_LEVEL="INFO", BURRO_WEBHOOK_RETRY_SCHEDULE="0.1")
    done = subprocess.run(
        [sys.executable, "-c", BURST_WORKER],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]


def test_a_worker_logs_each_job_with_its_id_function_try_and_the_request_id(
    client: httpx.Client, dataset: str, settings: Settings, closed_port: int
) -> None:
    created = client.post(
        "/v1/jobs",
        json={
            "training_dataset": dataset,
            "model": BASE_MODEL,
            # Nobody listens there: every attempt is refused at once.
            "webhook": {"url": f"http://127.0.0.1:{closed_port}/hook"},
        },
        headers={"X-Request-ID": "req_follow_create"},
    ).json()
    cancelled = client.post(
        f"/v1/jobs/{created['id']}/cancel", headers={"X-Request-ID": "req_follow_cancel"}
    ).json()
    assert cancelled["status"] == "cancelled"

    lines = run_burst_worker(settings)

    relayed = {line["change"]: line for line in lines if line["event"] == "effects.relayed"}
    for change, request_id in (
        ("job.pending", "req_follow_create"),
        ("job.cancelled", "req_follow_cancel"),
    ):
        line = relayed[change]
        assert line["subject"] == created["id"]
        assert line["request_id"] == request_id
        assert line["function"] == "relay_effects"
        assert line["job_id"].startswith("effects:")  # the relay of a slot of changes
        assert line["job_try"] == 1
    # Each webhook's second attempt, a job of its own queued by the first: the same request.
    kinds = {
        line["message"]: line["event_type"]
        for line in lines
        if line["event"] == "webhook.published"
    }
    retries = {
        kinds[line["message"]]: line
        for line in lines
        if line["event"] == "webhook.attempted" and line["number"] == 2
    }
    assert retries["job.pending"]["request_id"] == "req_follow_create"
    assert retries["job.cancelled"]["request_id"] == "req_follow_cancel"
    assert retries["job.cancelled"]["function"] == "deliver_webhook"
