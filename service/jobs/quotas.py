"""Job → limits at creation: unfinished jobs per tenant and the tenant's monthly training budget.

Both are checked and reserved in one Lua script, so concurrent creates cannot both take the last
slot or the last dollars. The reservation is made before the job is stored and released if
storing fails; Idempotency-Key replays answer before it, so they never count twice.

Spend is the sum of the estimates (`estimated_cost_usd`) of the jobs created in the calendar
month (UTC), kept in one counter per tenant and month. A job that ends `cancelled` or `failed`
before any upstream job existed gives its estimate back: nothing was trained, nothing billed. A
job that reached the upstream keeps it, since the upstream bills what it trained. A job without
an estimate (a model missing from the dataset's estimates) counts as 0.
"""

from __future__ import annotations

import datetime as dt

from redis.asyncio import Redis

from service.errors import Unprocessable
from service.jobs.records import Job
from service.settings import Settings
from service.store import PREFIX

# A month's counter is kept a year, long enough to answer questions about last month's spend.
_SPEND_TTL_SECONDS = 366 * 24 * 3600
# Cents are the unit of the estimates: a float sum may be off by far less than that.
_EPSILON = 1e-6


class TooManyActiveJobs(Unprocessable):
    code = "too_many_active_jobs"
    title = "Too many active jobs"


class BudgetExceeded(Unprocessable):
    code = "budget_exceeded"
    title = "Monthly budget exceeded"


def tenant_unfinished_key(tenant: str) -> str:
    """Set of the tenant's jobs that are not terminal (the per-tenant part of UNFINISHED_KEY)."""
    return f"{PREFIX}:jobs:unfinished:{tenant}"


def spend_key(tenant: str, created_at: int) -> str:
    """The tenant's estimated training spend, in USD, for the UTC month of `created_at`."""
    month = dt.datetime.fromtimestamp(created_at, dt.UTC).strftime("%Y-%m")
    return f"{PREFIX}:jobs:spend:{tenant}:{month}"


# KEYS: the tenant's unfinished set, its spend counter for the month.
# ARGV: job id, max active (0: none), budget (0: none), the job's estimate, the counter's TTL.
# Returns {outcome, active count, spend before} (numbers as strings: Lua truncates floats).
_RESERVE = """
local active = redis.call('scard', KEYS[1])
local spent = tonumber(redis.call('get', KEYS[2]) or '0')
local limit, budget, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('sismember', KEYS[1], ARGV[1]) == 1 then
  return {'ok', tostring(active), tostring(spent)}
end
if limit > 0 and active >= limit then
  return {'too_many_active_jobs', tostring(active), tostring(spent)}
end
if budget > 0 and spent + cost > budget + tonumber(ARGV[6]) then
  return {'budget_exceeded', tostring(active), tostring(spent)}
end
redis.call('sadd', KEYS[1], ARGV[1])
if cost > 0 then
  redis.call('incrbyfloat', KEYS[2], ARGV[4])
  redis.call('expire', KEYS[2], ARGV[5])
end
return {'ok', tostring(active), tostring(spent)}
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def reserve(redis: Redis, settings: Settings, job: Job) -> None:
    """Count `job` against its tenant's limits, or raise the 422 that says which one it hits.

    Always counted, even with both limits off, so that turning a limit on counts what came before.
    """
    cost = job.estimated_cost_usd or 0.0
    raw = await redis.eval(  # type: ignore[misc]
        _RESERVE,
        2,
        tenant_unfinished_key(job.tenant),
        spend_key(job.tenant, job.created_at),
        job.id,
        str(max(settings.max_active_jobs, 0)),
        repr(max(settings.monthly_budget_usd, 0.0)),
        repr(cost),
        str(_SPEND_TTL_SECONDS),
        repr(_EPSILON),
    )
    outcome, active, spent = (_text(v) for v in raw)
    if outcome == "too_many_active_jobs":
        limit = settings.max_active_jobs
        raise TooManyActiveJobs(
            f"This tenant has {active} unfinished jobs and may have at most {limit}; wait for "
            "one to finish or cancel one.",
            limit=limit,
            active=int(active),
        )
    if outcome == "budget_exceeded":
        budget = settings.monthly_budget_usd
        remaining = max(round(budget - float(spent), 2), 0.0)
        raise BudgetExceeded(
            f"This job is estimated at ${cost:.2f} but only ${remaining:.2f} of this month's "
            f"${budget:.2f} training budget is left.",
            remaining_usd=remaining,
            budget_usd=budget,
            estimated_cost_usd=cost,
        )


async def release(redis: Redis, job: Job, *, refund: bool) -> None:
    """The job no longer counts as unfinished; with `refund`, its estimate is given back."""
    await redis.srem(tenant_unfinished_key(job.tenant), job.id)  # type: ignore[misc]
    if refund and job.estimated_cost_usd:
        await redis.incrbyfloat(spend_key(job.tenant, job.created_at), -job.estimated_cost_usd)
