"""Burro's own trainers as child processes: `burro model-server` and `burro trainer --no-serve`,
for the tests of local jobs (which kill trainers, so they are real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from burro.redis_server import free_port
from burro.testing import stop_process, wait_until_up
from service.settings import ProviderSettings, Settings
from tests.support import ROOT
from tests.support.processes import worker_env

# A trainer that stops renewing its lease for this long is taken for dead (production: 30 s).
TEST_LEASE_SECONDS = 3.0
# Loading torch and the base model on a busy CPU.
START_TIMEOUT = 180.0


def local_settings(settings: Settings, model_cache: Path) -> Settings:
    """`settings` with the local provider on a free port (its model server is not running
    yet: `LocalTrainers.serve_models` starts it there)."""
    local = ProviderSettings(
        name="local",
        kind="local",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        supports_list_polling=False,
        supports_pause=False,
    )
    return msgspec.structs.replace(
        settings,
        providers=(*settings.providers, local),
        base_models_dir=model_cache,
        trainer_lease_seconds=TEST_LEASE_SECONDS,
    )


class LocalTrainers:
    """The children of one test; `stop_all()` ends whatever still runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: list[subprocess.Popen[bytes]] = []

    def _env(self, **extra: str) -> dict[str, str]:
        local = self.settings.provider("local")
        assert local is not None and local.base_url is not None
        env = worker_env(
            self.settings,
            BURRO_LOCAL_URL=local.base_url,
            BURRO_TRAINER_LEASE_SECONDS=str(self.settings.trainer_lease_seconds),
            **extra,
        )
        if self.settings.base_models_dir is not None:
            env["BURRO_BASE_MODELS_DIR"] = str(self.settings.base_models_dir)
        if self.settings.models_file is not None:
            env["BURRO_MODELS_FILE"] = str(self.settings.models_file)
        return env

    def _spawn(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        shown = os.environ.get("BURRO_TEST_WORKER_LOGS")
        child = subprocess.Popen(
            [sys.executable, "-m", "burro", *args],
            env=self._env(**env),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=None if shown else subprocess.DEVNULL,
        )
        self.children.append(child)
        return child

    def serve_models(self) -> str:
        """Start the model server where the local provider points; its base URL (`…/v1`)."""
        local = self.settings.provider("local")
        assert local is not None and local.base_url is not None
        port = local.base_url.rsplit(":", 1)[1].split("/", 1)[0]
        server = self._spawn("model-server", "--port", port)
        wait_until_up(local.base_url.removesuffix("/v1") + "/health", server, timeout=START_TIMEOUT)
        return local.base_url

    def start_trainer(self, **env: str) -> subprocess.Popen[bytes]:
        """One more trainer (training only), on the shared Redis and data directory, with
        `env` on top of the test's settings."""
        return self._spawn("trainer", "--no-serve", **env)

    @staticmethod
    def kill(child: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no clean-up, no lease released, as when a machine dies."""
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)

    def stop_all(self) -> None:
        for child in self.children:
            if child.poll() is None:
                stop_process(child)
