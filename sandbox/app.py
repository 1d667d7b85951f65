"""The sandbox app factory, and `serve` to run it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar import Litestar
from litestar.di import Provide

from sandbox import chat, faults, files, fine_tuning, uploads, webhooks
from sandbox.config import SandboxConfig
from sandbox.state import Clock, SandboxState
from service.openai_shapes import exception_handlers

# OpenAI takes files up to 512 MB; parts of an Upload up to 64 MB.
MAX_BODY_BYTES = 600 * 1024**2


def create_app(
    config: SandboxConfig, *, clock: Clock | None = None, state: SandboxState | None = None
) -> Litestar:
    """A new sandbox with its own empty state. `clock` (seconds, like `time.time`) drives the
    jobs' progress; tests pass a controllable one."""
    sandbox = state or SandboxState(config=config)
    if clock is not None:
        sandbox.clock = clock

    def provide_sandbox() -> SandboxState:
        return sandbox

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if not config.webhook_url:
            yield
            return
        async with httpx.AsyncClient(
            timeout=config.webhook_timeout, follow_redirects=False
        ) as client:
            ticker = asyncio.create_task(webhooks.run_ticker(sandbox, client))
            try:
                yield
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    app = Litestar(
        route_handlers=[
            files.router,
            uploads.router,
            fine_tuning.router,
            chat.router,
            faults.router,
        ],
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers=exception_handlers("sandbox"),
        before_request=faults.before_request,
        lifespan=[lifespan],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=None,
        debug=False,
    )
    app.state.sandbox = sandbox
    return app


def serve(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8766) -> None:
    """Run the sandbox in the foreground until interrupted."""
    import uvicorn

    kwargs: dict[str, Any] = {"host": host, "port": port, "log_level": "info", "ws": "none"}
    uvicorn.run(create_app(config), **kwargs)
