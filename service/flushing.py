"""Writes kept off the request path: noted in memory, stored in Redis in the background.

The usage meter and the capture recorder both note what a chat request did without waiting
for Redis, and store it in batches. `BackgroundFlush` is the part they share: the first note
starts one loop that flushes every `interval` seconds, and `close()` stops it and flushes
what is left.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

__all__ = ["BackgroundFlush"]


class BackgroundFlush:
    """A periodic flush to Redis; subclasses say what `flush()` writes."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._redis: Redis | None = None
        self._task: asyncio.Task[None] | None = None

    def _start(self, redis: Redis) -> None:
        """Start the loop on the first note (inside the running event loop)."""
        if self._task is None:
            self._redis = redis
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        """Write what was noted since the last flush."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop the loop and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
