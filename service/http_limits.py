"""Limits on a request itself, before any handler: header size (431) and a body that stalls (408).

The server (granian, see `burro.serve`) bounds what it buffers of a request head and closes a
connection whose head is not complete in time; this middleware adds the exact answers a caller
can act on. Headers over `MAX_HEADER_BYTES` are refused before routing reaches a handler, and a
body that sends nothing for `body_idle_timeout` seconds ends the request with a 408 (what the
handler had spooled is discarded by the handler's own clean-up, so nothing is stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from service.errors import BurroError

# The request line and headers together; a Burro request needs a few kB at most.
MAX_HEADER_BYTES = 64 * 1024


class HeadersTooLarge(BurroError):
    status_code = 431
    code = "headers_too_large"
    title = "Request headers too large"


class BodyTimeout(BurroError):
    status_code = 408
    code = "request_timeout"
    title = "Request body timed out"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request body sent nothing for {seconds:g} s; send it again, without pauses."
        )
        # The body is left half-read: the connection cannot carry another request.
        self.headers = {"Connection": "close"}


def header_bytes(scope: Scope) -> int:
    """The size of the request line and headers as they came on the wire (near enough)."""
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 16
    return size + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def request_limits(body_idle_timeout: float) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware factory: `middleware=[request_limits(settings.body_idle_timeout)]`."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            if header_bytes(scope) > MAX_HEADER_BYTES:
                raise HeadersTooLarge(
                    f"The request line and headers are over {MAX_HEADER_BYTES} bytes.",
                    limit_bytes=MAX_HEADER_BYTES,
                )
            body_done = False

            async def receive_with_deadline() -> Any:
                nonlocal body_done
                if body_done:
                    # After the body only a disconnect comes, whenever the client leaves.
                    return await receive()
                try:
                    async with asyncio.timeout(body_idle_timeout):  # no task per message
                        message = await receive()
                except TimeoutError:
                    raise BodyTimeout(body_idle_timeout) from None
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_done = True
                return message

            await app(scope, receive_with_deadline, send)

        return limited

    return middleware
