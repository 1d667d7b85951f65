"""The sandbox's shortcuts for OpenAI's usual answers; the error shape itself is shared with the
trainer's model server (`service.openai_shapes`)."""

from __future__ import annotations

from service.openai_shapes import OpenAIError


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(404, message, param=param, code=code)
