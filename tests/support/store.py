"""Burro's store from synchronous tests: one async call against Redis, and the writes other
parts of Burro make (a succeeded job's model, a job record, a queued function), and the
commands Redis received while something ran."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self, TypeVar

import redis
from redis.asyncio import Redis

from service.inference.catalog import register_model
from service.jobs.records import JOBS, Job
from service.queue import Queue
from service.store import Collection
from service.tasks import Task
from service.webhooks.outbox import publish
from tests.support.data import BASE_MODEL, job_event_data

T = TypeVar("T")


def on_redis(redis_url: str, call: Callable[[Redis], Awaitable[T]]) -> T:
    """Run one async call against Redis from a synchronous test."""

    async def run() -> T:
        redis = Redis.from_url(redis_url)
        try:
            return await call(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


class RedisSession:
    """One event loop and one connection for a synchronous test that calls into Redis many
    times (a condition polled by `wait_for`): each call costs a round trip, not a new loop and
    connection. Use it as a context manager."""

    def __init__(self, redis_url: str) -> None:
        self._runner = asyncio.Runner()
        self.redis = Redis.from_url(redis_url)

    def __call__(self, call: Callable[[Redis], Coroutine[Any, Any, T]]) -> T:
        return self._runner.run(call(self.redis))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._runner.run(self.redis.aclose())
        self._runner.close()


def on_queue(redis_url: str, call: Callable[[Queue], Awaitable[T]]) -> T:
    """Run one async call with Burro's queue (and the store on its connection)."""

    async def run() -> T:
        queue = await Queue.connect(redis_url)
        try:
            return await call(queue)
        finally:
            await queue.close()

    return asyncio.run(run())


def enqueue(redis_url: str, task: Task, *args: Any) -> None:
    """Queue `task(*args)` as the API does."""
    on_queue(redis_url, lambda queue: queue.enqueue(task, *args))


def register(redis_url: str, tenant: str, job_id: str, model: str) -> None:
    """What the jobs code does when a job succeeds: its model becomes servable to `tenant`."""
    on_redis(
        redis_url,
        lambda r: register_model(
            r, tenant=tenant, job_id=job_id, model=model, provider="sandbox", base_model=BASE_MODEL
        ),
    )


def publish_job_event(
    redis_url: str,
    event_type: str,
    job_id: str = "job_1",
    job_webhook: tuple[str, str] | None = None,
    *,
    tenant: str = "acme",
) -> list[str]:
    """Publish a job's event as the jobs code does (to `job_webhook`, a (url, secret), and to
    the tenant's subscribed endpoints); the ids of the messages made."""
    return on_queue(
        redis_url,
        lambda queue: publish(
            queue.redis,
            queue,
            tenant=tenant,
            event_type=event_type,
            job_id=job_id,
            data=job_event_data(job_id, event_type.removeprefix("job.")),
            job_webhook=job_webhook,
        ),
    )


def save_job(redis_url: str, job: Job) -> None:
    """Store a job record (see `data.job_record`) as the jobs code stores it."""
    on_redis(redis_url, lambda r: Collection(r, JOBS, Job).save(job))


STOP = "stop-monitoring"


def commands_during(redis_url: str, action: Any) -> list[str]:
    """The Redis commands that clients (not scripts) sent while `action()` ran."""
    seen: list[str] = []
    ready = threading.Event()
    client = redis.Redis.from_url(redis_url)

    def watch() -> None:
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            ready.set()
            while True:
                command = monitor.next_command()
                if STOP in command["command"]:
                    return
                if command["client_type"] != "lua":
                    seen.append(command["command"].split()[0].upper())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(10)
    try:
        action()
    finally:
        client.echo(STOP)
        watcher.join(10)
        client.close()
    return seen
