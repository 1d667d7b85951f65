"""The arq worker of a test: production's functions and start-up (`workers.main.worker_settings`)
with fast knobs, built by the `worker` fixture's factory as arq's own tests build theirs.

A burst worker runs every queued job, deferred retries included, and returns once the queue is
empty: `await w.run()` in async tests, `w.drain()` in the others. A test that acts while jobs
run (a job's poll loop never empties the queue) starts it in a background thread instead,
`w.start()`; it is stopped the way arq stops on SIGTERM, letting running jobs finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator
from typing import Any, Self

from arq.worker import Worker, create_worker

from service.models import ModelTable
from service.providers import Providers
from service.queue import Queue
from service.settings import Settings
from tests.support.data import QUIET_DAY
from workers.context import WorkerContext
from workers.main import worker_settings

# Test knobs of the worker's context: a tiny upload threshold and parts (so the multipart path
# runs on small files), near-immediate retries, few tries, and a day on which the clock-run
# shutdown check finds nothing due, unless a test gives the worker a day of its own.
FAST_OPTIONS: dict[str, Any] = {
    "upload_threshold": 4096,
    "upload_part_bytes": 1024,
    "retry_base": 0.05,
    "retry_cap": 0.5,
    "max_tries": 4,
    "today": lambda: QUIET_DAY,
}
# How long jobs still running when a background worker is stopped may take to finish.
STOP_GRACE_SECONDS = 20
START_TIMEOUT = 15.0
# A burst run that has not emptied the queue by then has a job that never ends.
RUN_TIMEOUT = 60.0


class BurroWorker:
    """One arq worker for one test; see the module's docstring for the three ways to run it."""

    def __init__(
        self,
        settings: Settings,
        *,
        burst: bool = True,
        poll_delay: float = 0.02,
        keep_result: float | None = None,
        **options: Any,
    ) -> None:
        self.settings = settings
        self.burst = burst
        self.poll_delay = poll_delay
        self.keep_result = keep_result
        self.options = {**FAST_OPTIONS, **options}
        self.arq: Worker | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _build(self) -> Worker:
        # Built inside the event loop that runs it: arq binds the worker to that loop.
        overrides: dict[str, Any] = {
            "burst": self.burst,
            "poll_delay": self.poll_delay,
            "handle_signals": False,
            "job_completion_wait": STOP_GRACE_SECONDS,
        }
        if self.keep_result is not None:
            overrides["keep_result"] = self.keep_result
        self.arq = create_worker(worker_settings(self.settings, **self.options), **overrides)
        return self.arq

    async def run(self) -> Self:
        """Run in this event loop until the queue is empty (burst), then close."""
        worker = self._build()
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                await worker.main()
        finally:
            await worker.close()
        return self

    def drain(self) -> Self:
        """`run()` from a synchronous test, in an event loop of its own."""
        return asyncio.run(self.run())

    def start(self) -> Self:
        """Run in a background thread until `stop()` (the test's end at the latest)."""
        self._thread = threading.Thread(target=self._serve, name="arq-worker", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT) or self._error is not None:
            raise RuntimeError("the worker did not start") from self._error
        return self

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - handed to the test by stop()
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        worker = self._build()
        self._started.set()
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            pass  # stop(): arq cancels its main task once running jobs have finished
        finally:
            await worker.close()

    def stop(self) -> None:
        """Stop picking jobs, let running ones finish (as arq does on SIGTERM), close; re-raise
        whatever broke the worker."""
        thread, worker = self._thread, self.arq
        if thread is None:
            return
        self._thread = None
        if thread.is_alive() and worker is not None:
            with contextlib.suppress(RuntimeError):  # its loop ended meanwhile: nothing to stop
                worker.loop.call_soon_threadsafe(
                    worker.handle_sig_wait_for_completion, signal.SIGTERM
                )
        thread.join(STOP_GRACE_SECONDS + 10)
        if thread.is_alive():
            raise AssertionError("the worker did not stop")
        if self._error is not None:
            raise self._error


@contextlib.asynccontextmanager
async def worker_context(settings: Settings, **options: Any) -> AsyncIterator[WorkerContext]:
    """What production's start-up gives every function (its `JobContext.worker`), for tests
    that call a worker's core functions directly; its connections are closed on exit."""
    assert settings.redis_url is not None
    context = WorkerContext(
        settings=settings,
        queue=await Queue.connect(settings.redis_url),
        providers=Providers(settings),
        models=ModelTable.load(settings.models_file),
        **{**FAST_OPTIONS, **options},
    )
    try:
        yield context
    finally:
        await context.close()
        await context.queue.close()
