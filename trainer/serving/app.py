"""The model server: base model and LoRA adapters behind OpenAI's chat completions API.

`POST /v1/chat/completions` (plain and `stream: true`, usage as OpenAI reports it) and
`GET /v1/models`, answered in OpenAI's shapes and error shape, so the official SDK, LangChain
and Burro's own proxy use it as any OpenAI-compatible upstream.

The engine decodes one request at a time on its own thread, off the event loop. Up to
`max_waiting` requests wait their turn; past that a request is answered 503 at once (the SDK
retries it). A streamed answer stops decoding as soon as its client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.response import Stream

from service.openai_shapes import ChatChunks, OpenAIError, exception_handlers
from trainer.serving.engine import Engine, Generation, SamplingParams, UnknownModel

__all__ = ["ServerSettings", "create_app"]

_ENCODE = msgspec.json.Encoder()


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How much the server takes on at once."""

    # Requests waiting for the engine beyond the one it decodes; more are refused with 503.
    max_waiting: Annotated[int, msgspec.Meta(ge=0)] = 32
    owned_by: str = "burro"


# --- The request ----------------------------------------------------------------------------


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class _Message(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class ChatRequest(msgspec.Struct):
    """The fields of OpenAI's chat request the server uses; others are accepted and ignored."""

    model: str
    messages: Annotated[list[_Message], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: Annotated[int, msgspec.Meta(ge=1)] | None = None

    def sampling(self) -> SamplingParams:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return SamplingParams(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=stop[:4],
            seed=self.seed,
        )

    def plain_messages(self) -> list[dict[str, Any]]:
        plain = []
        for m in self.messages:
            content = m.content
            if isinstance(content, list):
                content = "".join(
                    str(p.get("text", "")) for p in content if p.get("type") == "text"
                )
            message: dict[str, Any] = {"role": m.role, "content": content or ""}
            if m.name is not None:
                message["name"] = m.name
            plain.append(message)
        return plain


_chat_request = msgspec.json.Decoder(ChatRequest)


# --- Errors: OpenAI's shape (`service.openai_shapes`) ---------------------------------------


def _model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


# --- The runner: one engine, one thread, a bounded queue --------------------------------------


class _Runner:
    """Runs engine calls on one thread, at most `1 + max_waiting` admitted at a time."""

    def __init__(self, engine: Engine, max_waiting: int) -> None:
        self.engine = engine
        self.capacity = max_waiting + 1
        self.admitted = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="burro-generate")

    def check(self) -> None:
        """Refuse a request when the queue is full (503, which the SDK retries)."""
        if self.admitted >= self.capacity:
            raise OpenAIError(
                503,
                "The model server is busy; retry shortly.",
                type="server_error",
                code="server_overloaded",
                headers={"retry-after": "1"},
            )

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def call(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)


def _completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _usage(g: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.completion_tokens,
        "total_tokens": g.prompt_tokens + g.completion_tokens,
    }


def create_app(engine: Engine, settings: ServerSettings | None = None) -> Litestar:
    """The HTTP app around `engine` (already loaded: the app loads nothing itself)."""
    settings = settings or ServerSettings()
    runner = _Runner(engine, settings.max_waiting)
    started = int(time.time())

    def parse(raw: bytes) -> ChatRequest:
        try:
            body = _chat_request.decode(raw)
        except msgspec.ValidationError as exc:
            raise OpenAIError(400, f"Invalid request: {exc}", code="invalid_value") from None
        except msgspec.DecodeError:
            raise OpenAIError(400, "We could not parse the JSON body of your request.") from None
        if body.n not in (None, 1):
            raise OpenAIError(400, "Only n=1 is supported.", param="n", code="invalid_value")
        if not engine.knows(body.model):
            raise _model_not_found(body.model)
        return body

    @post("/v1/chat/completions", status_code=200)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
        body = parse(await request.body())
        messages, params = body.plain_messages(), body.sampling()
        completion_id, created = _completion_id(), int(time.time())
        runner.check()
        if body.stream:
            chunks = ChatChunks(
                completion_id=completion_id,
                created=created,
                model=body.model,
                include_usage=bool(body.stream_options and body.stream_options.include_usage),
                system_fingerprint=None,
            )
            return Stream(
                _stream(runner, body.model, messages, params, chunks),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        with runner.admission():
            try:
                answer: Generation = await runner.call(
                    lambda: engine.generate(body.model, messages, params)
                )
            except UnknownModel:
                raise _model_not_found(body.model) from None
            except ValueError as exc:
                raise OpenAIError(400, str(exc), param="messages") from None
        return Response(
            content=_ENCODE.encode(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": body.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": answer.text,
                                "refusal": None,
                            },
                            "logprobs": None,
                            "finish_reason": answer.finish_reason,
                        }
                    ],
                    "usage": _usage(answer),
                    "system_fingerprint": None,
                }
            ),
            media_type="application/json",
        )

    @get("/v1/models")
    async def list_models() -> dict[str, Any]:
        ids = [engine.base_model, *engine.resolver.models()]
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": started, "owned_by": settings.owned_by}
                for m in dict.fromkeys(ids)
            ],
        }

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "base_model": engine.base_model}

    return Litestar(
        route_handlers=[chat_completions, list_models, health],
        exception_handlers=exception_handlers("trainer.serving"),
        openapi_config=None,
    )


async def _stream(
    runner: _Runner,
    model: str,
    messages: list[dict[str, Any]],
    params: SamplingParams,
    chunks: ChatChunks,
) -> AsyncIterator[bytes]:
    """The answer as OpenAI streams it, each piece sent as soon as the engine decodes it."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | Generation | BaseException] = asyncio.Queue()
    gone = threading.Event()

    def produce() -> None:
        try:
            for piece in runner.engine.stream(model, messages, params):
                loop.call_soon_threadsafe(pieces.put_nowait, piece)
                if gone.is_set():  # the client left: free the engine for the next request
                    return
        # Whatever ends the stream goes to the event loop, which answers with it: the request
        # must never wait for a piece that does not come.
        except BaseException as exc:  # noqa: BLE001 - handed on, not swallowed
            loop.call_soon_threadsafe(pieces.put_nowait, exc)

    with runner.admission():
        work = loop.run_in_executor(runner.executor, produce)
        try:
            yield chunks.role()
            while True:
                piece = await pieces.get()
                if isinstance(piece, BaseException):
                    yield ChatChunks.error(
                        f"The model `{model}` is no longer available."
                        if isinstance(piece, UnknownModel)
                        else "The model server failed to generate an answer."
                    )
                    return
                if isinstance(piece, Generation):
                    for event in chunks.end(piece.finish_reason, _usage(piece)):
                        yield event
                    return
                yield chunks.content(piece)
        finally:
            gone.set()
            await work
