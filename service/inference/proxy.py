"""The upstream pass-through: a chat completion goes to its provider and comes back as it came.

One aiohttp session serves every request of the process (made on first use, closed at
shutdown). A plain answer is relayed whole: status, body and content type. A stream is relayed
event by event as the upstream sends them, and the upstream call is dropped as soon as the
client goes away. Burro always asks the upstream for the final usage chunk of a stream (that
is how usage is counted) and drops that chunk again when the client did not ask for it.

Azure (`kind="azure"`): the deployment URL `…/openai/deployments/{model}/chat/completions` with
the `api-key` header, where the deployment is named after the model; deployments with other
names, and Entra ID tokens, are not supported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import quote

import aiohttp
import msgspec
import structlog
from litestar.types import Receive, Send

from service import metrics
from service.errors import BadRequest, BurroError, UpstreamUnavailable
from service.json_bodies import TOO_DEEP
from service.settings import ProviderSettings

log = structlog.get_logger("burro.inference")

CONNECT_TIMEOUT = 10.0
# Between two reads of a stream (or before a plain answer starts): generous, models think.
READ_TIMEOUT = 600.0
MAX_CONNECTIONS = 1024
LARGE_BODY_BYTES = 1024 * 1024

Account = Callable[[int, int], None]
# Called with the whole answer (a JSON completion, or a stream's events) once it is out.
Capture = Callable[[bytes], None]
# A stream's events are held for capture up to this size; a longer answer is not captured.
MAX_CAPTURED_BYTES = 4 * 1024 * 1024


class BadGateway(BurroError):
    status_code = 502
    code = "upstream_unreachable"
    title = "Upstream unreachable"


class GatewayTimeout(BurroError):
    status_code = 504
    code = "upstream_timeout"
    title = "Upstream timed out"


class InvalidBody(BadRequest):
    code = "invalid_request_body"


class MissingParameter(BadRequest):
    code = "missing_required_parameter"


# --- The request -----------------------------------------------------------------------------


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class ChatHead(msgspec.Struct):
    """The only fields of a chat completion request that Burro reads; the rest passes as is."""

    model: str
    stream: bool | None = None
    stream_options: _StreamOptions | None = None

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


_HEAD = msgspec.json.Decoder(ChatHead)
_DOCUMENT = msgspec.json.Decoder(dict[str, object])
_ENCODE = msgspec.json.Encoder()


def read_head(body: bytes) -> ChatHead:
    """Decode what Burro needs from the body; 400 (OpenAI's shape) when it cannot."""
    try:
        head = _HEAD.decode(body)
    except msgspec.ValidationError as exc:
        if "missing required field `model`" in str(exc):
            raise MissingParameter("Missing required parameter: 'model'.", param="model") from None
        raise InvalidBody(f"Invalid request body: {exc}.") from None
    except msgspec.DecodeError:
        raise InvalidBody(
            "We could not parse the JSON body of your request. The body must be a JSON object."
        ) from None
    except RecursionError:
        raise InvalidBody(TOO_DEEP) from None
    if not head.model:
        raise MissingParameter("Missing required parameter: 'model'.", param="model")
    return head


def rewrite(body: bytes, head: ChatHead, model: str) -> bytes:
    """The body for the upstream: its own model id, and the usage chunk asked for on streams.

    The body is re-encoded only when something changes (msgspec keeps every value exact).
    """
    force_usage = bool(head.stream) and not head.wants_usage_chunk
    if model == head.model and not force_usage:
        return body
    document = _DOCUMENT.decode(body)
    document["model"] = model
    if force_usage:
        options = document.get("stream_options")
        if isinstance(options, dict):
            options["include_usage"] = True
        else:
            document["stream_options"] = {"include_usage": True}
    return _ENCODE.encode(document)


# --- The upstream ----------------------------------------------------------------------------


class Endpoint(NamedTuple):
    url: str
    headers: dict[str, str]


class Upstream:
    """The shared HTTP client to every provider, with the chat endpoints it has worked out."""

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._endpoints: dict[tuple[str, str], Endpoint] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        # Made inside the running loop, on first use: one per process.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, ttl_dns_cache=300, keepalive_timeout=60
                ),
                timeout=self._timeout,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def endpoint(self, provider: ProviderSettings | None, name: str, model: str) -> Endpoint:
        """Where chat completions for `model` go on `provider` (503 when it is not set up)."""
        cache_key = (name, model if provider is not None and provider.kind == "azure" else "")
        known = self._endpoints.get(cache_key)
        if known is not None:
            return known
        if provider is None or not provider.base_url:
            raise UpstreamUnavailable(f"The provider {name!r} for this model is not configured.")
        base = provider.base_url.rstrip("/")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if provider.kind == "azure":
            url = f"{base}/openai/deployments/{quote(model, safe='')}/chat/completions"
            url += f"?api-version={quote(provider.api_version or '2025-04-01-preview')}"
            if provider.api_key:
                headers["api-key"] = provider.api_key
        else:
            url = f"{base}/chat/completions"
            if provider.api_key:
                headers["Authorization"] = f"Bearer {provider.api_key}"
        endpoint = self._endpoints[cache_key] = Endpoint(url, headers)
        return endpoint


# --- Relaying the answer ---------------------------------------------------------------------


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Answer(msgspec.Struct):
    usage: _Usage | None = None


class _Chunk(msgspec.Struct):
    choices: list[msgspec.Raw] = []
    usage: _Usage | None = None


_ANSWER = msgspec.json.Decoder(_Answer)
_CHUNK = msgspec.json.Decoder(_Chunk)


def _body(payload: bytes) -> bytes | io.BytesIO:
    # aiohttp warns (ResourceWarning) about bytes bodies of 1 MiB or more, which it would copy
    # in the event loop; a file-like body of known size is sent as it is read.
    return payload if len(payload) < LARGE_BODY_BYTES else io.BytesIO(payload)


def _overhead_header(started: float, waited: float) -> tuple[bytes, bytes]:
    overhead = max(time.perf_counter() - started - waited, 0.0)
    metrics.observe_proxy_overhead(overhead)
    return (b"x-burro-overhead-ms", f"{overhead * 1000:.3f}".encode())


async def relay(
    upstream: Upstream,
    endpoint: Endpoint,
    payload: bytes,
    head: ChatHead,
    receive: Receive,
    send: Send,
    *,
    started: float,
    account: Account,
    capture: Capture | None = None,
) -> None:
    """Send `payload` upstream and relay the answer to the client; with `capture`, hand it the
    answer afterwards when it was a success that reached the client whole.

    Raises BadGateway / GatewayTimeout (in OpenAI's shape) when the upstream cannot be reached
    before anything was sent to the client.
    """
    asked = time.perf_counter()
    try:
        response = await upstream.session.post(
            endpoint.url, data=_body(payload), headers=endpoint.headers
        )
    except TimeoutError:
        raise GatewayTimeout("The upstream model provider did not answer in time.") from None
    except aiohttp.ClientError as exc:
        log.warning("chat.upstream_unreachable", url=endpoint.url, error=str(exc))
        raise BadGateway("The upstream model provider could not be reached.") from None
    try:
        if head.stream and response.status == 200:
            waited = time.perf_counter() - asked
            await _relay_stream(response, receive, send, started, waited, head, account, capture)
            return
        try:
            body = await response.read()
        except TimeoutError:
            raise GatewayTimeout("The upstream model provider did not answer in time.") from None
        except aiohttp.ClientError:
            raise BadGateway("The upstream model provider broke off its answer.") from None
        waited = time.perf_counter() - asked
        headers = [
            (b"content-type", response.headers.get("Content-Type", "application/json").encode()),
            (b"content-length", str(len(body)).encode()),
            _overhead_header(started, waited),
        ]
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        if response.status == 200:
            # After the answer is out: the client never waits for the accounting.
            try:
                usage = _ANSWER.decode(body).usage
            except msgspec.DecodeError:
                usage = None
            account(*((usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)))
            if capture is not None:
                capture(body)
    finally:
        response.release()


async def _relay_stream(
    response: aiohttp.ClientResponse,
    receive: Receive,
    send: Send,
    started: float,
    waited: float,
    head: ChatHead,
    account: Account,
    capture: Capture | None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                _overhead_header(started, waited),
            ],
        }
    )
    pump = asyncio.ensure_future(_pump(response, send, head.wants_usage_chunk, account, capture))
    watch = asyncio.ensure_future(_until_disconnect(receive))
    try:
        await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not pump.done():
            # The client went away (or this request was cancelled): stop the upstream call.
            pump.cancel()
            response.close()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            log.info("chat.client_gone")
    if not pump.cancelled() and (exc := pump.exception()) is not None:
        # Too late for a status code: the stream just ends early.
        log.warning("chat.stream_broken", error=repr(exc))
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pump(
    response: aiohttp.ClientResponse,
    send: Send,
    keep_usage_chunk: bool,
    account: Account,
    capture: Capture | None,
) -> None:
    """Relay whole server-sent events as they arrive (holding back at most one partial
    event), take the usage from the usage chunk, drop that chunk unless the client wants it;
    with `capture`, keep the events and hand them over once the stream has ended."""
    pending = b""
    counted = False
    kept: list[bytes] | None = None if capture is None else []
    kept_bytes = 0
    async for data in response.content.iter_any():
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        pending = pending + data if pending else data
        start = 0
        ready: list[bytes] = []
        while (end := pending.find(b"\n\n", start)) >= 0:
            event = pending[start : end + 2]
            start = end + 2
            if b'"usage"' in event and event.startswith(b"data: {"):
                try:
                    chunk = _CHUNK.decode(event[6:])
                except msgspec.DecodeError:
                    chunk = None
                if chunk is not None and chunk.usage is not None:
                    account(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    counted = True
                    if not chunk.choices and not keep_usage_chunk:
                        continue
            ready.append(event)
        pending = pending[start:]
        if ready:
            body = ready[0] if len(ready) == 1 else b"".join(ready)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            if kept is not None:
                kept.append(body)
                kept_bytes += len(body)
                if kept_bytes > MAX_CAPTURED_BYTES:
                    kept = None  # too big to capture: stop holding it
    if not counted:
        account(0, 0)
    await send({"type": "http.response.body", "body": pending, "more_body": False})
    if capture is not None and kept is not None:
        capture(b"".join(kept))
