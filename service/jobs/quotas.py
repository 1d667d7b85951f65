"""Job → limits at creation: unfinished jobs per tenant and the tenant's monthly training budget.

Both are checked and reserved in one Lua script, so concurrent creates cannot both take the last
slot or the last dollars. The reservation is made before the job is stored and released if
storing fails; Idempotency-Key replays answer before it, so they never count twice.

Spend is kept per tenant and calendar month (UTC) of the jobs' creation: each job counts its
estimate (`estimated_cost_usd`) while it runs. When it ends, a job that succeeded counts its real
cost (`cost_usd`) instead; one that ends `cancelled` or `failed` before any upstream job existed
gives its estimate back (nothing was trained, nothing billed); one that reached the upstream and
did not succeed keeps its estimate, since the upstream bills what it trained. A job without an
estimate (a model missing from the dataset's estimates) counts as 0 until it has a cost. Beside
that total (`spend_key`, what the budget is checked against), the month keeps the real costs of
its finished jobs alone (`cost_key`); `GET /v1/usage` shows both.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

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


def month_of(created_at: int) -> str:
    """`YYYY-MM`, the UTC month of a Unix time."""
    return dt.datetime.fromtimestamp(created_at, dt.UTC).strftime("%Y-%m")


def spend_key(tenant: str, month: str) -> str:
    """The tenant's training spend, in USD, in `month` (`YYYY-MM`): real costs of the jobs that
    succeeded, estimates of the others (what the budget is checked against)."""
    return f"{PREFIX}:jobs:spend:{tenant}:{month}"


def cost_key(tenant: str, month: str) -> str:
    """The real cost, in USD, of the tenant's jobs of `month` (`YYYY-MM`) that have one."""
    return f"{PREFIX}:jobs:cost:{tenant}:{month}"


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
        spend_key(job.tenant, month_of(job.created_at)),
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
        spend = spend_key(job.tenant, month_of(job.created_at))
        await redis.incrbyfloat(spend, -job.estimated_cost_usd)


def stage_settlement(pipe: Pipeline, job: Job) -> None:
    """Add to `pipe` (the transaction of `job`'s terminal change) what its end does to the
    tenant's limits: it is no longer unfinished, and its spend becomes what it really cost."""
    pipe.srem(tenant_unfinished_key(job.tenant), job.id)
    estimate = job.estimated_cost_usd or 0.0
    spend = spend_key(job.tenant, month_of(job.created_at))
    if job.status == "succeeded" and job.cost_usd is not None:
        if job.cost_usd != estimate:
            pipe.incrbyfloat(spend, job.cost_usd - estimate)
            pipe.expire(spend, _SPEND_TTL_SECONDS)
        cost = cost_key(job.tenant, month_of(job.created_at))
        pipe.incrbyfloat(cost, job.cost_usd)
        pipe.expire(cost, _SPEND_TTL_SECONDS)
    elif job.status != "succeeded" and job.upstream_job_id is None and estimate:
        # Nothing trained, nothing billed: the estimate goes back to the monthly budget.
        pipe.incrbyfloat(spend, -estimate)


class TrainingSpend(msgspec.Struct, frozen=True, kw_only=True):
    """A month of a tenant's training: what counts against its budget, and of that, the real
    cost of the jobs that finished with one (the rest is estimates of the others)."""

    month: str
    spend_usd: float
    cost_usd: float
    estimated_usd: float


async def monthly_spend(redis: Redis, tenant: str, months: list[str]) -> list[TrainingSpend]:
    """The tenant's training spend in each of `months` (`YYYY-MM`), in that order."""
    async with redis.pipeline(transaction=False) as pipe:
        for month in months:
            pipe.get(spend_key(tenant, month))
            pipe.get(cost_key(tenant, month))
        raw = await pipe.execute()
    found = []
    for i, month in enumerate(months):
        spend = round(float(raw[2 * i] or 0), 2)
        cost = round(float(raw[2 * i + 1] or 0), 2)
        found.append(
            TrainingSpend(
                month=month,
                spend_usd=spend,
                cost_usd=cost,
                estimated_usd=max(round(spend - cost, 2), 0.0),
            )
        )
    return found
