"""Fault points: named places where a crash test makes a worker stop dead, to kill it exactly
there (between a change's commit and each of its effects).

Armed only by `BURRO_FAULT_POINTS` (`Settings.fault_points`), which only tests set: a worker
that reaches an armed point records it in Redis (`reached_key`) and holds there until it is
killed. Unarmed, a point costs one set lookup.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

import structlog
from redis.asyncio import Redis

from service.store import PREFIX

log = structlog.get_logger("burro.faults")

# The points armed in this process.
_armed: set[str] = set()


def arm(points: Iterable[str]) -> None:
    """Arm `points` in this process, and only those (the worker's start-up, from its settings)."""
    _armed.clear()
    _armed.update(points)


def reached_key(point: str) -> str:
    """Holds the pid of the process that stopped at `point`."""
    return f"{PREFIX}:faults:reached:{point}"


async def reach(redis: Redis, point: str) -> None:
    """Pass `point`; if it is armed, record it and hold here for good."""
    if point not in _armed:
        return
    log.warning("fault.holding", point=point)
    await redis.set(reached_key(point), os.getpid())
    await asyncio.Event().wait()
