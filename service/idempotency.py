"""`Idempotency-Key`: the same key and body within 24 hours answers the first response again."""

from __future__ import annotations

import hashlib

import msgspec
from redis.asyncio import Redis

from service.errors import BadRequest, Conflict
from service.store import PREFIX

TTL_SECONDS = 24 * 3600
# A request still running under a key holds it this long at most (then it may be retried).
_PENDING_SECONDS = 300


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    fingerprint: str
    status_code: int = 0  # 0 while the first request is still running
    body: bytes = b""


_decoder = msgspec.msgpack.Decoder(StoredResponse)


def fingerprint(*parts: bytes | str) -> str:
    """A digest of what makes two requests 'the same body'."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


class IdempotencyKeys:
    """Remembers responses per (tenant, operation, key)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def _key(self, tenant: str, operation: str, key: str) -> str:
        return f"{PREFIX}:idempotency:{tenant}:{operation}:{key}"

    async def begin(
        self, tenant: str, operation: str, key: str, request_fingerprint: str
    ) -> StoredResponse | None:
        """Claim `key` for this request, or return the first response to replay.

        Raises Conflict when the key was used with another body, or is still in flight.
        """
        if not key or len(key) > 255:
            raise BadRequest("Idempotency-Key must be 1 to 255 characters.")
        redis_key = self._key(tenant, operation, key)
        pending = msgspec.msgpack.encode(StoredResponse(fingerprint=request_fingerprint))
        if await self.redis.set(redis_key, pending, nx=True, ex=_PENDING_SECONDS):
            return None
        raw = await self.redis.get(redis_key)
        if raw is None:  # expired between the two calls: claim it again
            return await self.begin(tenant, operation, key, request_fingerprint)
        stored = _decoder.decode(raw)
        if stored.fingerprint != request_fingerprint:
            raise Conflict(
                "This Idempotency-Key was already used with another request body.",
                code="idempotency_key_reused",
            )
        if stored.status_code == 0:
            raise Conflict("A request with this Idempotency-Key is still in progress; retry.")
        return stored

    async def finish(
        self,
        tenant: str,
        operation: str,
        key: str,
        request_fingerprint: str,
        status: int,
        body: bytes,
    ) -> None:
        stored = StoredResponse(fingerprint=request_fingerprint, status_code=status, body=body)
        await self.redis.set(
            self._key(tenant, operation, key), msgspec.msgpack.encode(stored), ex=TTL_SECONDS
        )

    async def abandon(self, tenant: str, operation: str, key: str) -> None:
        """Release the key after a failed request so that a retry can run."""
        await self.redis.delete(self._key(tenant, operation, key))
