"""A job's timeline: Burro's own events and the upstream's, merged oldest first; checkpoints and
metrics mirrored from the upstream.

Events live in a sorted set of ids (scored by time, then arrival) and a hash id -> event, so an
upstream event seen twice is stored once and `after=<id>` pages cheaply.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service.ids import new_id
from service.store import PREFIX, now

EventSource = Literal["burro", "upstream"]
EventLevel = Literal["info", "warn", "error"]
# Within one second, events keep their arrival order: score = seconds * 1000 + sequence.
_PER_SECOND = 1000


class JobEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a job's timeline (stored and served as is)."""

    id: str
    object: Literal["job.event"] = "job.event"
    created_at: int
    level: EventLevel = "info"
    type: str = "message"  # "status", "message", "metrics", "stuck", "retry", ...
    source: EventSource = "burro"
    message: str
    data: dict[str, Any] | None = None


class EventList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[JobEvent]
    has_more: bool


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["job.checkpoint"] = "job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    step_number: int
    metrics: dict[str, float] = {}


class CheckpointList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[Checkpoint]
    has_more: bool


class MetricsRow(msgspec.Struct, frozen=True, kw_only=True):
    """One training step of the curve; None where the upstream did not measure it."""

    step: int
    train_loss: float | None = None
    valid_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_mean_token_accuracy: float | None = None


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["job.metrics"] = "job.metrics"
    job: str
    source: Literal["result_file", "events", "none"]
    data: list[MetricsRow]


_event_encoder = msgspec.msgpack.Encoder()
_event_decoder = msgspec.msgpack.Decoder(JobEvent)
_checkpoints_decoder = msgspec.msgpack.Decoder(list[Checkpoint])
_metrics_decoder = msgspec.msgpack.Decoder(list[MetricsRow])


def _index_key(job_id: str) -> str:
    return f"{PREFIX}:jobs:events:{job_id}"


def _data_key(job_id: str) -> str:
    return f"{PREFIX}:jobs:events-data:{job_id}"


def sequence_key(job_id: str) -> str:
    """A counter that orders a job's events within one second (INCR it for `stage`)."""
    return f"{PREFIX}:jobs:events-seq:{job_id}"


def _checkpoints_key(job_id: str) -> str:
    return f"{PREFIX}:jobs:checkpoints:{job_id}"


def _metrics_key(job_id: str) -> str:
    return f"{PREFIX}:jobs:metrics:{job_id}"


def burro_event(
    message: str,
    *,
    type: str = "message",
    level: EventLevel = "info",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """A new event of Burro's own, stamped now."""
    return JobEvent(
        id=new_id("jobev_"), created_at=now(), level=level, type=type, message=message, data=data
    )


# KEYS: the job's event hash, its index, its sequence counter. ARGV[1]: events per second of
# the score; then (id, created_at, encoded event) for each event. Stores those not stored yet,
# each scored after the ones before it; returns their ids.
_ADD_EVENTS = """
local per = tonumber(ARGV[1])
local added = {}
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 2]) == 1 then
    local seq = redis.call('INCR', KEYS[3]) % per
    redis.call('ZADD', KEYS[2], tonumber(ARGV[i + 1]) * per + seq, ARGV[i])
    table.insert(added, ARGV[i])
  end
end
return added
"""


async def add_events(redis: Redis, job_id: str, events: list[JobEvent]) -> list[JobEvent]:
    """Store events (given oldest first), in one round trip; those already stored are skipped.
    Returns the new ones."""
    if not events:
        return []
    args: list[Any] = [_PER_SECOND]
    for event in events:
        args += [event.id, event.created_at, _event_encoder.encode(event)]
    keys = (_data_key(job_id), _index_key(job_id), sequence_key(job_id))
    raw = await redis.eval(_ADD_EVENTS, 3, *keys, *args)  # type: ignore[misc]
    added = {i.decode() if isinstance(i, bytes) else str(i) for i in raw}
    return [e for e in events if e.id in added]


def stage(pipe: Pipeline, job_id: str, event: JobEvent, sequence: int) -> None:
    """Add the storing of `event` to `pipe` (a transaction); `sequence` is a fresh value of the
    job's `sequence_key`."""
    pipe.hsetnx(_data_key(job_id), event.id, _event_encoder.encode(event))  # type: ignore[arg-type]
    score = event.created_at * _PER_SECOND + sequence % _PER_SECOND
    pipe.zadd(_index_key(job_id), {event.id: score})


async def known_events(redis: Redis, job_id: str, event_ids: list[str]) -> list[bool]:
    """Which of `event_ids` are stored already, in one round trip."""
    if not event_ids:
        return []
    found = await redis.hmget(_data_key(job_id), event_ids)  # type: ignore[misc]
    return [value is not None for value in found]


async def list_events(
    redis: Redis,
    job_id: str,
    *,
    after: str | None = None,
    limit: int = 100,
    newest_first: bool = False,
) -> tuple[list[JobEvent], bool]:
    """Events oldest first (or `newest_first`, as OpenAI lists them), those after the event
    `after` in that order (None, or an unknown id: from the start)."""
    index = _index_key(job_id)
    start = 0
    if after is not None:
        rank = await (redis.zrevrank if newest_first else redis.zrank)(index, after)
        start = 0 if rank is None else int(rank) + 1
    ids = await (redis.zrevrange if newest_first else redis.zrange)(index, start, start + limit)
    if not ids:
        return [], False
    raws = await redis.hmget(_data_key(job_id), ids[:limit])  # type: ignore[misc]
    events = [_event_decoder.decode(raw) for raw in raws if raw is not None]
    return events, len(ids) > limit


async def save_checkpoints(redis: Redis, job_id: str, checkpoints: list[Checkpoint]) -> None:
    await redis.set(_checkpoints_key(job_id), _event_encoder.encode(checkpoints))


async def load_checkpoints(redis: Redis, job_id: str) -> list[Checkpoint]:
    raw = await redis.get(_checkpoints_key(job_id))
    return [] if raw is None else _checkpoints_decoder.decode(raw)


async def save_metrics(redis: Redis, job_id: str, rows: list[MetricsRow]) -> None:
    await redis.set(_metrics_key(job_id), _event_encoder.encode(rows))


async def load_metrics(redis: Redis, job_id: str) -> Metrics:
    """The result file's curve once mirrored; before that, the one the metrics events draw."""
    raw = await redis.get(_metrics_key(job_id))
    if raw is not None:
        return Metrics(job=job_id, source="result_file", data=_metrics_decoder.decode(raw))
    events, _ = await list_events(redis, job_id, limit=100_000)
    rows = [row for e in events if (row := _row_of(e)) is not None]
    return Metrics(job=job_id, source="events" if rows else "none", data=rows)


def _row_of(event: JobEvent) -> MetricsRow | None:
    data = event.data
    if event.type != "metrics" or not data or "step" not in data:
        return None

    def number(name: str) -> float | None:
        value = data.get(name)
        return float(value) if isinstance(value, int | float) else None

    try:
        return MetricsRow(
            step=int(data["step"]),
            train_loss=number("train_loss"),
            valid_loss=number("valid_loss"),
            train_mean_token_accuracy=number("train_mean_token_accuracy"),
            valid_mean_token_accuracy=number("valid_mean_token_accuracy"),
        )
    except (TypeError, ValueError):
        return None


async def delete_all(redis: Redis, job_id: str) -> None:
    await redis.delete(
        _index_key(job_id),
        _data_key(job_id),
        sequence_key(job_id),
        _checkpoints_key(job_id),
        _metrics_key(job_id),
    )
