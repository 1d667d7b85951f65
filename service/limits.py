"""Per-tenant request rate limits: every authenticated request passes here after its key.

A GCRA (generic cell rate algorithm, the "leaky bucket as a meter") in one Lua script: one Redis
round trip, one small key per tenant, atomic across every API replica, with Redis' own clock so
replicas never disagree. The chat path books its request and looks up its model in the same
round trip (`check_and_read`).

Litestar's `RateLimitMiddleware` was the first choice but does not fit: it reads then writes a
JSON list of timestamps (two round trips, racy across replicas), holds one process-wide lock
around them (every tenant's requests queue behind each other), knows no burst, and sends no
`Retry-After`.
"""

from __future__ import annotations

import math

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import metrics
from service.errors import BurroError
from service.store import PREFIX

log = structlog.get_logger("burro.limits")

# KEYS[1]: the tenant's theoretical arrival time (TAT), in microseconds of Redis' clock.
# ARGV[1]: the emission interval (µs per request); ARGV[2]: the burst tolerance (µs).
# Sets `wait` to 0 when the request may pass (and books it), else to the microseconds to wait.
_GCRA_STEP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then
  wait = math.ceil(wait)
else
  wait = 0
  local new_tat = tat + interval
  local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
end
"""
_GCRA = _GCRA_STEP + "return wait\n"
# The same, then (when the request may pass) the fields ARGV[3..] of the hash KEYS[2]: the chat
# path's rate limit and model look-up in one round trip. Returns {wait, field values...}.
_GCRA_THEN_HMGET = (
    _GCRA_STEP
    + """
if wait > 0 then return {wait} end
local found = redis.call('HMGET', KEYS[2], unpack(ARGV, 3))
table.insert(found, 1, 0)
return found
"""
)


class RateLimited(BurroError):
    status_code = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(
            detail
            or f"This tenant sends more requests than its limit; retry after {retry_after} s.",
            retry_after=retry_after,
        )
        # handle_exception sends an exception's `headers`.
        self.headers = {"Retry-After": str(retry_after)}


class RateLimiter:
    """Allows each tenant `rate` requests per second on average, `burst` at once."""

    def __init__(
        self, redis: Redis | None, rate: float, burst: int, *, namespace: str = "rate"
    ) -> None:
        """`namespace` keeps the keys of one limit apart from another's in Redis."""
        self._namespace = namespace
        self.enabled = redis is not None and rate > 0
        self.rate = rate
        self.burst = max(burst, 1)
        self._interval_us = round(1_000_000 / rate) if self.enabled else 0
        self._tolerance_us = self._interval_us * (self.burst - 1)
        self._redis = redis
        self._script = redis.register_script(_GCRA) if redis is not None else None
        self._read_script = redis.register_script(_GCRA_THEN_HMGET) if redis is not None else None

    def _key(self, tenant: str) -> str:
        return f"{PREFIX}:{self._namespace}:{tenant}"

    @classmethod
    def off(cls) -> RateLimiter:
        """A limiter that lets everything pass."""
        return cls(None, 0, 1)

    async def wait_for(self, tenant: str) -> float:
        """Book one request for `tenant`: 0.0 if it may pass now, else the seconds to wait."""
        if self._script is None or not self.enabled:
            return 0.0
        wait_us = await self._script(
            keys=[self._key(tenant)], args=[self._interval_us, self._tolerance_us]
        )
        return int(wait_us) / 1_000_000

    async def check_and_read(self, tenant: str, key: str, fields: list[str]) -> list[bytes | None]:
        """`check` the tenant's limit (RateLimited when over) and read `fields` of the hash
        `key`, in one round trip. Without a limit (or when the limit's script fails), a plain
        HMGET."""
        if self._redis is None:
            raise RuntimeError("a limiter without Redis reads nothing")
        if self.enabled and self._read_script is not None:
            try:
                found = await self._read_script(
                    keys=[self._key(tenant), key],
                    args=[self._interval_us, self._tolerance_us, *fields],
                )
            except RedisError as exc:
                log.warning("rate_limit.unavailable", error=type(exc).__name__)
            else:
                if int(found[0]) > 0:
                    self._refuse(int(found[0]) / 1_000_000)
                return list(found[1:])
        values: list[bytes | None] = await self._redis.hmget(key, fields)  # type: ignore[misc]
        return values

    def _refuse(self, wait: float) -> None:
        metrics.count_rate_limited()
        raise RateLimited(retry_after=max(1, math.ceil(wait)))

    async def check(self, tenant: str) -> None:
        """Raise RateLimited (429, `Retry-After`) when `tenant` is over its limit.

        When Redis fails, the request passes: a limit is no reason to turn an outage of the
        store into an outage of the chat path, which can answer from cached keys.
        """
        if not self.enabled:
            return
        try:
            wait = await self.wait_for(tenant)
        except RedisError as exc:
            log.warning("rate_limit.unavailable", error=type(exc).__name__)
            return
        if wait > 0:
            self._refuse(wait)
