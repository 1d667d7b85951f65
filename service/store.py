"""Redis as the store of record: msgspec-encoded records, per-tenant indexes, pages."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import msgspec
from redis.asyncio import Redis

from service.errors import NotFound

T = TypeVar("T", bound=msgspec.Struct)

PREFIX = "burro"


def now() -> int:
    """Unix seconds, the unit of every time on the wire."""
    return int(time.time())


class Page(msgspec.Struct, Generic[T]):
    """One page of a list, newest first."""

    data: list[T]
    has_more: bool


class Collection(Generic[T]):
    """The records of one kind, keyed by id, indexed per tenant by creation time.

    Records must have `id`, `tenant` and `created_at` fields.
    """

    def __init__(self, redis: Redis, name: str, record_type: type[T]) -> None:
        self.redis = redis
        self.name = name
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(record_type)

    def key(self, record_id: str) -> str:
        return f"{PREFIX}:{self.name}:{record_id}"

    def index_key(self, tenant: str) -> str:
        return f"{PREFIX}:{self.name}:by-tenant:{tenant}"

    def encode(self, record: T) -> bytes:
        return self._encoder.encode(record)

    def decode(self, raw: bytes) -> T:
        return self._decoder.decode(raw)

    async def get(self, record_id: str) -> T | None:
        raw = await self.redis.get(self.key(record_id))
        return None if raw is None else self._decoder.decode(raw)

    async def get_many(self, record_ids: Sequence[str]) -> list[T | None]:
        if not record_ids:
            return []
        raws = await self.redis.mget([self.key(i) for i in record_ids])
        return [None if raw is None else self._decoder.decode(raw) for raw in raws]

    async def get_for(self, tenant: str, record_id: str) -> T:
        """The tenant's record, or NotFound (also for another tenant's id: never reveal it)."""
        record = await self.get(record_id)
        if record is None or getattr(record, "tenant", None) != tenant:
            raise NotFound(f"No {self.name.rstrip('s')} {record_id!r}.")
        return record

    async def save(self, record: T) -> None:
        """Write the record and index it under its tenant."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.key(record.id), self.encode(record))  # type: ignore[attr-defined]
            pipe.zadd(
                self.index_key(record.tenant),  # type: ignore[attr-defined]
                {record.id: record.created_at},  # type: ignore[attr-defined]
                nx=True,
            )
            await pipe.execute()

    async def delete(self, record: T) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key(record.id))  # type: ignore[attr-defined]
            pipe.zrem(self.index_key(record.tenant), record.id)  # type: ignore[attr-defined]
            await pipe.execute()

    async def page(
        self,
        tenant: str,
        *,
        limit: int = 20,
        after: str | None = None,
        where: Callable[[T], bool] | None = None,
    ) -> Page[T]:
        """Newest first; `after` is the id of the last record of the previous page."""
        index = self.index_key(tenant)
        start = 0
        if after is not None:
            rank = await self.redis.zrevrank(index, after)
            if rank is None:
                raise NotFound(f"No {self.name.rstrip('s')} {after!r} to page after.")
            start = int(rank) + 1
        found: list[T] = []
        batch = max(limit + 1, 50)
        while len(found) <= limit:
            ids = [
                i.decode() if isinstance(i, bytes) else i
                for i in await self.redis.zrevrange(index, start, start + batch - 1)
            ]
            if not ids:
                break
            start += len(ids)
            for record in await self.get_many(ids):
                if record is not None and (where is None or where(record)):
                    found.append(record)
        return Page(data=found[:limit], has_more=len(found) > limit)
