"""`/v1/chat/completions`, `/v1/models` and `/v1/usage`: the OpenAI-compatible front door.

The chat route is the hot path: a plain ASGI callable (`chat_completions_app`) that the app
calls before routing (`service.app.BurroApp`), so no routing, dependency injection, body
parsing or response machinery runs per request; its Litestar route (which hands back the same
callable) keeps it in the OpenAPI document. Errors raised before the answer starts still go
through the app's one error mapping, in OpenAI's shape for these paths.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from litestar import Request, Router, get, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, FromQuery
from litestar.types import ASGIApp, Receive, Scope, Send

from service.context import (
    Resources,
    Tenant,
    UsesResources,
    identify,
    provide_tenant,
    today,
)
from service.errors import PayloadTooLarge
from service.inference.captures import CaptureLimits
from service.inference.catalog import ModelNotFound, Target, entries, resolve
from service.inference.missing_models import explain_missing_model
from service.inference.proxy import Capture, read_head, relay, rewrite
from service.inference.usage import UsageReport, usage_report
from service.problems import OpenAIErrorBody

CHAT_PATH = "/v1/chat/completions"
# Chat bodies carry images as base64 at most; anything larger is a mistake.
MAX_CHAT_BODY_BYTES = 32 * 1024 * 1024


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    message: Any = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        part: bytes = message.get("body", b"")
        size += len(part)
        if size > MAX_CHAT_BODY_BYTES:
            raise PayloadTooLarge(f"The request body is over {MAX_CHAT_BODY_BYTES} bytes.")
        parts.append(part)
    return b"".join(parts)


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


async def _explained(resources: Resources, tenant: str, name: str) -> ModelNotFound:
    return await explain_missing_model(
        resources.redis, resources.settings, resources.models, tenant, name, today()
    )


async def chat_completions_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Authenticate, book the request against the rate limit and resolve the model (one Redis
    round trip), rewrite the model, and relay the upstream's answer."""
    started = time.perf_counter()
    resources: Resources = scope["litestar_app"].state.resources
    client = scope.get("client")
    tenant = await identify(resources, _authorization(scope), client[0] if client else None)
    body = await _read_body(scope, receive)
    head = read_head(body)
    try:
        target = await resolve(
            resources.redis,
            resources.settings,
            tenant,
            head.model,
            limiter=resources.limiter,
            models=resources.models,
        )
    except ModelNotFound:
        raise await _explained(resources, tenant, head.model) from None
    endpoint = resources.upstream.endpoint(
        resources.settings.provider(target.provider), target.provider, target.model
    )
    payload = rewrite(body, head, target.model)
    redis, usage = resources.redis, resources.usage

    def account(prompt_tokens: int, completion_tokens: int) -> None:
        usage.record(
            redis, tenant, target.model, target.base_model, prompt_tokens, completion_tokens
        )

    capture: Capture | None = None
    if target.capture_max_examples:
        # Only aliases that capture pay for it, and only once their answer is out.
        limits = CaptureLimits(target.capture_max_examples, target.capture_max_age_days)
        recorder, alias = resources.captures, head.model

        def capture(answer: bytes) -> None:
            recorder.record(
                redis,
                tenant=tenant,
                alias=alias,
                limits=limits,
                body=body,
                answer=answer,
                model=target.model,
                stream=bool(head.stream),
            )

    await relay(
        resources.upstream,
        endpoint,
        payload,
        head,
        receive,
        send,
        started=started,
        account=account,
        capture=capture,
    )


_CHAT_BODY = RequestBody(
    required=True,
    description=(
        "The body of OpenAI's Chat Completions API. `model` is one of your fine-tuned models, "
        "a job id, one of your aliases, or an allowed base model."
    ),
    content={
        "application/json": OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                required=["model", "messages"],
                properties={
                    "model": Schema(type=OpenAPIType.STRING),
                    "messages": Schema(
                        type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT)
                    ),
                    "stream": Schema(type=OpenAPIType.BOOLEAN),
                },
            )
        )
    },
)


@dataclass
class ChatOperation(Operation):
    """Documents the body, which the ASGI callable reads itself (Litestar passes None)."""

    def __post_init__(self) -> None:
        if self.request_body is None:
            self.request_body = _CHAT_BODY


@post(
    "/chat/completions",
    status_code=200,
    operation_class=ChatOperation,
    summary="Chat with a fine-tuned model, by model, job id or alias (OpenAI-compatible)",
    description=(
        "Relays to the model's provider: a JSON chat completion, or with `stream: true` "
        "server-sent events as they come. The header `x-burro-overhead-ms` is the time Burro "
        "added. Errors come in OpenAI's shape."
    ),
    responses={
        # No generated examples: polyfactory's random ones made the committed document depend
        # on what else the process had generated before it.
        status: ResponseSpec(
            data_container=OpenAIErrorBody, description=text, generate_examples=False
        )
        for status, text in (
            (400, "Malformed body"),
            (401, "Missing or unknown key"),
            (404, "Not one of your models (code model_not_found)"),
            (502, "Upstream unreachable"),
            (504, "Upstream timed out"),
        )
    },
    tags=["inference"],
)
async def chat_completions(request: Request[Any, Any, Any]) -> ASGIApp:
    return chat_completions_app


class Model(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's model object, and the day it stops answering (`shutdown`: its base model's
    shutdown for a fine-tuned model or an alias; null when none is announced)."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    shutdown: datetime.date | None = None


class ModelList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[Model]


@get("/models", summary="The models you can chat with: fine-tuned models and aliases")
async def list_models(resources: UsesResources, tenant: Tenant) -> ModelList:
    models, aliases = await entries(resources.redis, tenant)
    table = resources.models

    def model(name: str, target: Target) -> Model:
        return Model(
            id=name,
            object="model",
            created=target.created,
            owned_by=tenant,
            shutdown=table.shutdown(target.model, target.base_model),
        )

    data = [model(n, t) for n, t in sorted(models.items(), key=lambda kv: -kv[1].created)]
    data += [model(n, t) for n, t in sorted(aliases.items())]
    data += [
        Model(id=name, object="model", created=0, owned_by="system", shutdown=table.shutdown(name))
        for name in resources.settings.allowed_base_models
    ]
    data += [
        Model(id=info.name, object="model", created=0, owned_by="burro")
        for info in resources.models
        if info.weights is not None and info.provider is not None
    ]
    return ModelList(object="list", data=data)


@get("/models/{model_id:str}", summary="One model you can chat with")
async def retrieve_model(
    resources: UsesResources, tenant: Tenant, model_id: FromPath[str]
) -> Model:
    try:
        target = await resolve(
            resources.redis, resources.settings, tenant, model_id, models=resources.models
        )
    except ModelNotFound:
        raise await _explained(resources, tenant, model_id) from None
    owner = "system" if target.job_id is None else tenant
    return Model(
        id=model_id,
        object="model",
        created=target.created,
        owned_by=owner,
        shutdown=resources.models.shutdown(target.model, target.base_model),
    )


@get(
    "/usage",
    summary="Tokens in and out per model and day, with their cost; training spend per month",
)
async def get_usage(
    resources: UsesResources,
    tenant: Tenant,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> UsageReport:
    return await usage_report(resources.redis, resources.models, tenant, start, end)


router = Router(
    path="/v1",
    route_handlers=[chat_completions, list_models, retrieve_model, get_usage],
    dependencies={"tenant": Provide(provide_tenant)},
    tags=["inference"],
)
