"""The error answers of every operation, documented in one place: what `handle_exception` in
`service.app` sends (problem details, or OpenAI's shape on the OpenAI-compatible paths)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

PROBLEM_JSON = "application/problem+json"
# OpenAI's files and fine-tuning API, drop-in (`service.openai_compat`).
FINE_TUNING_PREFIXES = ("/v1/files", "/v1/fine_tuning/")
# Paths that speak OpenAI's dialect, errors included, so OpenAI clients parse them.
OPENAI_COMPATIBLE_PREFIXES = ("/v1/chat/", "/v1/models", *FINE_TUNING_PREFIXES)

_DESCRIPTIONS = {
    400: "Malformed request: a parameter or the body does not parse or fit its type",
    401: "Missing or unknown API key",
    404: "No such resource for this tenant (another tenant's id included)",
    409: "Conflict with the resource's state, or an Idempotency-Key reused with another body",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Well-formed but not acceptable; `detail` says which field and why",
    429: "Rate limited; `Retry-After` says when to try again",
}


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details. Some errors add extensions: `errors` and `error_counts` for an
    invalid dataset, `errors` for a malformed request, `code` where one applies."""

    type: str
    title: str
    status: int
    detail: str


class OpenAIErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """Errors on the OpenAI-compatible paths, as OpenAI's clients parse them."""

    error: OpenAIErrorDetail


class ErrorResponses(ReceiveRoutePlugin):
    """Adds the error answers that can reach each `/v1` operation to its OpenAPI responses.

    Every operation may be malformed (400) or name something that is not the caller's (404);
    one behind a key may be refused it (401) or rate limited (429); a write may conflict (409)
    or be unacceptable (422); one that reads a body may find it too large (413) or of a type it
    does not take (415). A handler's own `responses` win over these.
    """

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1/"):
            return
        for handler in route.route_handlers:
            if "OPTIONS" in handler.http_methods and len(handler.http_methods) == 1:
                continue
            statuses = _statuses(handler)
            if route.path.startswith(OPENAI_COMPATIBLE_PREFIXES):
                common = {s: _openai_spec(s) for s in statuses}
            else:
                common = {s: _problem_spec(s) for s in statuses}
            # A new mapping: the handler object may be shared by apps built in one process.
            handler.responses = {**common, **(handler.responses or {})}


def _statuses(handler: HTTPRouteHandler) -> list[int]:
    statuses = [400, 404]
    if handler.security != []:  # `security=[]`: no key, so no 401 and no per-tenant limit
        statuses += [401, 429]
    methods = set(handler.http_methods)
    if methods & {"POST", "PUT", "PATCH", "DELETE"} and handler.security != []:
        statuses += [409, 422]
    parameters = handler.parsed_fn_signature.parameters
    # A handler that reads its own body documents it with its own Operation class.
    reads_body = bool({"data", "request"} & set(parameters)) or (
        handler.operation_class is not Operation
    )
    if methods & {"POST", "PUT", "PATCH"} and reads_body:
        statuses += [413, 415]
    return sorted(statuses)


def _problem_spec(status: int) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        description=_DESCRIPTIONS[status],
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )


def _openai_spec(status: int) -> ResponseSpec:
    container: Any = OpenAIErrorBody
    return ResponseSpec(
        data_container=container, description=_DESCRIPTIONS[status], generate_examples=False
    )
