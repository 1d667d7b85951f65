"""Webhook → delivery: one attempt to POST a signed message to a checked target.

The request goes to the addresses `resolve_public` checked, never to a fresh DNS answer: the
client's resolver is replaced by one that answers, for the target's host, exactly those
addresses. TLS still verifies the certificate against the host name, and the Host header
carries it, so receivers behind virtual hosts and CDNs work unchanged.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import socket
import ssl
import time
from contextvars import ContextVar
from types import TracebackType
from typing import Self

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from service.webhooks.addresses import CheckedTarget

USER_AGENT = "Burro-Webhooks/1"
EXCERPT_BYTES = 512

# The target of the attempt running in this task. A context variable rather than state on the
# resolver, because one session serves many concurrent attempts to many hosts.
_current_target: ContextVar[CheckedTarget | None] = ContextVar("burro_webhook_target", default=None)


class AttemptOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one delivery attempt came to; `error` is set exactly when it was not delivered."""

    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: float
    response_excerpt: str = ""
    """The first 512 bytes of the answer's body, decoded as UTF-8 with replacement."""
    retry_after: float | None = None
    """Seconds the receiver asked to wait (`Retry-After` on a 429 or 503), never negative."""


class _PinnedResolver(AbstractResolver):
    """Answers the checked addresses of the current attempt's host, and nothing else."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target = _current_target.get()
        if target is None or host != target.host:
            # Fail closed: a name that was not checked is never looked up.
            raise OSError(f"{host} is not the checked webhook host")
        results: list[ResolveResult] = []
        for ip in target.ips:
            ip_family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if family in (socket.AF_UNSPEC, ip_family):
                results.append(
                    ResolveResult(
                        hostname=host,
                        host=ip,
                        port=port,
                        family=ip_family,
                        proto=0,
                        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                    )
                )
        if not results:
            raise OSError(f"no checked address of {host} fits the address family")
        return results

    async def close(self) -> None:
        pass


class WebhookSender:
    """Sends webhook attempts through one HTTP client session; make one per worker process,
    inside its event loop (the worker's start-up), and `close()` it at shutdown.

    `ssl_context` verifies the receivers' certificates: None for the system's trusted CAs, or
    a context of one's own (a private CA, tests). Verification is never turned off.
    """

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, max_connections: int = 100
    ) -> None:
        connector = aiohttp.TCPConnector(
            resolver=_PinnedResolver(),
            # Each attempt resolves through its own check: no cache shared between attempts.
            use_dns_cache=False,
            # A fresh connection per attempt goes to the addresses checked for that attempt,
            # and a receiver's idle keep-alive timeout cannot fail a POST half-way.
            force_close=True,
            limit=max_connections,
            ssl=True if ssl_context is None else ssl_context,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # No proxy from the environment: a proxy would resolve the host itself.
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def send(
        self,
        target: CheckedTarget,
        headers: dict[str, str],
        body: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 -- it bounds the attempt and is reported in its error
    ) -> AttemptOutcome:
        """POST `body` to `target` once. Never raises for what the receiver or the network
        does: a timeout, a refused connection or a non-2xx answer is an outcome.

        `timeout` bounds the whole attempt: connecting, sending and receiving the status and
        headers; the excerpt of the body is read only with what is left of it. A 3xx is not
        followed. `headers` are sent as given (the signature headers), with the JSON content
        type and Burro's user agent added.
        """
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + timeout
        request_headers = {k.lower(): v for k, v in headers.items()}
        request_headers["content-type"] = "application/json"
        request_headers["user-agent"] = USER_AGENT
        reset = _current_target.set(target)
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._session.post(
                    URL(target.url, encoded=True),
                    data=body,
                    headers=request_headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                )
            async with response:
                excerpt = await _read_excerpt(response, deadline)
                return _outcome(response, excerpt, _elapsed_ms(started))
        except TimeoutError:
            error = f"timeout after {float(timeout)} s"
        except aiohttp.ClientError as exc:
            error = _describe(exc)
        except OSError as exc:
            error = f"connection failed: {exc.strerror or exc}"
        finally:
            _current_target.reset(reset)
        return AttemptOutcome(
            delivered=False, status_code=None, error=error, duration_ms=_elapsed_ms(started)
        )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a zone-less one still means GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


async def _read_excerpt(response: aiohttp.ClientResponse, deadline: float) -> str:
    """The first bytes of the body, within what is left of the attempt's time. The status has
    already decided the outcome, so a slow or broken body only shortens the excerpt."""
    chunks = bytearray()
    try:
        async with asyncio.timeout_at(deadline):
            while len(chunks) < EXCERPT_BYTES:
                chunk = await response.content.read(EXCERPT_BYTES - len(chunks))
                if not chunk:
                    break
                chunks += chunk
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass
    return chunks.decode("utf-8", errors="replace")


def _outcome(response: aiohttp.ClientResponse, excerpt: str, duration_ms: float) -> AttemptOutcome:
    status = response.status
    error: str | None = None
    if 300 <= status < 400:
        location = response.headers.get("location")
        error = (
            f"redirect to {location[:200]} not followed" if location else "redirect not followed"
        )
    elif not 200 <= status < 300:
        error = f"answered HTTP {status}"
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    return AttemptOutcome(
        delivered=error is None,
        status_code=status,
        error=error,
        duration_ms=duration_ms,
        response_excerpt=excerpt,
        retry_after=retry_after,
    )


def _describe(exc: aiohttp.ClientError) -> str:
    """Words for a failed attempt, for the tenant reading its deliveries. No headers in them."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        reason = getattr(cert_error, "verify_message", None) or str(cert_error)
        return f"TLS certificate not accepted: {reason}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "the checked address could not be used"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED:
            return "connection refused"
        return f"connection failed: {os_error.strerror or os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed before an answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"invalid HTTP answer: {exc.message}"
    return f"request failed: {type(exc).__name__}"


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
