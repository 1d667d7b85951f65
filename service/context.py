"""What a request handler needs, made once at start-up: settings, Redis, the queue, tenants."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from redis.asyncio import Redis

from service.models import ModelTable
from service.queue import Queue
from service.settings import Settings
from service.tenants import KeyRing


@dataclass
class Resources:
    """Long-lived clients shared by every request of one process."""

    settings: Settings
    queue: Queue
    keys: KeyRing
    models: ModelTable

    @classmethod
    def build(cls, settings: Settings, queue: Queue, keys: KeyRing) -> Resources:
        return cls(
            settings=settings, queue=queue, keys=keys, models=ModelTable.load(settings.models_file)
        )

    @property
    def redis(self) -> Redis:
        return self.queue.redis

    async def close(self) -> None:
        await self.queue.close()


# Handler parameters filled by dependency injection: `resources: UsesResources, tenant: Tenant`.
UsesResources = NamedDependency[Resources]
Tenant = NamedDependency[str]


def today() -> datetime.date:
    """Today's date in UTC, the one clock model retirement is judged by."""
    return datetime.datetime.now(datetime.UTC).date()


async def provide_tenant(request: Request[Any, Any, Any], resources: UsesResources) -> str:
    """The tenant behind the request's bearer key (401 otherwise)."""
    return await resources.keys.tenant_for(request.headers.get("authorization"))
