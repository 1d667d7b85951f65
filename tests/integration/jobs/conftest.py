"""Jobs against real things: the sandbox as the upstream over HTTP, Burro's API over HTTP, and
an arq worker running the production functions in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from arq.worker import Worker, create_worker

from burro.testing import serve_in_thread
from sandbox.config import SandboxConfig
from sandbox.testing import running_sandbox
from service.app import create_app
from service.settings import ProviderSettings, Settings
from workers.main import worker_settings

JSONL = {"Content-Type": "application/jsonl"}
MODEL = "gpt-4.1-mini-2025-04-14"
WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci1vcGVuYWktd2ViaG9va3M="
# Fast knobs for tests: tiny upload threshold and parts, near-immediate retries.
WORKER_OPTIONS: dict[str, Any] = {
    "upload_threshold": 4096,
    "upload_part_bytes": 1024,
    "retry_base": 0.05,
    "retry_cap": 0.5,
    "max_tries": 4,
}


def chat_file(n: int = 12, salt: str = "") -> bytes:
    lines = []
    for i in range(n):
        example = {
            "messages": [
                {"role": "system", "content": "You are Donkey from Shrek."},
                {"role": "user", "content": f"Question {i}{salt}: how are you?"},
                {"role": "assistant", "content": f"Oh, I'm great, answer {i}{salt}!"},
            ]
        }
        lines.append(json.dumps(example))
    return ("\n".join(lines) + "\n").encode()


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(step_seconds=0.4)


@pytest.fixture
def sandbox_url(sandbox_config: SandboxConfig) -> Iterator[str]:
    with running_sandbox(sandbox_config) as url:
        yield url


@pytest.fixture
def sandbox(sandbox_url: str) -> Iterator[httpx.Client]:
    """A client for the sandbox's test controls (`/sandbox/faults`, `/sandbox/stats`)."""
    with httpx.Client(base_url=sandbox_url.removesuffix("/v1"), timeout=10) as http:
        yield http


@pytest.fixture
def job_settings(settings: Settings, sandbox_url: str) -> Settings:
    return msgspec.structs.replace(
        settings,
        providers=(ProviderSettings(name="sandbox", base_url=sandbox_url, api_key="sandbox"),),
        default_provider="sandbox",
        poll_interval=0.2,
        openai_webhook_secret=WEBHOOK_SECRET,
    )


@pytest.fixture
def api_url(job_settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(job_settings, configure_logs=False)) as url:
        yield url


@pytest.fixture
def api(api_url: str) -> Iterator[httpx.Client]:
    """Burro's API as tenant 'acme'."""
    with httpx.Client(
        base_url=api_url, headers={"Authorization": "Bearer key-acme"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def other_api(api_url: str) -> Iterator[httpx.Client]:
    """Burro's API as tenant 'globex'."""
    with httpx.Client(
        base_url=api_url, headers={"Authorization": "Bearer key-globex"}, timeout=30
    ) as http:
        yield http


class WorkerThread:
    """An arq worker with the production settings, in its own thread and event loop."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        self.worker: Worker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arq-worker", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> WorkerThread:
        self._thread.start()
        if not self._started.wait(15):
            raise RuntimeError("the worker did not start")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by stop()
            self.error = exc

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.worker = create_worker(
            worker_settings(self.settings, **self.options), handle_signals=False, poll_delay=0.05
        )
        # stop() cancels only the worker's own task, so that closing it below is never
        # interrupted by the same cancellation.
        self._task = asyncio.create_task(self.worker.main())
        self._started.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            # arq's close() re-raises the cancellation of a job that was still running: end
            # those jobs here first, so that closing always gets to release the pool.
            running = list(self.worker.tasks.values())
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            self.worker.tasks.clear()
            with warnings.catch_warnings():
                # arq 0.28 closes its pool with redis' deprecated close().
                warnings.simplefilter("ignore", DeprecationWarning)
                await self.worker.close()

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(20)
        if self.error is not None:
            raise self.error


StartWorker = Callable[..., WorkerThread]


@pytest.fixture
def start_worker(job_settings: Settings) -> Iterator[StartWorker]:
    """Start an arq worker (several may run); all are stopped when the test ends."""
    started: list[WorkerThread] = []

    def start(**options: Any) -> WorkerThread:
        thread = WorkerThread(job_settings, {**WORKER_OPTIONS, **options}).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def worker(start_worker: StartWorker) -> WorkerThread:
    return start_worker()


def upload_dataset(api: httpx.Client, body: bytes | None = None, **params: str) -> str:
    response = api.post("/v1/datasets", content=body or chat_file(), headers=JSONL, params=params)
    assert response.status_code in (200, 201), response.text
    dataset_id: str = response.json()["id"]
    return dataset_id


@pytest.fixture
def dataset(api: httpx.Client) -> str:
    return upload_dataset(api)


def wait_status(
    api: httpx.Client, job_id: str, *statuses: str, timeout: float = 30.0
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    result: dict[str, Any] = wait_for(check, timeout=timeout, what=f"{job_id} to be {statuses}")
    return result


def stats(sandbox: httpx.Client) -> dict[str, int]:
    requests: dict[str, int] = sandbox.get("/sandbox/stats").json()["requests"]
    return requests


def data_dir(settings: Settings) -> Path:
    return settings.data_dir
