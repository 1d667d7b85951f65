"""`burro worker` as child processes, for the tests that kill workers (or their Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import IO

from service.settings import Settings
from tests.support import ROOT
from tests.support.data import QUIET_DAY

# Variables a child worker must never inherit from the machine: its settings are the test's.
_FOREIGN_PREFIXES = ("BURRO_", "OPENAI_", "AZURE_OPENAI_", "REDIS_URL")


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes `Settings.from_env()` in a child read `settings` back (the
    fields the worker uses), plus `extra` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
    env.update(
        REDIS_URL=str(settings.redis_url),
        BURRO_DATA_DIR=str(settings.data_dir),
        BURRO_PROVIDER=settings.default_provider,
        BURRO_POLL_INTERVAL=str(settings.poll_interval),
        BURRO_STUCK_AFTER=str(settings.stuck_after),
        BURRO_WEBHOOK_TIMEOUT=str(settings.webhook_timeout),
        BURRO_WEBHOOK_RETRY_SCHEDULE=",".join(map(str, settings.webhook_retry_schedule)),
        BURRO_WEBHOOK_ALLOW_PRIVATE=str(settings.webhook_allow_private).lower(),
        BURRO_LOG_LEVEL=settings.log_level,
        BURRO_LOG_JSON="true",
    )
    sandbox = settings.provider("sandbox")
    if sandbox is not None and sandbox.base_url:
        env["BURRO_SANDBOX_URL"] = sandbox.base_url
    if settings.openai_webhook_secret:
        env["OPENAI_WEBHOOK_SECRET"] = settings.openai_webhook_secret
    env.update(extra)
    return env


class WorkerProcesses:
    """Starts workers as children; whatever still runs at `stop_all()` gets SIGTERM, then
    SIGKILL if it does not exit."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        settings: Settings,
        *,
        function_timeout: float | None = None,
        stderr: IO[bytes] | None = None,
        **env: str,
    ) -> subprocess.Popen[bytes]:
        """`burro worker` with `settings`. `function_timeout` (seconds) shortens every
        function's timeout, so arq runs a killed worker's job again that much sooner (it waits
        for the timeout + 10 s); retries are then near-immediate too, and the worker's day is
        the quiet one of in-process test workers. Logs go to `stderr`
        (nowhere by default; BURRO_TEST_WORKER_LOGS=1 shows them)."""
        if function_timeout is None:
            command = [sys.executable, "-m", "burro", "worker"]
        else:
            # On the test workers' quiet day (support.data.QUIET_DAY): no shutdown notice
            # joins the webhooks a crash test counts, whatever the calendar says.
            code = (
                "import datetime; from service.settings import Settings; "
                "from workers.main import run; "
                f"run(Settings.from_env(), function_timeout={function_timeout!r}, "
                "retry_base=0.05, retry_cap=0.5, "
                f"today=lambda: datetime.date.fromisoformat({QUIET_DAY.isoformat()!r}))"
            )
            command = [sys.executable, "-c", code]
        shown = os.environ.get("BURRO_TEST_WORKER_LOGS")
        child = subprocess.Popen(
            command,
            env=worker_env(settings, **env),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr if stderr is not None else (None if shown else subprocess.DEVNULL),
        )
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(10)
