"""`/v1/webhook-endpoints` and `/v1/webhook-messages`: subscriptions, and what was sent where."""

from __future__ import annotations

from typing import Annotated

import structlog
from litestar import Router, delete, get, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from service.context import Tenant, UsesResources, provide_tenant
from service.errors import Unprocessable
from service.ids import new_id
from service.store import now
from service.webhooks.addresses import resolve_public
from service.webhooks.outbox import endpoints, messages, page_for_job, redeliver
from service.webhooks.records import (
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookMessageList,
    WebhookMessageOut,
)
from service.webhooks.signing import new_secret

log = structlog.get_logger("burro.webhooks")

# Every endpoint receives every event it subscribes to: the cap bounds one event's fan-out.
MAX_ENDPOINTS_PER_TENANT = 20

# Every body here is a small JSON object.
_MAX_BODY = 64 * 1024

Limit = Annotated[int, QueryParameter(ge=1, le=100)]


@post("/webhook-endpoints", status_code=201, summary="Subscribe a URL to job events")
async def create_endpoint(
    resources: UsesResources, tenant: Tenant, data: JSONBody[WebhookEndpointCreate]
) -> WebhookEndpointOut:
    settings = resources.settings
    # 422 for a URL that is not public (or does not resolve), before anything is stored.
    await resolve_public(data.url, allow_private=settings.webhook_allow_private)
    collection = endpoints(resources.redis)
    if await resources.redis.zcard(collection.index_key(tenant)) >= MAX_ENDPOINTS_PER_TENANT:
        raise Unprocessable(
            f"A tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints; delete one first."
        )
    endpoint = WebhookEndpoint(
        id=new_id("whe_"),
        tenant=tenant,
        url=data.url,
        events=tuple(dict.fromkeys(data.events)) or ("*",),
        description=data.description,
        secret=new_secret(),
        created_at=now(),
    )
    await collection.save(endpoint)
    log.info("webhook_endpoint.created", endpoint=endpoint.id, tenant=tenant)
    return WebhookEndpointOut.of(endpoint, show_secret=True)


@get("/webhook-endpoints", summary="List webhook endpoints, newest first")
async def list_endpoints(
    resources: UsesResources,
    tenant: Tenant,
    limit: Limit = 20,
    after: FromQuery[str | None] = None,
) -> WebhookEndpointList:
    page = await endpoints(resources.redis).page(tenant, limit=limit, after=after)
    return WebhookEndpointList(
        object="list", data=[WebhookEndpointOut.of(e) for e in page.data], has_more=page.has_more
    )


@get("/webhook-endpoints/{endpoint_id:str}", summary="Get a webhook endpoint (never its secret)")
async def get_endpoint(
    resources: UsesResources, tenant: Tenant, endpoint_id: FromPath[str]
) -> WebhookEndpointOut:
    return WebhookEndpointOut.of(await endpoints(resources.redis).get_for(tenant, endpoint_id))


@delete(
    "/webhook-endpoints/{endpoint_id:str}",
    summary="Delete a webhook endpoint; its undelivered messages are not sent",
)
async def delete_endpoint(
    resources: UsesResources, tenant: Tenant, endpoint_id: FromPath[str]
) -> None:
    collection = endpoints(resources.redis)
    await collection.delete(await collection.get_for(tenant, endpoint_id))
    log.info("webhook_endpoint.deleted", endpoint=endpoint_id, tenant=tenant)


@get("/webhook-messages", summary="List webhook messages with their attempts, newest first")
async def list_messages(
    resources: UsesResources,
    tenant: Tenant,
    job: FromQuery[str | None] = None,
    limit: Limit = 20,
    after: FromQuery[str | None] = None,
) -> WebhookMessageList:
    if job is None:
        page = await messages(resources.redis).page(tenant, limit=limit, after=after)
    else:
        page = await page_for_job(resources.redis, tenant, job, limit=limit, after=after)
    return WebhookMessageList(
        object="list", data=[WebhookMessageOut.of(m) for m in page.data], has_more=page.has_more
    )


@get("/webhook-messages/{message_id:str}", summary="Get a webhook message with its attempts")
async def get_message(
    resources: UsesResources, tenant: Tenant, message_id: FromPath[str]
) -> WebhookMessageOut:
    return WebhookMessageOut.of(await messages(resources.redis).get_for(tenant, message_id))


@post(
    "/webhook-messages/{message_id:str}/redeliver",
    status_code=202,
    summary="Send a message again (same webhook-id, same body), from a new series of attempts",
)
async def redeliver_message(
    resources: UsesResources, tenant: Tenant, message_id: FromPath[str]
) -> WebhookMessageOut:
    message = await redeliver(resources.redis, resources.queue, tenant, message_id)
    return WebhookMessageOut.of(message)


router = Router(
    path="/v1",
    route_handlers=[
        create_endpoint,
        list_endpoints,
        get_endpoint,
        delete_endpoint,
        list_messages,
        get_message,
        redeliver_message,
    ],
    dependencies={"tenant": Provide(provide_tenant)},
    request_max_body_size=_MAX_BODY,
    tags=["webhooks"],
)
