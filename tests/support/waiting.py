"""Waiting on a condition with a deadline: the one way a test waits for something to happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Deadlines are generous: a loaded machine makes a test slower, never wrong.
DEFAULT_TIMEOUT = 30.0


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "the condition",
    interval: float = 0.02,
) -> T:
    """Call `condition` until it returns something truthy and return that; fail the test with
    `what` when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
