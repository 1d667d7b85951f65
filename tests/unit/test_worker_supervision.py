"""The worker's restart delays when Redis goes away: growing, jittered, capped."""

from __future__ import annotations

import random

from workers.supervisor import Backoff


def test_restart_delays_grow_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    rand = random.Random(7)
    delays = [[backoff.delay(n, rand) for _ in range(50)] for n in range(1, 12)]
    assert all(0.25 <= d <= 0.5 for d in delays[0])
    assert all(1.0 <= d <= 2.0 for d in delays[2])
    assert all(15.0 <= d <= 30.0 for d in delays[-1])  # capped
    assert len({round(d, 6) for d in delays[0]}) > 1  # jittered
