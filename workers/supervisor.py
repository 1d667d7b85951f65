"""`burro worker` → the arq worker, kept alive: restarted with backoff when Redis goes away.

arq's worker ends as soon as a Redis command fails (a restart, a failover, a network blip).
`supervise` runs it in a loop: on a lost connection it logs `worker.redis_lost`, waits a bounded
exponential delay with jitter, and starts a fresh worker (new pool, on_startup again, so unfinished
jobs are resumed); `worker.reconnected` says when it is back. SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from dataclasses import dataclass
from typing import Any

import structlog
from arq.worker import Worker, create_worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.retries import backoff

log = structlog.get_logger("burro.worker")

# What a lost Redis looks like from arq's loop (refused, reset, timed out, still loading the AOF).
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: `base` doubling up to `cap`, each drawn from [delay/2, delay]
    so that many workers losing the same Redis do not all come back in the same instant. A
    worker that stayed up for `healthy_after` seconds starts again from `base`."""

    base: float = 0.5
    cap: float = 30.0
    healthy_after: float = 60.0

    def delay(self, failures: int, rand: random.Random | None = None) -> float:
        """The wait before restart number `failures` (1 for the first restart)."""
        return backoff(failures, base=self.base, cap=self.cap, rand=rand)


@dataclass
class _Restarts:
    failures: int = 0  # restarts since the worker was last healthy
    lost_at: float | None = None  # when Redis was first found gone, until a worker starts
    started_at: float | None = None  # when the current worker finished its on_startup


async def supervise(settings_cls: type, backoff: Backoff | None = None) -> int:
    """Run arq workers made from `settings_cls` until SIGTERM/SIGINT; returns the exit code
    (0 on a signal or a worker that ended by itself, 1 on an error that is not Redis's)."""
    backoff = backoff or Backoff()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    state = _Restarts()
    original_startup = getattr(settings_cls, "on_startup", None)

    async def on_startup(ctx: dict[str, Any]) -> None:
        if original_startup is not None:
            await original_startup(ctx)
        state.started_at = loop.time()
        if state.lost_at is not None:
            log.info(
                "worker.reconnected",
                restarts=state.failures,
                down_seconds=round(state.started_at - state.lost_at, 2),
            )
            state.lost_at = None

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        while True:
            state.started_at = None
            worker = create_worker(settings_cls, handle_signals=False, on_startup=on_startup)
            running = asyncio.create_task(worker.main())
            stop_wait = asyncio.create_task(stopping.wait())
            await asyncio.wait({running, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            error = None if not running.done() or running.cancelled() else running.exception()
            await _close(worker, running, cancel_jobs=stopping.is_set())
            if stopping.is_set():
                log.info("worker.stopped")
                return 0
            if error is None:
                return 0  # ended by itself (burst mode)
            if not isinstance(error, REDIS_FAILURES):
                log.error("worker.crashed", exc_info=error)
                return 1
            if state.started_at is not None and loop.time() - state.started_at >= (
                backoff.healthy_after
            ):
                state.failures = 0
            state.failures += 1
            if state.lost_at is None:
                state.lost_at = loop.time()
            delay = backoff.delay(state.failures)
            log.warning(
                "worker.redis_lost",
                error=f"{type(error).__name__}: {error}",
                restart=state.failures,
                restart_in=round(delay, 2),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            if stopping.is_set():
                log.info("worker.stopped")
                return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _close(worker: Worker, running: asyncio.Task[None], *, cancel_jobs: bool) -> None:
    """Stop one worker whatever state Redis is in, then run on_shutdown and close its pool (arq's
    own close() gives up at the first Redis error, so not that).

    On a signal its jobs are cancelled, as arq does (they run again, at least once). When Redis
    went away they are left to finish within their own timeouts: a job waiting on the upstream
    (a create, an upload) records what it got once Redis is back, instead of leaving it behind.
    """
    running.cancel()
    if cancel_jobs:
        for task in worker.tasks.values():
            task.cancel()
    await asyncio.gather(running, *worker.tasks.values(), return_exceptions=True)
    pool = worker._pool
    if pool is None:  # never connected: on_startup never ran
        return
    with contextlib.suppress(RedisError, OSError):
        await pool.delete(worker.health_check_key)
    try:
        if worker.on_shutdown is not None:
            await worker.on_shutdown(worker.ctx)
    except Exception:
        log.exception("worker.shutdown_error")
    finally:
        with contextlib.suppress(RedisError, OSError):
            await pool.aclose()
        worker._pool = None
