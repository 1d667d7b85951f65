"""One error hierarchy for Burro, mapped to HTTP answers in one place (`service.app`)."""

from __future__ import annotations

from typing import Any


class BurroError(Exception):
    """An expected failure with its HTTP status and a stable code."""

    status_code = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class BadRequest(BurroError):
    status_code = 400
    code = "bad_request"
    title = "Malformed request"


class Unauthorized(BurroError):
    status_code = 401
    code = "unauthorized"
    title = "Missing or unknown API key"


class NotFound(BurroError):
    status_code = 404
    code = "not_found"
    title = "Not found"


class Conflict(BurroError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(BurroError):
    status_code = 413
    code = "payload_too_large"
    title = "Body too large"


class UnsupportedMediaType(BurroError):
    status_code = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class Unprocessable(BurroError):
    status_code = 422
    code = "unprocessable"
    title = "Not acceptable"


class InvalidDataset(Unprocessable):
    code = "invalid_dataset"
    title = "Invalid dataset"


class RateLimited(BurroError):
    status_code = 429
    code = "rate_limited"
    title = "Too many requests"


class UpstreamUnavailable(BurroError):
    status_code = 503
    code = "upstream_unavailable"
    title = "Upstream unavailable"
