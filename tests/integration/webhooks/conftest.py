"""Webhook delivery against real receivers on 127.0.0.1 (`start_receiver`), through real arq
jobs (`worker`), with the test's own connection to the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from service.queue import Queue
from service.settings import Settings


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[Queue]:
    """The test's own connection to the queue (and the store: one pool)."""
    queue = await Queue.connect(redis_url)
    yield queue
    await queue.close()


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """The test's settings with a tiny retry schedule and timeout."""
    return msgspec.structs.replace(settings, webhook_retry_schedule=(0.1, 0.1), webhook_timeout=1.0)
