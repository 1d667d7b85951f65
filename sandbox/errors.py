"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, in one place."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

log = logging.getLogger("sandbox")


class ErrorBody(msgspec.Struct, frozen=True):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(msgspec.Struct, frozen=True):
    error: ErrorBody


class OpenAIError(Exception):
    """An answer the real API would give: status, message, type, param and code."""

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


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(404, message, param=param, code=code)


def error_response(error: OpenAIError) -> Response[Any]:
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


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("sandbox.unexpected_error", exc_info=exc)
    return error_response(
        OpenAIError(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )
    )


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    OpenAIError: _openai_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
