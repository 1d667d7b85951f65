"""What every background function needs, made once per worker process (arq's `ctx["burro"]`)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from redis.asyncio import Redis

from service.models import ModelTable
from service.providers import Providers
from service.queue import Queue
from service.settings import Settings

MiB = 1024 * 1024


@dataclass
class WorkerContext:
    settings: Settings
    queue: Queue
    providers: Providers
    models: ModelTable
    # Files at least this big go up through the Uploads API, in parts of `upload_part_bytes`.
    upload_threshold: int = 64 * MiB
    upload_part_bytes: int = 64 * MiB
    # Explicit retries of upload/create: at most `max_tries` runs, backoff base * 2^try, capped.
    max_tries: int = 8
    retry_base: float = 2.0
    retry_cap: float = 300.0
    poll_jitter: float = 0.2
    # Locks outlive the function that holds them (its timeout), so a live holder never loses
    # one; a dead holder's lock expires and the step runs again.
    create_lock_ms: int = 90_000
    upload_lock_ms: int = 150_000

    @property
    def redis(self) -> Redis:
        return self.queue.redis

    def backoff(self, attempt: int) -> float:
        """Seconds before try `attempt + 1`: exponential, capped, with ±50 % jitter."""
        delay = min(self.retry_cap, self.retry_base * 2.0 ** max(0, attempt - 1))
        return float(delay * random.uniform(0.5, 1.5))

    def poll_delay(self) -> float:
        """The poll interval with ±`poll_jitter` jitter, so many workers do not poll in step."""
        interval = self.settings.poll_interval
        return max(0.05, interval * random.uniform(1 - self.poll_jitter, 1 + self.poll_jitter))
