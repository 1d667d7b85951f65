"""Shutdown notices: a tenant hears, 30, 7 and 1 days ahead, that an alias of theirs will stop
answering on the day its model's base shuts down (`model.shutdown_approaching`).

The control worker runs `notify_shutdowns` on the clock (`service.tasks.NOTIFY_SHUTDOWNS`),
with "today" from the clock that judges retirement elsewhere (`service.models.today`; the
worker's context carries it, so a test can set the date). Each notice is one guard key and one
outbox entry written in one transaction: a notice is staged once per alias, shutdown date and
threshold however many workers run the check and however often they restart, and the
outbox (`service.effects`) then delivers it through the tenant's webhook endpoints.

Only the nearest threshold reached is sent: an alias made (or a worker back) six days before
the shutdown gets the 7-day notice, not a late 30-day one as well.
"""

from __future__ import annotations

import datetime
from typing import Literal

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import WatchError

from service import effects
from service.effects import PublishWebhook
from service.ids import new_id
from service.inference.aliases import ALIAS_TENANTS_KEY, Alias, list_aliases
from service.models import ModelTable
from service.queue import Queue
from service.store import PREFIX

log = structlog.get_logger("burro.shutdowns")

EVENT = "model.shutdown_approaching"
THRESHOLDS: tuple[int, ...] = (30, 7, 1)
# A notice's guard outlives the shutdown by this much: nothing asks about it after that.
_GUARD_MARGIN_DAYS = 30
_ALIAS_INDEX_PREFIX = f"{PREFIX}:alias-index:"
_BACKFILLED_KEY = f"{PREFIX}:alias-tenants:backfilled"


class ShutdownNotice(msgspec.Struct, frozen=True, kw_only=True):
    """The `data` of a `model.shutdown_approaching` event."""

    id: str
    object: Literal["shutdown_notice"]
    alias: str
    model: str
    base_model: str
    shutdown: datetime.date
    days_left: int
    threshold_days: int
    rescue_url: str


_ENCODE = msgspec.json.Encoder()


def due_threshold(
    shutdown: datetime.date, today: datetime.date, thresholds: tuple[int, ...] = THRESHOLDS
) -> int | None:
    """The notice due on `today` for a model that shuts down on `shutdown`: the smallest
    threshold (in days) that the days left have reached; None before the largest, and from
    the shutdown day on (there is nothing left to warn of)."""
    left = (shutdown - today).days
    if left <= 0:
        return None
    reached = [t for t in thresholds if left <= t]
    return min(reached) if reached else None


def guard_key(tenant: str, alias: str, shutdown: datetime.date, threshold: int) -> str:
    """Set once the notice for this alias, shutdown date and threshold has been staged."""
    return f"{PREFIX}:shutdown-notices:{tenant}:{alias}:{shutdown.isoformat()}:{threshold}"


async def _tenants_with_aliases(redis: Redis) -> list[str]:
    """The tenants with aliases: one set, kept by every alias write. Aliases written before
    that set existed are found once, by a scan of their indexes, and added to it."""
    if not await redis.exists(_BACKFILLED_KEY):
        found = [
            (key.decode() if isinstance(key, bytes) else str(key)).removeprefix(_ALIAS_INDEX_PREFIX)
            async for key in redis.scan_iter(match=f"{_ALIAS_INDEX_PREFIX}*", count=1000)
        ]
        async with redis.pipeline(transaction=True) as pipe:
            if found:
                pipe.sadd(ALIAS_TENANTS_KEY, *found)
            pipe.set(_BACKFILLED_KEY, 1)
            await pipe.execute()
    members = await redis.smembers(ALIAS_TENANTS_KEY)  # type: ignore[misc]
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


async def _stage_notice(
    redis: Redis, alias: Alias, notice: ShutdownNotice, today: datetime.date
) -> bool:
    """Write the notice's guard and its outbox entry together, unless the guard is there
    (another worker, or an earlier run, staged it). True when this call staged it."""
    guard = guard_key(alias.tenant, alias.name, notice.shutdown, notice.threshold_days)
    expires = (notice.shutdown - today).days + _GUARD_MARGIN_DAYS
    entry = effects.new_entry(
        notice.id,
        EVENT,
        [
            PublishWebhook(
                tenant=alias.tenant,
                subject=notice.id,
                event_type=EVENT,
                data=_ENCODE.encode(notice),
            )
        ],
    )
    async with redis.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(guard)
            if await pipe.exists(guard):
                await pipe.reset()  # type: ignore[no-untyped-call]
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(guard, notice.id, ex=max(1, expires) * 86_400)
            effects.stage(pipe, entry)
            await pipe.execute()
        except WatchError:  # staged by another worker meanwhile
            return False
    return True


async def notify_shutdowns(
    redis: Redis, queue: Queue, models: ModelTable, today: datetime.date, rescue_url: str
) -> int:
    """Stage the shutdown notices due on `today` for every tenant's aliases; how many were
    staged by this call (each one once, whoever runs it)."""
    staged = 0
    for tenant in await _tenants_with_aliases(redis):
        for alias in await list_aliases(redis, tenant):
            shutdown = models.shutdown(alias.model, alias.base_model)
            if shutdown is None:
                continue
            threshold = due_threshold(shutdown, today)
            if threshold is None:
                continue
            notice = ShutdownNotice(
                id=new_id("notice_"),
                object="shutdown_notice",
                alias=alias.name,
                model=alias.model,
                base_model=alias.base_model,
                shutdown=shutdown,
                days_left=(shutdown - today).days,
                threshold_days=threshold,
                rescue_url=rescue_url,
            )
            if await _stage_notice(redis, alias, notice, today):
                staged += 1
                log.info(
                    "shutdown.notice_staged",
                    tenant=tenant,
                    alias=alias.name,
                    shutdown=shutdown.isoformat(),
                    threshold_days=threshold,
                )
    if staged:
        await effects.trigger(queue)
    return staged
