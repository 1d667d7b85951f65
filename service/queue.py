"""Background work is enqueued here, as tasks of the registry (`service.tasks`): the only
contact with arq outside the workers."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from arq.connections import ArqRedis, RedisSettings, create_pool

from service.tasks import CONTROL_QUEUE, Task

QUEUE_NAME = CONTROL_QUEUE
HEALTH_CHECK_KEY = QUEUE_NAME + ":health-check"

# The keyword that carries the enqueuing request's id into the job (see Task.carries_request).
REQUEST_ID = "request_id"

# Queued jobs outlive a deploy and carry only ids: msgpack, never pickle.
serialize_job = msgspec.msgpack.encode
deserialize_job = msgspec.msgpack.decode


def redis_settings(redis_url: str) -> RedisSettings:
    """arq's connection settings for a Redis URL, with bounded retries on connect."""
    settings = RedisSettings.from_dsn(redis_url)
    settings.conn_timeout = 5
    settings.conn_retries = 5
    settings.conn_retry_delay = 1
    return settings


class Queue:
    """Enqueues background functions by name on one shared connection."""

    def __init__(self, pool: ArqRedis) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, redis_url: str) -> Queue:
        return cls(
            await create_pool(
                redis_settings(redis_url),
                default_queue_name=QUEUE_NAME,
                job_serializer=serialize_job,
                job_deserializer=deserialize_job,
            )
        )

    @property
    def redis(self) -> ArqRedis:
        """The same connection, for the store: one pool per process."""
        return self.pool

    async def enqueue(
        self,
        task: Task,
        *args: Any,
        job_id: str | None = None,
        defer_by: float | None = None,
    ) -> bool:
        """Enqueue `task(*args)` under its fixed job id (or `job_id`); False when a job with
        that id is already queued. The request id bound to this context goes along."""
        kwargs: dict[str, Any] = {}
        if task.carries_request:
            request_id = structlog.contextvars.get_contextvars().get(REQUEST_ID)
            if request_id is not None:
                kwargs[REQUEST_ID] = request_id
        job = await self.pool.enqueue_job(
            task.name,
            *args,
            _job_id=job_id or task.job_id(*args),
            _defer_by=defer_by,
            _queue_name=task.queue,
            **kwargs,
        )
        return job is not None

    async def worker_alive(self) -> bool:
        return bool(await self.pool.exists(HEALTH_CHECK_KEY))

    async def close(self) -> None:
        await self.pool.aclose()
