"""The arq worker: its settings, its start-up and shutdown, and every background function."""

from __future__ import annotations

from typing import Any, ClassVar

from arq.worker import run_worker

from service.logging import configure_logging
from service.queue import QUEUE_NAME, deserialize_job, redis_settings, serialize_job
from service.settings import Settings


async def startup(ctx: dict[str, Any]) -> None:
    """Long-lived clients, made once per worker process."""


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what startup made."""


def worker_settings(settings: Settings) -> type:
    """arq's WorkerSettings class for `settings`."""
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set")

    class WorkerSettings:
        functions: ClassVar[list[Any]] = []
        queue_name = QUEUE_NAME
        redis_settings_ = redis_settings(settings.redis_url)  # type: ignore[arg-type]
        on_startup = startup
        on_shutdown = shutdown
        job_serializer = serialize_job
        job_deserializer = deserialize_job

    WorkerSettings.redis_settings = WorkerSettings.redis_settings_  # type: ignore[attr-defined]
    return WorkerSettings


def run(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_json)
    run_worker(worker_settings(settings))
    return 0
