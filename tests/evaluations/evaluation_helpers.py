"""Helpers for the evaluation tests: data a sandbox model is trained on, Redis calls from sync
tests, and an arq worker run in burst mode with the evaluation (and webhook) functions."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq.worker import create_worker
from redis.asyncio import Redis

from service.evaluations.runner import RetryPolicy
from service.inference.catalog import register_model
from service.jobs.records import JOBS, Job, JobStatus
from service.queue import Queue
from service.settings import Settings
from service.store import Collection, now
from service.tasks import Task
from workers.main import worker_settings

T = TypeVar("T")

BASE_MODEL = "gpt-4.1-mini-2025-04-14"
JSONL = {"Content-Type": "application/jsonl"}


def training_examples(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "You are Burro, a donkey who knows hay."},
                {"role": "user", "content": f"Which barn keeps bale number {i}?"},
                {"role": "assistant", "content": f"Bale {i} sleeps in the red barn, row {i}."},
            ]
        }
        for i in range(n)
    ]


def jsonl(examples: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in examples)


def on_redis(redis_url: str, call: Callable[[Redis], Awaitable[T]]) -> T:
    """Run one async call against Redis from a synchronous test."""

    async def run() -> T:
        redis = Redis.from_url(redis_url)
        try:
            return await call(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def enqueue(redis_url: str, function: Task, *args: Any) -> None:
    """Queue `function(*args)` as the API does."""

    async def run() -> None:
        queue = await Queue.connect(redis_url)
        try:
            await queue.enqueue(function, *args)
        finally:
            await queue.close()

    asyncio.run(run())


def register(redis_url: str, tenant: str, job_id: str, model: str) -> None:
    """What the jobs code does when a job succeeds."""
    on_redis(
        redis_url,
        lambda r: register_model(
            r, tenant=tenant, job_id=job_id, model=model, provider="sandbox", base_model=BASE_MODEL
        ),
    )


def save_job(redis_url: str, job: Job) -> None:
    on_redis(redis_url, lambda r: Collection(r, JOBS, Job).save(job))


def job_record(job_id: str, tenant: str, status: JobStatus, **fields: Any) -> Job:
    stamp = now()
    return Job(
        id=job_id,
        tenant=tenant,
        status=status,
        provider="sandbox",
        model=BASE_MODEL,
        training_dataset="ds_test",
        created_at=stamp - 600,
        updated_at=stamp,
        **fields,
    )


def drain_queue(
    settings: Settings,
    *,
    concurrency: int = 4,
    budget_seconds: float | None = None,
    keep_results: bool = False,
) -> None:
    """Run every queued job with an arq worker in burst mode, as production's startup builds
    its context; returns when the queue is empty (deferred retries included)."""

    async def run() -> None:
        worker = create_worker(
            worker_settings(
                settings,
                evaluation_concurrency=concurrency,
                evaluation_retry=RetryPolicy(max_tries=4, base=0.02, cap=0.1),
                **({} if budget_seconds is None else {"evaluation_budget": budget_seconds}),
            ),
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
            keep_result=60 if keep_results else 0,
        )
        try:
            await worker.main()
        finally:
            with warnings.catch_warnings():
                # arq 0.28 closes its pool with redis' deprecated close().
                warnings.simplefilter("ignore", DeprecationWarning)
                await worker.close()

    asyncio.run(run())
