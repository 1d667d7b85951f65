"""Captures: the chat exchanges an alias with `capture` on records, kept capped and aged out.

Opt-in per alias (`service.inference.aliases`). The chat path hands each answered request to
`CaptureRecorder.record` after the answer has gone out; that only appends to a bounded queue in
memory. A background task parses and writes them about five times a second, into one Redis
stream per tenant and alias:

    burro:captures:{tenant}:{alias}   stream of {d: the exchange as JSON}

Each write caps the stream at the alias' `capture_max_examples` (the oldest go first), drops
what is older than `capture_max_age_days` (stream ids are times), and lets the whole key expire
that long after its last write. Reads skip anything older than the age cap as well, so an
exchange is never shown or used past it even between writes.

What is stored of an exchange: the request's `messages` as sent, the text of the answer
(streamed answers assembled from their deltas), the upstream model that answered, and when.
Nothing else of the request (no key, no headers, no other parameters).
"""

from __future__ import annotations

import time
from collections import deque
from typing import NamedTuple

import msgspec
import structlog
from redis.asyncio import Redis

from service.flushing import BackgroundFlush
from service.store import PREFIX

log = structlog.get_logger("burro.captures")

FLUSH_INTERVAL = 0.2
# Exchanges waiting in memory for their write, and their bytes; past either, new ones are
# dropped (and logged) rather than let a slow Redis grow the process.
MAX_PENDING = 2000
MAX_PENDING_BYTES = 64 * 1024 * 1024
# An exchange bigger than this as stored (the request's messages and the answer's text) is not
# recorded: images in base64, say. A fine-tuning example's text is far smaller.
MAX_EXCHANGE_BYTES = 1024 * 1024
DAY_MS = 86_400_000


def captures_key(tenant: str, alias: str) -> str:
    return f"{PREFIX}:captures:{tenant}:{alias}"


class CaptureLimits(NamedTuple):
    """An alias' caps: at most `max_examples` exchanges, none older than `max_age_days`."""

    max_examples: int
    max_age_days: int


class Exchange(msgspec.Struct, frozen=True, kw_only=True):
    """One captured request and its answer, as stored (JSON)."""

    messages: msgspec.Raw
    answer: str
    model: str


class Captured(msgspec.Struct, frozen=True, kw_only=True):
    """One exchange as read back: its stream id and the time it was recorded (Unix seconds)."""

    id: str
    created_at: int
    messages: msgspec.Raw
    answer: str
    model: str


# --- Reading the request and the answer --------------------------------------------------------


class _Request(msgspec.Struct):
    messages: msgspec.Raw = msgspec.Raw()  # empty: the request had none


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None


class _Answer(msgspec.Struct):
    choices: list[_Choice] = []


class _Delta(msgspec.Struct):
    content: str | None = None


class _StreamChoice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None


class _Chunk(msgspec.Struct):
    choices: list[_StreamChoice] = []


_REQUEST = msgspec.json.Decoder(_Request)
_ANSWER = msgspec.json.Decoder(_Answer)
_CHUNK = msgspec.json.Decoder(_Chunk)
_EXCHANGE = msgspec.json.Decoder(Exchange)
_ENCODE = msgspec.json.Encoder()


def answer_text(answer: bytes, *, stream: bool) -> str | None:
    """The text of the first choice of an answer: a JSON completion, or a stream's server-sent
    events with their deltas joined. None when there is no text (tool calls only, or garbage)."""
    try:
        if not stream:
            choices = _ANSWER.decode(answer).choices
            message = choices[0].message if choices else None
            return message.content if message is not None and message.content else None
        parts: list[str] = []
        for event in answer.split(b"\n\n"):
            if not event.startswith(b"data: {"):
                continue  # comments, `data: [DONE]`
            for choice in _CHUNK.decode(event[6:]).choices:
                if choice.index == 0 and choice.delta is not None and choice.delta.content:
                    parts.append(choice.delta.content)
    except msgspec.DecodeError:
        return None
    return "".join(parts) or None


def exchange(body: bytes, answer: bytes, model: str, *, stream: bool) -> Exchange | None:
    """What is stored of one request and its answer; None when either has nothing to keep."""
    try:
        messages = _REQUEST.decode(body).messages
    except msgspec.DecodeError:
        return None
    text = answer_text(answer, stream=stream)
    if not messages or text is None:
        return None
    return Exchange(messages=messages, answer=text, model=model)


# --- Writing ---------------------------------------------------------------------------------


class _Pending(NamedTuple):
    key: str
    limits: CaptureLimits
    body: bytes
    answer: bytes
    model: str
    stream: bool


class CaptureRecorder(BackgroundFlush):
    """Takes answered requests of capturing aliases off the chat path and stores them in the
    background (one per process, like the usage meter)."""

    def __init__(self, interval: float = FLUSH_INTERVAL, max_pending: int = MAX_PENDING) -> None:
        super().__init__(interval)
        self.max_pending = max_pending
        self._pending: deque[_Pending] = deque()
        self._pending_bytes = 0
        self.dropped = 0

    def record(
        self,
        redis: Redis,
        *,
        tenant: str,
        alias: str,
        limits: CaptureLimits,
        body: bytes,
        answer: bytes,
        model: str,
        stream: bool,
    ) -> None:
        """Queue one exchange for storage; never waits, never fails the request."""
        size = len(body) + len(answer)
        if len(body) > MAX_EXCHANGE_BYTES:
            log.info("capture.too_large", tenant=tenant, alias=alias, bytes=len(body))
            return
        if len(self._pending) >= self.max_pending or self._pending_bytes + size > MAX_PENDING_BYTES:
            self.dropped += 1
            log.warning("capture.dropped", tenant=tenant, alias=alias, pending=len(self._pending))
            return
        self._pending.append(
            _Pending(captures_key(tenant, alias), limits, body, answer, model, stream)
        )
        self._pending_bytes += size
        self._start(redis)

    async def flush(self) -> None:
        """Store what is waiting; on a Redis failure it is dropped (capture is best effort:
        the traffic it records has been answered already)."""
        if not self._pending or self._redis is None:
            return
        batch, self._pending, self._pending_bytes = self._pending, deque(), 0
        moment = int(time.time() * 1000)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for item in batch:
                    found = exchange(item.body, item.answer, item.model, stream=item.stream)
                    if found is None:
                        continue
                    encoded = _ENCODE.encode(found)
                    if len(encoded) > MAX_EXCHANGE_BYTES:
                        log.info("capture.too_large", bytes=len(encoded))
                        continue
                    age_ms = item.limits.max_age_days * DAY_MS
                    pipe.xadd(
                        item.key,
                        {"d": encoded},
                        maxlen=item.limits.max_examples,
                        approximate=False,
                    )
                    pipe.xtrim(item.key, minid=str(moment - age_ms), approximate=False)
                    pipe.pexpire(item.key, age_ms)
                await pipe.execute()
        except Exception:
            log.warning("capture.flush_failed", exchanges=len(batch), exc_info=True)


# --- Reading ---------------------------------------------------------------------------------


def _oldest_id(max_age_days: int) -> str:
    return str(int(time.time() * 1000) - max_age_days * DAY_MS)


def _captured(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Captured | None:
    stream_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = fields.get(b"d")
    if raw is None:
        return None
    stored = _EXCHANGE.decode(raw)
    return Captured(
        id=stream_id,
        created_at=int(stream_id.partition("-")[0]) // 1000,
        messages=stored.messages,
        answer=stored.answer,
        model=stored.model,
    )


async def page_captures(
    redis: Redis,
    tenant: str,
    alias: str,
    max_age_days: int,
    *,
    limit: int,
    after: str | None = None,
) -> tuple[list[Captured], bool]:
    """The alias' captures, newest first, younger than `max_age_days`; `after` is the id of the
    last one of the previous page. Returns (page, has_more)."""
    newest = "+" if after is None else f"({after}"
    rows = await redis.xrevrange(
        captures_key(tenant, alias), max=newest, min=_oldest_id(max_age_days), count=limit + 1
    )
    found = [c for c in (_captured(i, f) for i, f in rows) if c is not None]
    return found[:limit], len(found) > limit


async def all_captures(redis: Redis, tenant: str, alias: str, max_age_days: int) -> list[Captured]:
    """Every capture of the alias younger than `max_age_days`, oldest first (the stream is
    capped, so this is bounded by the alias' `capture_max_examples`)."""
    rows = await redis.xrange(captures_key(tenant, alias), min=_oldest_id(max_age_days))
    return [c for c in (_captured(i, f) for i, f in rows) if c is not None]


async def clear_captures(redis: Redis, tenant: str, alias: str) -> int:
    """Remove every capture of the alias; how many there were."""
    key = captures_key(tenant, alias)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xlen(key)
        pipe.delete(key)
        count, _ = await pipe.execute()
    return int(count)


def training_lines(captured: list[Captured]) -> bytes:
    """The captures as a chat dataset (JSONL): each request's messages, then its answer as the
    assistant's turn."""
    lines = []
    for one in captured:
        messages = msgspec.json.decode(one.messages)
        if not isinstance(messages, list):
            continue
        messages.append({"role": "assistant", "content": one.answer})
        lines.append(_ENCODE.encode({"messages": messages}))
    return b"\n".join(lines) + b"\n" if lines else b""
