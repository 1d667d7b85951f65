"""Retries: the one backoff every retry loop waits by (upstream calls, background jobs, the
webhook store, worker restarts), and the bounded policy that carries it."""

from __future__ import annotations

import random
from dataclasses import dataclass


def backoff(attempt: int, *, base: float, cap: float, rand: random.Random | None = None) -> float:
    """Seconds to wait after failed try `attempt` (1 for the first): `base` doubling with each
    try up to `cap`, drawn from [delay/2, delay] so that many waiters that failed together do
    not all come back in the same instant, and never longer than `cap`."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return (rand or random).uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class RetryPolicy:
    """Explicit, bounded retries: at most `max_tries` tries, waiting `backoff` between them."""

    max_tries: int = 4
    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int, rand: random.Random | None = None) -> float:
        """Seconds before try `attempt + 1`."""
        return backoff(attempt, base=self.base, cap=self.cap, rand=rand)
