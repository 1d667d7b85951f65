"""Usage: tokens in and out per tenant, model and day, counted off the request path.

A chat request only adds to counters in memory (`UsageMeter.record`); a background task
flushes them to Redis about once a second, and once more at shutdown, with HINCRBY:

    burro:usage:{tenant}:{YYYY-MM-DD}   n|{model}, in|{model}, out|{model}  (counters)
                                        base|{model}                       (its base model)

`GET /v1/usage` reads those hashes back for a range of days and prices them with the model
table's inference prices (a fine-tuned model costs what its base costs), next to the training
spend of the months the range covers (`service.jobs.quotas`).
"""

from __future__ import annotations

import datetime
import time
from typing import Literal

import msgspec
import structlog
from redis.asyncio import Redis

from service.errors import BadRequest
from service.flushing import BackgroundFlush
from service.jobs.quotas import TrainingSpend, monthly_spend
from service.models import ModelTable
from service.store import PREFIX

log = structlog.get_logger("burro.usage")

FLUSH_INTERVAL = 1.0
DEFAULT_DAYS = 31
MAX_DAYS = 366

_Key = tuple[str, str, str, str]  # tenant, day, model, base model


def usage_key(tenant: str, day: str) -> str:
    return f"{PREFIX}:usage:{tenant}:{day}"


class UsageMeter(BackgroundFlush):
    """Counts tokens in memory and flushes them to Redis in the background."""

    def __init__(self, interval: float = FLUSH_INTERVAL) -> None:
        super().__init__(interval)
        # tenant, day, model, base → [requests, prompt tokens, completion tokens]
        self._counts: dict[_Key, list[int]] = {}
        self._day_until = 0.0
        self._day = ""

    def _today(self) -> str:
        # One date computation a second at most: the hot path pays a float comparison.
        stamp = time.time()
        if stamp >= self._day_until:
            self._day = time.strftime("%Y-%m-%d", time.gmtime(stamp))
            self._day_until = (stamp // 86400 + 1) * 86400
        return self._day

    def record(
        self,
        redis: Redis,
        tenant: str,
        model: str,
        base_model: str,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """Count one answered request; never waits, never fails the request."""
        key = (tenant, self._today(), model, base_model)
        counts = self._counts.get(key)
        if counts is None:
            self._counts[key] = [1, prompt_tokens, completion_tokens]
        else:
            counts[0] += 1
            counts[1] += prompt_tokens
            counts[2] += completion_tokens
        self._start(redis)

    async def flush(self) -> None:
        """Write what was counted since the last flush; on failure keep it for the next one."""
        if not self._counts or self._redis is None:
            return
        counts, self._counts = self._counts, {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (tenant, day, model, base), (requests, tokens_in, tokens_out) in counts.items():
                    key = usage_key(tenant, day)
                    pipe.hincrby(key, f"n|{model}", requests)
                    pipe.hincrby(key, f"in|{model}", tokens_in)
                    pipe.hincrby(key, f"out|{model}", tokens_out)
                    pipe.hsetnx(key, f"base|{model}", base)
                await pipe.execute()
        except Exception:
            log.warning("usage.flush_failed", exc_info=True)
            for counted, (requests, tokens_in, tokens_out) in counts.items():
                kept = self._counts.setdefault(counted, [0, 0, 0])
                kept[0] += requests
                kept[1] += tokens_in
                kept[2] += tokens_out


# --- GET /v1/usage ---------------------------------------------------------------------------


class UsageRow(msgspec.Struct, frozen=True, kw_only=True):
    date: str
    model: str
    base_model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None when the model table has no price for the base model


class UsageReport(msgspec.Struct, frozen=True, kw_only=True):
    """Inference usage per day and model, newest day first, with the total cost of the priced
    rows; and training spend per calendar month (UTC) of the range, newest first."""

    object: Literal["list"]
    start: str
    end: str
    data: list[UsageRow]
    has_more: bool
    total_cost_usd: float
    training: list[TrainingSpend]
    """Per month: `spend_usd`, what counts against the monthly budget; of it, `cost_usd` the
    real cost of the jobs that succeeded and `estimated_usd` the estimates of the others."""


def _price(
    models: ModelTable, base: str, model: str, tokens_in: int, tokens_out: int
) -> float | None:
    info = models.get(base) or models.get(model)
    if info is None:
        return None
    cost = (
        tokens_in * info.input_usd_per_1m_tokens + tokens_out * info.output_usd_per_1m_tokens
    ) / 1_000_000
    return round(cost, 6)


def _date(value: str | None, name: str, default: datetime.date) -> datetime.date:
    if value is None:
        return default
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name}: expected a date as YYYY-MM-DD, got {value!r}.") from None


async def read_usage(
    redis: Redis, models: ModelTable, tenant: str, start: datetime.date, end: datetime.date
) -> list[UsageRow]:
    """The tenant's usage rows for the days `start`..`end` (inclusive), newest first."""
    days = [end - datetime.timedelta(days=i) for i in range((end - start).days + 1)]
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(usage_key(tenant, day.isoformat()))
        hashes: list[dict[bytes, bytes]] = await pipe.execute()
    rows: list[UsageRow] = []
    for day, fields in zip(days, hashes, strict=True):
        by_model: dict[str, dict[str, str]] = {}
        for field, value in fields.items():
            kind, _, model = field.decode().partition("|")
            by_model.setdefault(model, {})[kind] = value.decode()
        for model in sorted(by_model):
            values = by_model[model]
            tokens_in, tokens_out = int(values.get("in", 0)), int(values.get("out", 0))
            base = values.get("base", model)
            rows.append(
                UsageRow(
                    date=day.isoformat(),
                    model=model,
                    base_model=base,
                    requests=int(values.get("n", 0)),
                    input_tokens=tokens_in,
                    output_tokens=tokens_out,
                    cost_usd=_price(models, base, model, tokens_in, tokens_out),
                )
            )
    return rows


async def usage_report(
    redis: Redis, models: ModelTable, tenant: str, start: str | None, end: str | None
) -> UsageReport:
    """The report `GET /v1/usage` answers: the last 31 days unless `start`/`end` say."""
    today = datetime.datetime.now(datetime.UTC).date()
    last = _date(end, "end", today)
    first = _date(start, "start", last - datetime.timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise BadRequest("start: must not be after end.")
    if (last - first).days >= MAX_DAYS:
        raise BadRequest(f"start/end: ask for at most {MAX_DAYS} days at a time.")
    rows = await read_usage(redis, models, tenant, first, last)
    total = round(sum(r.cost_usd for r in rows if r.cost_usd is not None), 6)
    return UsageReport(
        object="list",
        start=first.isoformat(),
        end=last.isoformat(),
        data=rows,
        has_more=False,
        total_cost_usd=total,
        training=await monthly_spend(redis, tenant, _months(first, last)),
    )


def _months(first: datetime.date, last: datetime.date) -> list[str]:
    """`YYYY-MM` of every month from `last`'s back to `first`'s."""
    months = []
    year, month = last.year, last.month
    while (year, month) >= (first.year, first.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months
