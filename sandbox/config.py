"""The sandbox's one settings object, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

_TRUE = {"1", "true", "yes", "on"}


class SandboxConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How the sandbox behaves.

    `step_seconds` is the length of each fine-tuning phase (validating_files, queued, running),
    so a job succeeds about `3 * step_seconds` after it was created.
    """

    step_seconds: float = 2.0
    # When set, every /v1 request needs `Authorization: Bearer <api_key>`.
    api_key: str | None = None
    # False: every job create is refused (403 `training_not_available`), as OpenAI now answers
    # organisations that it no longer lets train.
    training_available: bool = True
    # When set, `fine_tuning.job.succeeded|failed|cancelled` events are POSTed there,
    # signed like OpenAI's (Standard Webhooks) with `webhook_secret`.
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_timeout: float = 5.0
    organization_id: str = "org-sandbox"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """Read `BURRO_SANDBOX_*` variables (`STEP_SECONDS`, `API_KEY`, `TRAINING_AVAILABLE`,
        `WEBHOOK_URL`, `WEBHOOK_SECRET`); anything unset keeps its default."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(f"BURRO_SANDBOX_{name}")
            return value or None

        default = cls()
        step = get("STEP_SECONDS")
        available = get("TRAINING_AVAILABLE")
        return cls(
            step_seconds=float(step) if step is not None else default.step_seconds,
            api_key=get("API_KEY"),
            training_available=(
                available.strip().lower() in _TRUE
                if available is not None
                else default.training_available
            ),
            webhook_url=get("WEBHOOK_URL"),
            webhook_secret=get("WEBHOOK_SECRET"),
        )
