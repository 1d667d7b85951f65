"""The app factory: wires settings, Redis, the queue, errors and every domain's routes."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar, MediaType, Request, Response
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service import aliases, health, metrics
from service.api_reference import redoc_script, render_plugins
from service.context import Resources
from service.datasets import routes as datasets
from service.errors import BurroError
from service.evaluations import routes as evaluations
from service.http_limits import request_limits
from service.ids import new_id
from service.inference import routes as inference
from service.inference.routes import CHAT_PATH, chat_completions_app
from service.jobs import routes as jobs
from service.json_bodies import BurroRequest
from service.logging import configure_logging
from service.openai_compat import files as openai_files
from service.openai_compat import jobs as openai_fine_tuning
from service.problems import (
    FINE_TUNING_PREFIXES,
    OPENAI_COMPATIBLE_PREFIXES,
    PROBLEM_JSON,
    ErrorResponses,
)
from service.queue import Queue
from service.settings import Settings
from service.tenants import KeyRing
from service.ui import routes as ui
from service.ui.sessions import add_security_headers
from service.webhooks import routes as webhooks

log = structlog.get_logger("burro.api")


class BurroApp(Litestar):
    """Litestar, with the chat path served before routing: `POST /v1/chat/completions` is the
    hot path, and its handler is a plain ASGI callable (`service.inference.routes`), so it goes
    there directly, with the request context, the metrics and the one error mapping of every
    other route. Its route stays registered for the OpenAPI document (and trailing slashes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: Settings = self.state.settings
        # The same middleware as every route (`create_app`), the limits inside the error
        # mapping so that a 431 or a 408 is answered in OpenAI's shape too.
        limited = request_limits(settings.body_idle_timeout)(chat_completions_app)
        self._chat = request_context_middleware(_mapping_errors(limited))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == CHAT_PATH:
            scope["app"] = scope["litestar_app"] = self
            scope["path_template"] = CHAT_PATH
            await self._chat(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _mapping_errors(app: ASGIApp) -> ASGIApp:
    """`app`, its errors answered by `handle_exception` (as Litestar does for its routes)."""

    async def mapped(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        # Every error gets the one mapping; nothing was sent yet (see `relay`).
        except Exception as exc:  # noqa: BLE001
            request: Request[Any, Any, Any] = BurroRequest(scope, receive)
            response = handle_exception(request, exc)
            await response.to_asgi_response(None, request)(scope, receive, send)

    return mapped


def create_app(settings: Settings, *, configure_logs: bool = True) -> Litestar:
    """Build the API for `settings`; nothing connects until the app starts."""
    if configure_logs:
        configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.redis_url is None:
            raise RuntimeError("REDIS_URL is not set (burro dev starts a Redis of its own)")
        queue = await Queue.connect(settings.redis_url)
        resources = Resources.build(settings, queue, KeyRing(queue.redis, settings.api_keys))
        app.state.resources = resources
        log.info("api.started", redis=_safe_url(settings.redis_url))
        try:
            yield
        finally:
            await resources.close()

    config = AppConfig(
        route_handlers=_route_handlers(),
        dependencies={"resources": Provide(_provide_resources, sync_to_thread=False)},
        exception_handlers={Exception: handle_exception},
        lifespan=[lifespan],
        middleware=[request_context_middleware, request_limits(settings.body_idle_timeout)],
        plugins=[ErrorResponses()],
        openapi_config=OpenAPIConfig(
            title="Burro",
            version="1",
            description=(
                "Runs OpenAI fine-tuning for other systems. The caller's guide is docs/guide.md "
                "in Burro's repository; this reference lists every operation and its answers."
            ),
            path="/openapi",
            render_plugins=render_plugins(),
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", description="Burro key")
                }
            ),
            security=[{"bearer": []}],
        ),
        state=State({"settings": settings}),
        request_class=BurroRequest,
        before_send=[add_security_headers],
    )
    return BurroApp.from_config(config)


def _route_handlers() -> list[Any]:
    return [
        redoc_script,
        health.router,
        health.metrics_endpoint,
        datasets.router,
        jobs.routers,
        webhooks.router,
        inference.router,
        aliases.router,
        evaluations.router,
        openai_files.router,
        openai_fine_tuning.router,
        ui.router,
    ]


def _provide_resources(state: State) -> Resources:
    resources: Resources = state.resources
    return resources


def _safe_url(url: str) -> str:
    # Never log a Redis password.
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """Bind a request id to every log line of a request, echo it, and log the request once."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = next(
            (v.decode() for k, v in scope["headers"] if k == b"x-request-id" and len(v) <= 128),
            None,
        ) or new_id("req_")
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        # The route's template, not its path: a label per job id would never end.
        route = scope.get("path_template") or metrics.UNMATCHED_ROUTE

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            if route != metrics.METRICS_PATH:
                metrics.observe_request(route, scope["method"], status, seconds)
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(seconds * 1000, 2),
            )

    return middleware


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The one mapping from errors to HTTP answers: problem details, or OpenAI's shape."""
    if isinstance(exc, BurroError):
        status, code, title, detail, extensions = (
            exc.status_code,
            exc.code,
            exc.title,
            exc.detail,
            exc.extensions,
        )
    elif isinstance(exc, ValidationException):
        status, code, title = 400, "bad_request", "Malformed request"
        detail = exc.detail
        extensions = {"errors": exc.extra} if exc.extra else {}
    elif isinstance(exc, HTTPException):
        status, code, title = exc.status_code, _code_for(exc.status_code), exc.detail
        detail = exc.detail
        extensions = {}
    else:
        log.exception("http.unhandled_error", path=request.url.path)
        status, code, title = 500, "internal_error", "Internal error"
        detail = "Burro failed to answer this request; it has been logged."
        extensions = {}
    headers = dict(getattr(exc, "headers", None) or {})
    path = request.url.path
    if path.startswith(OPENAI_COMPATIBLE_PREFIXES):
        message, param = detail, extensions.get("param")
        if isinstance(exc, ValidationException) and exc.extra and isinstance(exc.extra, list):
            message, param = _openai_validation_error(detail, exc.extra[0])
        about_models = not path.startswith(FINE_TUNING_PREFIXES)
        return Response(
            {"error": openai_error(status, code, message, param, about_models=about_models)},
            status_code=status,
            media_type=MediaType.JSON,
            headers=headers,
        )
    body = {"type": f"urn:burro:problem:{code}", "title": title, "status": status, "detail": detail}
    body.update(extensions)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


def _openai_validation_error(detail: str, first: Any) -> tuple[str, str | None]:
    """OpenAI's clients show only `message` and `param`: name the field in both."""
    if not isinstance(first, dict):
        return detail, None
    problem, key = str(first.get("message")), first.get("key")
    if key == "data":  # the body as a whole: the field is in msgspec's words, if anywhere
        unknown = _UNKNOWN_FIELD.search(problem)
        if unknown:
            return f"Unrecognized request argument supplied: {unknown.group(1)}", unknown.group(1)
        key = None
    if not isinstance(key, str):
        return f"{detail}: {problem}", None
    return f"Invalid {key}: {problem}", key


def openai_error(
    status: int, code: str, message: str, param: str | None = None, *, about_models: bool = True
) -> dict[str, Any]:
    """An error body in OpenAI's shape. On the chat and model paths (`about_models`) what is not
    found is a model; on the fine-tuning paths it is a file or a job, and stays `not_found`."""
    kinds = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error"}
    kind = kinds.get(status, "server_error" if status >= 500 else "invalid_request_error")
    openai_codes = {
        "unauthorized": "invalid_api_key",
        "rate_limited": "rate_limit_exceeded",
    }
    if about_models:
        openai_codes["not_found"] = "model_not_found"
    return {"message": message, "type": kind, "param": param, "code": openai_codes.get(code, code)}


def _code_for(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        415: "unsupported_media_type",
        422: "unprocessable",
        429: "rate_limited",
    }.get(status, "internal_error" if status >= 500 else "http_error")
