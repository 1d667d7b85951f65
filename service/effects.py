"""Effects: what must follow a change (its webhooks, an alias move, a promotion's evaluation),
kept as an outbox entry written in the change's own Redis transaction and carried out by the
worker's relay (`workers.relay`). A crash can delay an effect, never lose it.

An entry holds the effects of one change in the order they must happen (the alias moves before
anyone hears of the job's success). The relay runs them one after the other, each safe to
repeat, and removes the entry only after the last. A relay claims an entry for a lease before it
starts on it, so two relays never work on one entry at once; one that dies leaves its entry to
the next relay once the lease has run out.

After its commit, a change queues a relay for the short time slot it falls in (`trigger`): the
changes of one slot share one queued job, which drains every waiting entry, so a thousand jobs
that end together cost a few queued jobs, not a thousand. A worker starting up, and the sweep
every ten seconds, queue a relay for whatever is still waiting.

A new kind of effect is a Struct here, added to `Effect`, and its case in `workers.relay.carry_out`
(mypy fails until it has one).
"""

from __future__ import annotations

import math
import secrets
import time
import weakref

import msgspec
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service import tasks
from service.ids import new_id
from service.queue import REQUEST_ID, Queue
from service.store import PREFIX

OUTBOX_KEY = f"{PREFIX}:outbox"
"""Sorted set of the entries not yet carried out, by the time they were written."""
# An entry this old is relayed again by the sweep: its relay was lost, or died, or timed out.
SWEEP_AFTER = 10.0
# The changes of one slot share one relay, queued to start when the slot has ended (and this
# margin more, for clocks of different hosts): by then every change of the slot is committed.
SLOT_SECONDS = 0.05
SLOT_MARGIN = 0.02


class PublishWebhook(msgspec.Struct, frozen=True, kw_only=True, tag="webhook"):
    """Announce `event_type` about `subject` (a job or an evaluation, as `data` shows it on the
    wire) to the job's own webhook, when it has one, and to the tenant's endpoints that
    subscribe (unless the tenant had none: `to_endpoints` false); each message's first attempt
    is sent at once."""

    tenant: str
    subject: str
    event_type: str
    data: bytes
    webhook_url: str | None = None
    webhook_secret: str | None = None
    to_endpoints: bool = True

    @property
    def label(self) -> str:
        return f"webhook:{self.event_type}"


class PublishOpenAIEvent(msgspec.Struct, frozen=True, kw_only=True, tag="openai_event"):
    """Announce `event_type` (`fine_tuning.job.succeeded`) about job `subject` with `body`,
    OpenAI's event as it is sent (`service.webhooks.openai_form`), to the tenant's endpoints
    that subscribe to that exact name; each message's first attempt is sent at once."""

    tenant: str
    subject: str
    event_type: str
    body: bytes

    @property
    def label(self) -> str:
        return f"webhook:{self.event_type}"


class MoveAlias(msgspec.Struct, frozen=True, kw_only=True, tag="move_alias"):
    """Point the tenant's `alias` at the model of `job_id`, a job that succeeded."""

    tenant: str
    alias: str
    job_id: str
    reason: str

    @property
    def label(self) -> str:
        return "move_alias"


class StartPromotion(msgspec.Struct, frozen=True, kw_only=True, tag="start_promotion"):
    """Start the evaluation that gates the promotion of `job_id`, a job that succeeded."""

    job_id: str

    @property
    def label(self) -> str:
        return "start_promotion"


class DecidePromotion(msgspec.Struct, frozen=True, kw_only=True, tag="decide_promotion"):
    """Move a gated job's alias, or say why not, now that `evaluation_id` has ended."""

    evaluation_id: str

    @property
    def label(self) -> str:
        return "decide_promotion"


Effect = PublishWebhook | PublishOpenAIEvent | MoveAlias | StartPromotion | DecidePromotion


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """The effects of one change, in the order they happen."""

    id: str
    subject: str
    """The id of what changed (a job, an evaluation)."""
    change: str
    """What happened to it, as an event name (`job.succeeded`), for logs."""
    effects: tuple[Effect, ...]
    created_at: float
    request_id: str | None = None
    """The request that caused the change: the relay logs under it."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


def entry_key(entry_id: str) -> str:
    return f"{PREFIX}:outbox:{entry_id}"


def claim_key(entry_id: str) -> str:
    """Held by the relay working on the entry, for a lease."""
    return f"{PREFIX}:outbox:claim:{entry_id}"


def new_entry(subject: str, change: str, effects: list[Effect]) -> Entry:
    """An entry for `effects`, carrying the request id bound to this context."""
    return Entry(
        id=new_id("fx_"),
        subject=subject,
        change=change,
        effects=tuple(effects),
        created_at=time.time(),
        request_id=structlog.contextvars.get_contextvars().get(REQUEST_ID),
    )


def stage(pipe: Pipeline, entry: Entry) -> None:
    """Add the writing of `entry` to `pipe`, the transaction of the change it follows."""
    pipe.set(entry_key(entry.id), _encoder.encode(entry))
    pipe.zadd(OUTBOX_KEY, {entry.id: entry.created_at})


async def trigger(queue: Queue) -> None:
    """Queue the relay of the slot this moment falls in, to run once the slot has ended: call
    it after committing an entry (were this lost, the sweep would find the entry). Once queued
    by this process, a slot is not queued again: its relay starts after the slot, so it finds
    every entry committed in it."""
    moment = time.time()
    slot = math.ceil(moment / SLOT_SECONDS)
    if _queued_slot.get(queue) == slot:
        return
    start = slot * SLOT_SECONDS + SLOT_MARGIN
    await queue.enqueue(tasks.RELAY_EFFECTS, slot, defer_by=max(0.0, start - moment))
    _queued_slot[queue] = slot


# The last slot each queue (one per process) has queued a relay for.
_queued_slot: weakref.WeakKeyDictionary[Queue, int] = weakref.WeakKeyDictionary()


async def waiting(
    redis: Redis, *, written_before: float | None = None, limit: int | None = None
) -> list[str]:
    """The ids of the entries not carried out yet, oldest first (those written before a time,
    the first `limit` of them)."""
    latest = "+inf" if written_before is None else written_before
    if limit is None:
        raw = await redis.zrangebyscore(OUTBOX_KEY, "-inf", latest)
    else:
        raw = await redis.zrangebyscore(OUTBOX_KEY, "-inf", latest, start=0, num=limit)
    return [i.decode() if isinstance(i, bytes) else str(i) for i in raw]


async def claim(redis: Redis, entry_ids: list[str], lease: float) -> dict[str, str]:
    """Claim the entries nobody else works on, for `lease` seconds: {entry id: claim token}."""
    if not entry_ids:
        return {}
    tokens = {entry_id: secrets.token_hex(8) for entry_id in entry_ids}
    async with redis.pipeline(transaction=False) as pipe:
        for entry_id, token in tokens.items():
            pipe.set(claim_key(entry_id), token, nx=True, px=max(1, int(lease * 1000)))
        taken = await pipe.execute()
    return {e: t for (e, t), ok in zip(tokens.items(), taken, strict=True) if ok}


async def load_many(redis: Redis, entry_ids: list[str]) -> list[Entry | None]:
    if not entry_ids:
        return []
    raws = await redis.mget([entry_key(i) for i in entry_ids])
    return [None if raw is None else _decoder.decode(raw) for raw in raws]


async def load(redis: Redis, entry_id: str) -> Entry | None:
    raw = await redis.get(entry_key(entry_id))
    return None if raw is None else _decoder.decode(raw)


async def remove(redis: Redis, entry_id: str) -> None:
    """The entry's effects are all done: it leaves the outbox, and its claim goes."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(entry_key(entry_id), claim_key(entry_id))
        pipe.zrem(OUTBOX_KEY, entry_id)
        await pipe.execute()


async def release(redis: Redis, entry_id: str) -> None:
    """Give up a claim without finishing (the next relay takes the entry up again)."""
    await redis.delete(claim_key(entry_id))
