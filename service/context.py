"""What a request handler needs, made once at start-up: settings, Redis, the queue, tenants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from redis.asyncio import Redis

from service.auth_failures import FailedKeyLimiter, tenant_for
from service.inference.captures import CaptureRecorder
from service.inference.proxy import Upstream
from service.inference.usage import UsageMeter
from service.limits import RateLimiter
from service.models import ModelTable, today
from service.providers import Providers
from service.queue import Queue
from service.settings import Settings
from service.tenants import KeyRing

__all__ = [
    "Resources",
    "Tenant",
    "UsesResources",
    "authenticate",
    "identify",
    "provide_tenant",
    "today",
]


@dataclass
class Resources:
    """Long-lived clients shared by every request of one process."""

    settings: Settings
    queue: Queue
    keys: KeyRing
    models: ModelTable
    # Upstream clients for the few calls the API makes itself (pausing and resuming a job).
    providers: Providers
    # The chat path's upstream HTTP client and usage counters (service.inference).
    upstream: Upstream = field(default_factory=Upstream)
    usage: UsageMeter = field(default_factory=UsageMeter)
    captures: CaptureRecorder = field(default_factory=CaptureRecorder)
    limiter: RateLimiter = field(default_factory=RateLimiter.off)
    failed_keys: FailedKeyLimiter = field(default_factory=FailedKeyLimiter.off)

    @classmethod
    def build(cls, settings: Settings, queue: Queue, keys: KeyRing) -> Resources:
        return cls(
            settings=settings,
            queue=queue,
            keys=keys,
            models=ModelTable.load(settings.models_file),
            limiter=RateLimiter(queue.redis, settings.rate_limit, settings.rate_limit_burst),
            failed_keys=FailedKeyLimiter(
                queue.redis, settings.auth_failures_per_minute, settings.auth_failure_burst
            ),
            providers=Providers(settings),
        )

    @property
    def redis(self) -> Redis:
        return self.queue.redis

    async def close(self) -> None:
        await self.providers.close()
        await self.usage.close()
        await self.captures.close()
        await self.upstream.close()
        await self.queue.close()


# Handler parameters filled by dependency injection: `resources: UsesResources, tenant: Tenant`.
UsesResources = NamedDependency[Resources]
Tenant = NamedDependency[str]


async def provide_tenant(request: Request[Any, Any, Any], resources: UsesResources) -> str:
    """The tenant behind the request's bearer key (401 otherwise), within its rate limit (429)."""
    client = request.client.host if request.client else None
    return await authenticate(resources, request.headers.get("authorization"), client)


async def authenticate(
    resources: Resources, authorization: str | None, client: str | None = None
) -> str:
    """The tenant that owns the key in `authorization` (`identify`), booked against its rate
    limit (429): for handlers that read the header themselves, like the UI's sign-in."""
    tenant = await identify(resources, authorization, client)
    await resources.limiter.check(tenant)
    return tenant


async def identify(resources: Resources, authorization: str | None, client: str | None) -> str:
    """The tenant that owns the key in `authorization` (401; 429 after too many wrong keys from
    `client`, the caller's address), not yet booked against its rate limit: the chat path books
    it together with its model look-up (`RateLimiter.check_and_read`). A known key costs no
    Redis round trip; only a wrong one is counted, against the address."""
    return await tenant_for(resources.keys, resources.failed_keys, authorization, client)
