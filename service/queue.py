"""Background work is enqueued here, by name: the API's only contact with arq."""

from __future__ import annotations

from typing import Any

import msgspec
from arq.connections import ArqRedis, RedisSettings, create_pool

QUEUE_NAME = "burro:queue"
HEALTH_CHECK_KEY = QUEUE_NAME + ":health-check"

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
        function: str,
        *args: Any,
        job_id: str | None = None,
        defer_by: float | None = None,
    ) -> bool:
        """Enqueue `function(*args)`; False when a job with `job_id` is already queued."""
        job = await self.pool.enqueue_job(
            function, *args, _job_id=job_id, _defer_by=defer_by, _queue_name=QUEUE_NAME
        )
        return job is not None

    async def worker_alive(self) -> bool:
        return bool(await self.pool.exists(HEALTH_CHECK_KEY))

    async def close(self) -> None:
        await self.pool.aclose()
