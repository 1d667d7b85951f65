"""Jobs trained by Burro itself (provider kind `local`): who trains a job, and where its run is.

A local job has no upstream to poll. The control worker queues it for the trainers
(`tasks.TRAIN_JOB`, queue `burro:trainer`); whichever `burro trainer` takes it holds a lease on it
in Redis and renews it while it trains, and reports progress by the same `transition()`,
`record()` and timeline writes that mirroring an upstream job uses, so the job reads, notifies
and moves aliases like any other.

A job trains on one trainer at a time: the lease is taken with SET NX and renewed only by its
holder. A trainer that dies stops renewing; the control worker's watchdog (`tasks.WATCH_TRAINING`)
then queues the job's next attempt, and the trainer that takes it resumes from the run's last
checkpoint. Each attempt has its own number: a stale attempt (say, one arq runs again long after
its trainer died) finds the number moved on and leaves.

Nothing here imports torch: the API and the control worker use it too.
"""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from service import tasks
from service.queue import Queue
from service.settings import Settings
from service.store import PREFIX

__all__ = [
    "Lease",
    "checkpoint_model",
    "current_attempt",
    "queue_attempt",
    "run_dir",
    "trained_model_name",
]

TRAINING_DIR = "training"
"""Runs live under `<data dir>/training/<job id>`: storage the trainers share (see docs)."""
BASE_MODELS_DIR = "base-models"
"""Base models prepared for training and serving (dequantized GGUF files) live here, under the
data directory, unless `Settings.base_models_dir` says elsewhere."""
ACTIVE_KEY = f"{PREFIX}:training:active"
"""Local jobs queued or training: what the watchdog looks at."""


def _attempt_key(job_id: str) -> str:
    return f"{PREFIX}:training:attempt:{job_id}"


def _lease_key(job_id: str) -> str:
    return f"{PREFIX}:training:lease:{job_id}"


def run_dir(data_dir: Path, job_id: str) -> Path:
    """Where the run of `job_id` writes its checkpoints, adapter and result file."""
    return data_dir / TRAINING_DIR / job_id


def base_models_dir(settings: Settings) -> Path:
    """Where prepared base models are kept, shared by the trainers and model servers."""
    return settings.base_models_dir or settings.data_dir / BASE_MODELS_DIR


def trained_model_name(base_model: str, tenant: str, suffix: str | None, job_id: str) -> str:
    """OpenAI's form, `ft:BASE:ORG:SUFFIX:ID`, with the tenant as the organisation."""
    return f"ft:{base_model}:{tenant}:{suffix or ''}:{job_id}"


def checkpoint_model(model: str, step: int) -> str:
    """A checkpoint's model name, as OpenAI names them."""
    return f"{model}:ckpt-step-{step}"


async def current_attempt(redis: Redis, job_id: str) -> int:
    """The number of the job's latest attempt (0: never queued)."""
    raw = await redis.get(_attempt_key(job_id))
    return int(raw) if raw is not None else 0


async def queue_attempt(queue: Queue, job_id: str) -> int:
    """Queue the job's next attempt for the trainers; returns its number."""
    redis = queue.redis
    attempt = int(await redis.incr(_attempt_key(job_id)))
    await redis.sadd(ACTIVE_KEY, job_id)  # type: ignore[misc]
    await queue.enqueue(tasks.TRAIN_JOB, job_id, attempt)
    return attempt


async def finished(redis: Redis, job_id: str) -> None:
    """The job ended: nothing left for the watchdog or the attempts counter."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.srem(ACTIVE_KEY, job_id)
        pipe.delete(_attempt_key(job_id), _lease_key(job_id))
        await pipe.execute()


async def active_jobs(redis: Redis) -> list[str]:
    raw = await redis.smembers(ACTIVE_KEY)  # type: ignore[misc]
    return sorted(i.decode() if isinstance(i, bytes) else str(i) for i in raw)


async def lease_holder(redis: Redis, job_id: str) -> str | None:
    raw = await redis.get(_lease_key(job_id))
    return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


# Renew (or release) only a lease this holder still has: compare and act in one step.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """One trainer's hold on one job: taken once, renewed while it trains, released at the end."""

    def __init__(self, redis: Redis, job_id: str, holder: str, ttl_seconds: float) -> None:
        self.redis = redis
        self.job_id = job_id
        self.holder = holder
        self.ttl_ms = max(1000, int(ttl_seconds * 1000))

    async def take(self) -> bool:
        """True when this holder now has the job; False when another trainer has it."""
        return bool(
            await self.redis.set(_lease_key(self.job_id), self.holder, nx=True, px=self.ttl_ms)
        )

    async def renew(self) -> bool:
        """False when the lease was lost (expired and taken, or released)."""
        kept = await self.redis.eval(  # type: ignore[misc]
            _RENEW, 1, _lease_key(self.job_id), self.holder, str(self.ttl_ms)
        )
        return bool(kept)

    async def release(self) -> None:
        await self.redis.eval(_RELEASE, 1, _lease_key(self.job_id), self.holder)  # type: ignore[misc]
