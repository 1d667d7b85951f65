"""OpenAI's wire shapes that every OpenAI-compatible server of Burro's answers in, with nothing
behind them (no app, no Redis, no settings): the error envelope and Litestar handlers that write
it, the events of a streamed chat completion, and the columns of a fine-tuning job's result file.

Shared by the sandbox (the fake upstream) and the trainer's model server, which must not depend
on each other. Burro's own API writes OpenAI's errors through `service.app.handle_exception`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

__all__ = [
    "RESULT_CSV_COLUMNS",
    "ChatChunks",
    "ErrorBody",
    "ErrorEnvelope",
    "OpenAIError",
    "error_response",
    "exception_handlers",
]

_ENCODE = msgspec.json.Encoder()
_DONE = b"data: [DONE]\n\n"

# A fine-tuning job's result file (`step_metrics.csv`), column for column as OpenAI writes it.
RESULT_CSV_COLUMNS = (
    "step",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "train_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)


class ErrorBody(msgspec.Struct, frozen=True):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(msgspec.Struct, frozen=True):
    error: ErrorBody


class OpenAIError(Exception):
    """An answer OpenAI's API would give: status, message, type, param and code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(message=message, type=type, param=param, code=code)
        self.headers = headers or {}


def error_response(error: OpenAIError) -> Response[Any]:
    """`error` as OpenAI sends it: `{"error": {"message", "type", "param", "code"}}`."""
    return Response(
        content=msgspec.json.encode(ErrorEnvelope(error=error.body)),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def _openai_error(_: Request[Any, Any, Any], exc: OpenAIError) -> Response[Any]:
    return error_response(exc)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    message = exc.detail or "Invalid request"
    if status == 404:
        message = "Invalid URL"
    extra = getattr(exc, "extra", None)
    if status == 400 and extra:
        message = f"{message}: {extra}"
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return error_response(OpenAIError(status, message, type=kind))


def exception_handlers(logger: str) -> dict[int | type[Exception], Any]:
    """Litestar's exception handlers for a server that answers every error in OpenAI's shape;
    an unexpected one is logged to `logger` with its traceback."""
    log = logging.getLogger(logger)

    def unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        log.exception("unexpected_error", exc_info=exc)
        return error_response(
            OpenAIError(
                500,
                "The server had an error while processing your request. Sorry about that!",
                type="server_error",
            )
        )

    return {OpenAIError: _openai_error, HTTPException: _http_error, Exception: unexpected}


class ChatChunks:
    """The server-sent events of one streamed chat completion, as OpenAI sends them: a role
    chunk, content chunks, then `end` (the finish chunk, the usage chunk when the request asked
    for it, `[DONE]`). `fields` go into every chunk (`system_fingerprint`, `service_tier`)."""

    def __init__(
        self, *, completion_id: str, created: int, model: str, include_usage: bool, **fields: Any
    ) -> None:
        self.head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            **fields,
        }
        self.include_usage = include_usage

    def role(self) -> bytes:
        return self._choice({"role": "assistant", "content": "", "refusal": None}, None)

    def content(self, text: str) -> bytes:
        return self._choice({"content": text}, None)

    def end(self, finish_reason: str, usage: Mapping[str, Any]) -> tuple[bytes, ...]:
        finish = self._choice({}, finish_reason)
        if not self.include_usage:
            return finish, _DONE
        return finish, _event({**self.head, "choices": [], "usage": usage}), _DONE

    @staticmethod
    def error(message: str) -> bytes:
        """A failure after the stream began (its status is sent already): OpenAI's error body
        as the last event."""
        body = ErrorBody(message=message, type="server_error", param=None, code=None)
        return _event(ErrorEnvelope(error=body))

    def _choice(self, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        body: dict[str, Any] = {**self.head, "choices": [choice]}
        if self.include_usage:  # every chunk but the last says `usage: null`
            body["usage"] = None
        return _event(body)


def _event(body: Any) -> bytes:
    return b"data: " + _ENCODE.encode(body) + b"\n\n"
