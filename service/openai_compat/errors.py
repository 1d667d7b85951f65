"""Errors in OpenAI's words on the drop-in paths: the status codes, `param` and `code` OpenAI's
API gives, so the official SDK raises `BadRequestError`, `NotFoundError`, … with a message a
person can act on. (`service.app.handle_exception` writes them in OpenAI's error shape.)"""

from __future__ import annotations

import re

from service.errors import BurroError

# Burro's field names as OpenAI's API calls them, in messages and in `param`.
_RENAMES = (
    (re.compile(r"\btraining_dataset\b"), "training_file"),
    (re.compile(r"\bvalidation_dataset\b"), "validation_file"),
    (re.compile(r"^provider\b"), "metadata.burro_provider"),
    (re.compile(r"\bno dataset\b"), "no file"),
    (re.compile(r"\bdataset (?=ds_)"), "file "),
)


class OpenAIError(BurroError):
    """One answer as OpenAI's API would give it: its status, `code` and `param`."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status_code = status
        self.code = code
        self.title = message


def invalid_request(message: str, *, param: str | None = None, code: str) -> OpenAIError:
    """A 400 `invalid_request_error` (OpenAI's answer to any request it will not take)."""
    return OpenAIError(400, message, code=code, param=param)


def file_not_found(file_id: str) -> OpenAIError:
    return OpenAIError(404, f"No such File object: {file_id}", code="not_found", param="id")


def job_not_found(job_id: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"Could not find fine-tuning job: {job_id}",
        code="not_found",
        param="fine_tuning_job_id",
    )


def _openai_names(text: str) -> str:
    for pattern, name in _RENAMES:
        text = pattern.sub(name, text)
    return text


def from_burro(exc: BurroError) -> BurroError:
    """Burro's answer to a job request in OpenAI's terms: a 422 (a field Burro will not take)
    becomes OpenAI's 400 `invalid_request_error`, with the field under OpenAI's name; other
    errors (401, 409, 429, …) keep their status."""
    if exc.status_code != 422:
        return exc
    param = exc.extensions.get("param")
    code = exc.extensions.get("code") or exc.code
    if code == "unprocessable":  # Burro's word for any field it will not take
        code = "invalid_value"
    return invalid_request(
        _openai_names(exc.detail),
        param=_openai_names(param) if isinstance(param, str) else None,
        code=str(code),
    )
