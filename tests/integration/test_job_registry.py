"""An enqueued task of the registry (`service.tasks`) carries its name, its fixed job id and the
enqueuing request's id, as the worker reads them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog

from service import tasks
from service.queue import REQUEST_ID, Queue


def test_an_enqueued_task_carries_its_name_fixed_id_and_the_request_id(redis_url: str) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        queue = await Queue.connect(redis_url)
        try:
            with structlog.contextvars.bound_contextvars(**{REQUEST_ID: "req_1"}):
                assert await queue.enqueue(tasks.UPLOAD_JOB_FILES, "job_1")
                assert not await queue.enqueue(tasks.UPLOAD_JOB_FILES, "job_1")  # collapsed
                await queue.enqueue(tasks.POLL_PROVIDER, "sandbox")
            upload = await queue.redis.get("arq:job:upload:job_1")
            poll = await queue.redis.get("arq:job:poll:sandbox")
            return msgspec.msgpack.decode(upload), msgspec.msgpack.decode(poll)
        finally:
            await queue.close()

    upload, poll = asyncio.run(scenario())
    assert upload["f"] == "upload_job_files" and upload["a"] == ["job_1"]
    assert upload["k"] == {REQUEST_ID: "req_1"}
    # A provider's poll loop serves every request's jobs: it carries none.
    assert poll["f"] == "poll_provider" and poll["k"] == {}
