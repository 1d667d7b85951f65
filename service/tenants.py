"""Tenants and their API keys: every request names its tenant by a bearer key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from redis.asyncio import Redis

from service.errors import Unauthorized
from service.store import PREFIX

KEY_PREFIX = "bk_"
# Positive look-ups are cached briefly: the chat path must not pay a Redis round trip each time.
_CACHE_SECONDS = 60.0


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _key_record(digest: str) -> str:
    return f"{PREFIX}:api-keys:{digest}"


async def create_key(redis: Redis, tenant: str) -> str:
    """Make a new key for `tenant`; only its hash is stored, so it is shown once."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await redis.set(_key_record(_digest(key)), tenant)
    return key


class KeyRing:
    """Resolves bearer keys to tenants: development keys from settings, then stored hashes."""

    def __init__(self, redis: Redis, dev_keys: tuple[tuple[str, str], ...]) -> None:
        self.redis = redis
        self._dev = {_digest(key): tenant for tenant, key in dev_keys}
        self._cache: dict[str, tuple[str, float]] = {}

    async def tenant_for(self, authorization: str | None) -> str:
        """The tenant that owns the key in an `Authorization: Bearer` header, or Unauthorized."""
        if not authorization:
            raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
        digest = _digest(key)
        for known, tenant in self._dev.items():
            if hmac.compare_digest(known, digest):
                return tenant
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        stored = await self.redis.get(_key_record(digest))
        if stored is None:
            raise Unauthorized("Unknown API key.")
        tenant = stored.decode() if isinstance(stored, bytes) else str(stored)
        self._cache[digest] = (tenant, now + _CACHE_SECONDS)
        return tenant
