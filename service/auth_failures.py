"""Wrong API keys, limited per client address: guessing keys is slow, and costs Burro little.

Every presented key that is not known books one failure against the client's address in the
same GCRA as the tenants' limit (`service.limits`), here `auth_failures_per_minute` on average
with a burst of `auth_failure_burst`. Over it, the address is answered 429 with `Retry-After`
for every request, the right key included (else a guesser would still learn which key is
right, at full speed), until it has waited. The block is also kept in this process, so a
blocked address costs no Redis round trip; another replica learns of it at the address' next
failure there. A missing header is not a guess and is not counted. When Redis is away, failures
are not counted (a 401 stays a 401).
"""

from __future__ import annotations

import math
import time

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import metrics
from service.errors import Unauthorized
from service.limits import RateLimited, RateLimiter
from service.tenants import KeyRing

log = structlog.get_logger("burro.auth")

# A process remembers at most this many blocked addresses (an attacker with many addresses
# only makes the oldest entries fall out: they are then checked in Redis again).
_MAX_BLOCKED = 10_000


class TooManyFailedKeys(RateLimited):
    title = "Too many wrong API keys"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            retry_after,
            f"Too many wrong API keys from this address; retry after {retry_after} s.",
        )


class FailedKeyLimiter:
    """Counts wrong keys per client address and blocks an address that sends too many."""

    def __init__(self, redis: Redis | None, per_minute: float, burst: int) -> None:
        self._meter = RateLimiter(redis, per_minute / 60, burst, namespace="auth-failures")
        self._blocked: dict[str, float] = {}  # address -> monotonic time the block ends

    @classmethod
    def off(cls) -> FailedKeyLimiter:
        return cls(None, 0, 1)

    def check(self, address: str | None) -> None:
        """Raise TooManyFailedKeys while `address` is blocked (no Redis round trip)."""
        if address is None:
            return
        until = self._blocked.get(address)
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return
        raise TooManyFailedKeys(max(1, math.ceil(left)))

    async def failed(self, address: str | None) -> None:
        """Book a wrong key from `address`; raise TooManyFailedKeys once it is over its limit."""
        if address is None or not self._meter.enabled:
            return
        try:
            wait = await self._meter.wait_for(address)
        except RedisError as exc:
            log.warning("auth_failures.unavailable", error=type(exc).__name__)
            return
        if wait <= 0:
            return
        if len(self._blocked) >= _MAX_BLOCKED:
            self._blocked.pop(next(iter(self._blocked)))
        self._blocked[address] = time.monotonic() + wait
        metrics.count_rate_limited()
        log.warning("auth_failures.blocked", client=address, seconds=round(wait, 1))
        raise TooManyFailedKeys(max(1, math.ceil(wait)))


async def tenant_for(
    keys: KeyRing, failures: FailedKeyLimiter, authorization: str | None, address: str | None
) -> str:
    """The tenant behind `authorization` (401), unless `address` sent too many wrong keys (429)."""
    failures.check(address)
    try:
        return await keys.tenant_for(authorization)
    except Unauthorized:
        if authorization:  # a key was presented and is wrong: a guess
            await failures.failed(address)
        raise
