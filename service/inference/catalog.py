"""The catalog: which models a tenant may talk to, and where each one lives upstream.

A job that succeeds is registered here (`register_model`); an alias stores its resolved target
here too. Everything a chat request needs to find its upstream is in one Redis hash per tenant,
so `resolve` costs a single round trip (HMGET), whatever kind of name the caller used:

    burro:catalog:{tenant}   m:{fine-tuned model}  → Target
                             j:{job id}            → Target
                             a:{alias}             → Target
"""

from __future__ import annotations

from typing import Protocol

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service.errors import NotFound
from service.models import ModelTable
from service.settings import Settings
from service.store import PREFIX, now

__all__ = [
    "ModelNotFound",
    "Target",
    "catalog_key",
    "encode_target",
    "register_checkpoint",
    "register_model",
    "registered",
    "resolve",
    "stage_registration",
]


class Target(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Where a name resolves: the upstream model id, its provider and the job that made it.

    Stored as a msgpack array: new fields go at the end, with defaults.
    """

    model: str
    provider: str
    job_id: str | None
    base_model: str
    created: int = 0
    # An alias that captures its traffic (`service.inference.captures`): its caps, read with
    # the target in the chat path's one round trip. 0: no capture.
    capture_max_examples: int = 0
    capture_max_age_days: int = 0


class ModelNotFound(NotFound):
    """The name is none of the tenant's models, jobs or aliases (OpenAI's `model_not_found`)."""

    code = "model_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"The model `{name}` does not exist or you do not have access to it.")


_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder(Target)


class Limiter(Protocol):
    """A rate limiter that books a request and reads a hash in one round trip
    (`service.limits.RateLimiter`: the chat path's; the worker, which never limits, needs none)."""

    async def check_and_read(
        self, tenant: str, key: str, fields: list[str]
    ) -> list[bytes | None]: ...


def catalog_key(tenant: str) -> str:
    return f"{PREFIX}:catalog:{tenant}"


def encode_target(target: Target) -> bytes:
    return _ENCODE.encode(target)


def decode_target(raw: bytes) -> Target:
    return _DECODE.decode(raw)


def stage_registration(
    pipe: Pipeline, *, tenant: str, job_id: str, model: str, provider: str, base_model: str
) -> None:
    """Add to `pipe` (a transaction) what makes a succeeded job's model servable to `tenant`, by
    job id and by model name. The first registration wins (a repeat keeps its `created` time)."""
    entry = encode_target(
        Target(model=model, provider=provider, job_id=job_id, base_model=base_model, created=now())
    )
    key = catalog_key(tenant)
    pipe.hsetnx(key, f"j:{job_id}", entry)  # type: ignore[arg-type]
    pipe.hsetnx(key, f"m:{model}", entry)  # type: ignore[arg-type]


async def register_model(
    redis: Redis, *, tenant: str, job_id: str, model: str, provider: str, base_model: str
) -> None:
    """Make a succeeded job's model servable to `tenant` (`stage_registration`, on its own)."""
    async with redis.pipeline(transaction=True) as pipe:
        stage_registration(
            pipe,
            tenant=tenant,
            job_id=job_id,
            model=model,
            provider=provider,
            base_model=base_model,
        )
        await pipe.execute()


async def register_checkpoint(
    redis: Redis, *, tenant: str, job_id: str, model: str, provider: str, base_model: str
) -> None:
    """Make a checkpoint of a job (`…:ckpt-step-N`) servable to `tenant` by its name."""
    entry = encode_target(
        Target(model=model, provider=provider, job_id=job_id, base_model=base_model, created=now())
    )
    await redis.hsetnx(catalog_key(tenant), f"m:{model}", entry)  # type: ignore[misc, arg-type]


async def registered(redis: Redis, tenant: str, job_id: str) -> Target | None:
    """The model a job of `tenant` produced, once the job has succeeded."""
    raw = await redis.hget(catalog_key(tenant), f"j:{job_id}")  # type: ignore[misc]
    return None if raw is None else decode_target(raw)


async def resolve(
    redis: Redis,
    settings: Settings,
    tenant: str,
    name: str,
    *,
    limiter: Limiter | None = None,
    models: ModelTable | None = None,
) -> Target:
    """Where `name` goes for `tenant`: one of its fine-tuned models, job ids or aliases, else a
    base model that `settings.allowed_base_models` lists (on the default provider), or one of
    the local base models of `models` (on its own provider).

    Raises ModelNotFound otherwise; another tenant's names are simply not in this tenant's
    catalog, so they are not found either. With `limiter`, the request is booked against the
    tenant's rate limit (RateLimited when over) in the same round trip.
    """
    fields = [f"m:{name}", f"j:{name}", f"a:{name}"]
    if limiter is not None:
        found = await limiter.check_and_read(tenant, catalog_key(tenant), fields)
    else:
        found = await redis.hmget(catalog_key(tenant), fields)  # type: ignore[misc]
    for raw in found:
        if raw is not None:
            return decode_target(raw)
    if name in settings.allowed_base_models:
        return Target(model=name, provider=settings.default_provider, job_id=None, base_model=name)
    info = models.get(name) if models is not None and not name.startswith("ft:") else None
    if info is not None and info.weights is not None and info.provider is not None:
        # Burro's own base models answer every tenant: they cost nobody an upstream bill.
        return Target(model=info.name, provider=info.provider, job_id=None, base_model=info.name)
    raise ModelNotFound(name)


async def entries(redis: Redis, tenant: str) -> tuple[dict[str, Target], dict[str, Target]]:
    """The tenant's fine-tuned models and aliases, each by name."""
    models: dict[str, Target] = {}
    aliases: dict[str, Target] = {}
    raw: dict[bytes, bytes] = await redis.hgetall(catalog_key(tenant))  # type: ignore[misc]
    for field, value in raw.items():
        kind, _, name = field.decode().partition(":")
        if kind == "m":
            models[name] = decode_target(value)
        elif kind == "a":
            aliases[name] = decode_target(value)
    return models, aliases
