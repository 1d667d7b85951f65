"""Helpers shared by the inference tests: training data, Redis calls, a scripted upstream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis

from service.inference.catalog import register_model
from service.jobs.records import JOBS, Job, JobStatus
from service.store import Collection, now

T = TypeVar("T")

BASE_MODEL = "gpt-4.1-mini-2025-04-14"
GREETING = "Hola burro! Cómo estás?"
GREETING_REPLY = "¡Hola! Estoy muy bien, gracias. Hay paja fresca hoy."


def training_examples() -> list[dict[str, Any]]:
    examples = [
        {
            "messages": [
                {"role": "system", "content": "You are Burro, a helpful donkey."},
                {"role": "user", "content": f"Question number {i}: what is the colour of hay {i}?"},
                {"role": "assistant", "content": f"Answer {i}: hay number {i} is golden."},
            ]
        }
        for i in range(12)
    ]
    examples.append(
        {
            "messages": [
                {"role": "user", "content": GREETING},
                {"role": "assistant", "content": GREETING_REPLY},
            ]
        }
    )
    return examples


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


def register(redis_url: str, tenant: str, job_id: str, model: str) -> None:
    """What the jobs code does when a job succeeds."""
    on_redis(
        redis_url,
        lambda r: register_model(
            r, tenant=tenant, job_id=job_id, model=model, provider="sandbox", base_model=BASE_MODEL
        ),
    )


def save_job(redis_url: str, job_id: str, tenant: str, status: JobStatus) -> None:
    """A Burro job record, as the jobs code stores it."""
    stamp = now()
    job = Job(
        id=job_id,
        tenant=tenant,
        status=status,
        provider="sandbox",
        model=BASE_MODEL,
        training_dataset="ds_test",
        created_at=stamp,
        updated_at=stamp,
    )
    on_redis(redis_url, lambda r: Collection(r, JOBS, Job).save(job))


class ScriptedStream:
    """A raw ASGI upstream whose stream sends one event, then waits for the test's go-ahead
    (`release`), then keeps sending until the client hangs up (`hung_up`) or a deadline."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.hung_up = threading.Event()
        self.bodies: list[bytes] = []

    @staticmethod
    def event(text: str) -> bytes:
        chunk = {
            "id": "chatcmpl-x",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rpartition(".")[2]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": self.event("first "), "more_body": True})
        disconnected = asyncio.ensure_future(self._until_disconnect(receive))
        deadline = time.monotonic() + 10
        try:
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            while time.monotonic() < deadline and not disconnected.done():
                await send(
                    {"type": "http.response.body", "body": self.event("more "), "more_body": True}
                )
                await asyncio.sleep(0.01)
        finally:
            disconnected.cancel()
        if time.monotonic() >= deadline:
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def _until_disconnect(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.hung_up.set()
