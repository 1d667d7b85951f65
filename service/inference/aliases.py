"""Aliases: a stable name that points at a job's fine-tuned model, with its history.

An alias is stored twice, in one transaction: its record (target, history, the targets a
rollback can go back to) under `burro:aliases:{tenant}:{name}`, and its resolved target in
the tenant's catalog (`service.inference.catalog`), so a chat request by alias costs one
round trip. `move_alias` is what a job with `promote_to` does when it has succeeded (an effect
of its change, `service.effects`); the routes under `/v1/aliases` (`service.aliases`) are the
callers' way to point, inspect, roll back and remove aliases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import WatchError

from service.errors import Conflict, NotFound, Unprocessable
from service.inference.captures import CaptureLimits, captures_key
from service.inference.catalog import Target, catalog_key, encode_target, register_model, registered
from service.jobs.records import JOBS, Job
from service.store import PREFIX, Collection, now

log = structlog.get_logger("burro.aliases")

# The same names `promote_to` accepts; `job_` would read as a job id, so it is refused.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Bounds on what one alias record keeps: the log of moves and the rollback stack.
MAX_HISTORY = 100
_MAX_WATCH_RETRIES = 20
# Capture's caps when the caller names none: a month of traffic, a thousand exchanges at most.
# A month because that is what a team has between a shutdown notice and the shutdown, and no
# longer than that is worth keeping people's prompts; a thousand because that is plenty to
# distil or fine-tune on (OpenAI sees gains from 50 to 100 examples) and keeps an alias' Redis
# footprint to a few megabytes.
DEFAULT_CAPTURE_MAX_EXAMPLES = 1000
DEFAULT_CAPTURE_MAX_AGE_DAYS = 30
MAX_CAPTURE_EXAMPLES = 50_000
MAX_CAPTURE_AGE_DAYS = 90


class InvalidAliasName(Unprocessable):
    code = "invalid_alias_name"


class JobNotSucceeded(Unprocessable):
    code = "job_not_succeeded"


class NothingToRollBack(Conflict):
    code = "nothing_to_roll_back"


class AliasTarget(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an alias' history: where it pointed from `at` on, and why; or, with
    `moved` false, a job that was considered for it and not promoted, and why not."""

    job: str
    model: str
    at: int
    reason: str = ""
    moved: bool = True


class Alias(msgspec.Struct, frozen=True, kw_only=True):
    """An alias as stored: where it points now, every move (oldest first), and the jobs a
    rollback goes back to (most recent last)."""

    name: str
    tenant: str
    job: str
    model: str
    provider: str
    base_model: str
    created_at: int
    updated_at: int
    history: list[AliasTarget] = []
    previous: list[str] = []
    # Opt-in: record the chat exchanges through this alias (`service.inference.captures`).
    capture: bool = False
    capture_max_examples: int = DEFAULT_CAPTURE_MAX_EXAMPLES
    capture_max_age_days: int = DEFAULT_CAPTURE_MAX_AGE_DAYS

    def target(self) -> Target:
        return Target(
            model=self.model,
            provider=self.provider,
            job_id=self.job,
            base_model=self.base_model,
            created=self.created_at,
            capture_max_examples=self.capture_max_examples if self.capture else 0,
            capture_max_age_days=self.capture_max_age_days if self.capture else 0,
        )

    @property
    def capture_limits(self) -> CaptureLimits:
        return CaptureLimits(self.capture_max_examples, self.capture_max_age_days)


class CaptureChange(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller changes of an alias' capture; UNSET fields stay as they are."""

    capture: bool | msgspec.UnsetType = msgspec.UNSET
    max_examples: int | msgspec.UnsetType = msgspec.UNSET
    max_age_days: int | msgspec.UnsetType = msgspec.UNSET

    def apply(self, alias: Alias) -> Alias:
        changes: dict[str, object] = {}
        if self.capture is not msgspec.UNSET:
            changes["capture"] = self.capture
        if self.max_examples is not msgspec.UNSET:
            changes["capture_max_examples"] = self.max_examples
        if self.max_age_days is not msgspec.UNSET:
            changes["capture_max_age_days"] = self.max_age_days
        return msgspec.structs.replace(alias, **changes) if changes else alias


class _SucceededJob(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def tenant(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def fine_tuned_model(self) -> str | None: ...


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Alias)


def alias_key(tenant: str, name: str) -> str:
    return f"{PREFIX}:aliases:{tenant}:{name}"


def _index_key(tenant: str) -> str:
    return f"{PREFIX}:alias-index:{tenant}"


ALIAS_TENANTS_KEY = f"{PREFIX}:alias-tenants"
"""Set of the tenants that have (or had) an alias: what the shutdown check goes through."""


def check_name(name: str) -> None:
    """Raise InvalidAliasName unless `name` can be an alias."""
    if not NAME_PATTERN.match(name) or name.lower().startswith("job_"):
        raise InvalidAliasName(
            f"Alias {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit and not with 'job_'."
        )


async def get_alias(redis: Redis, tenant: str, name: str) -> Alias | None:
    raw = await redis.get(alias_key(tenant, name))
    return None if raw is None else _decoder.decode(raw)


async def list_aliases(redis: Redis, tenant: str) -> list[Alias]:
    """The tenant's aliases, newest first."""
    names = [
        n.decode() if isinstance(n, bytes) else str(n)
        for n in await redis.zrevrange(_index_key(tenant), 0, -1)
    ]
    if not names:
        return []
    raws = await redis.mget([alias_key(tenant, n) for n in names])
    return [_decoder.decode(raw) for raw in raws if raw is not None]


async def succeeded_target(redis: Redis, tenant: str, job_id: str) -> Target:
    """The model the tenant's job produced: 404 for an unknown or another tenant's job, 422
    for one that has not succeeded (not registered)."""
    target = await registered(redis, tenant, job_id)
    if target is not None:
        return target
    job = await Collection(redis, JOBS, Job).get(job_id)
    if job is None or job.tenant != tenant:
        raise NotFound(f"No job {job_id!r}.")
    raise JobNotSucceeded(
        f"job: job {job_id} is {job.status}; an alias can point only at a job that succeeded.",
        param="job",
    )


async def _write(
    redis: Redis,
    tenant: str,
    name: str,
    change: Callable[[Alias | None], Alias | None],
) -> tuple[Alias | None, Alias | None]:
    """Read-modify-write one alias under WATCH; `change(current)` returns the new record (or
    the current one, for nothing to do). Returns (before, after)."""
    key = alias_key(tenant, name)
    async with redis.pipeline(transaction=True) as pipe:
        for _ in range(_MAX_WATCH_RETRIES):
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                current = None if raw is None else _decoder.decode(raw)
                updated = change(current)
                if updated is current:
                    await pipe.reset()  # type: ignore[no-untyped-call]
                    return current, current
                pipe.multi()  # type: ignore[no-untyped-call]
                if updated is None:
                    # The alias goes, and what it captured with it.
                    pipe.delete(key, captures_key(tenant, name))
                    pipe.hdel(catalog_key(tenant), f"a:{name}")
                    pipe.zrem(_index_key(tenant), name)
                else:
                    pipe.set(key, _encoder.encode(updated))
                    pipe.hset(catalog_key(tenant), f"a:{name}", encode_target(updated.target()))  # type: ignore[arg-type]
                    pipe.zadd(_index_key(tenant), {name: updated.created_at}, nx=True)
                    pipe.sadd(ALIAS_TENANTS_KEY, tenant)
                await pipe.execute()
                return current, updated
            except WatchError:  # moved by someone else meanwhile: read again
                continue
    raise Conflict(f"Alias {name!r} is changing too often to update; try again.")


def _moved(
    current: Alias | None, tenant: str, name: str, target: Target, reason: str, *, undo: bool
) -> Alias:
    stamp = now()
    assert target.job_id is not None
    entry = AliasTarget(job=target.job_id, model=target.model, at=stamp, reason=reason)
    if current is None:
        return Alias(
            name=name,
            tenant=tenant,
            job=target.job_id,
            model=target.model,
            provider=target.provider,
            base_model=target.base_model,
            created_at=stamp,
            updated_at=stamp,
            history=[entry],
        )
    previous = current.previous[:-1] if undo else [*current.previous, current.job]
    return msgspec.structs.replace(
        current,
        job=target.job_id,
        model=target.model,
        provider=target.provider,
        base_model=target.base_model,
        updated_at=stamp,
        history=[*current.history, entry][-MAX_HISTORY:],
        previous=previous[-MAX_HISTORY:],
    )


async def point_alias(
    redis: Redis,
    *,
    tenant: str,
    name: str,
    target: Target,
    reason: str,
    capture: CaptureChange | None = None,
) -> tuple[Alias, bool]:
    """Point `name` at `target` (a registered job's model), changing its capture as `capture`
    says; returns (alias, created).

    Pointing it where it already points does nothing (no history entry), so a repeated
    promotion by an at-least-once worker is harmless.
    """
    check_name(name)

    def change(current: Alias | None) -> Alias | None:
        if current is not None and current.job == target.job_id:
            updated = current if capture is None else capture.apply(current)
            return current if updated == current else updated
        moved = _moved(current, tenant, name, target, reason, undo=False)
        return moved if capture is None else capture.apply(moved)

    before, after = await _write(redis, tenant, name, change)
    assert after is not None
    if after is not before:
        log.info("alias.moved", tenant=tenant, alias=name, job=after.job, reason=reason)
    return after, before is None


async def configure_capture(redis: Redis, tenant: str, name: str, capture: CaptureChange) -> Alias:
    """Change the capture of the tenant's alias `name` (NotFound when there is none)."""

    def change(current: Alias | None) -> Alias | None:
        if current is None:
            raise NotFound(f"No alias {name!r}.")
        updated = capture.apply(current)
        return current if updated == current else updated

    before, after = await _write(redis, tenant, name, change)
    assert after is not None
    if after is not before:
        log.info("alias.capture_changed", tenant=tenant, alias=name, capture=after.capture)
    return after


async def move_alias(
    redis: Redis,
    tenant: str,
    name: str,
    job: _SucceededJob | None = None,
    *,
    job_id: str | None = None,
    reason: str | None = None,
) -> None:
    """Point the tenant's alias `name` at a succeeded job's fine-tuned model (created if new).

    Give either the job record itself (`job`: its model is registered in the catalog first,
    as `promote_to` needs) or the id of a job already registered (`job_id`). The previous
    target goes onto the rollback stack; moving to the current target does nothing.
    """
    if job is not None:
        if job.fine_tuned_model is None:
            raise ValueError(f"job {job.id} has no fine-tuned model to point {name!r} at")
        await register_model(
            redis,
            tenant=tenant,
            job_id=job.id,
            model=job.fine_tuned_model,
            provider=job.provider,
            base_model=job.model,
        )
        job_id = job.id
    if job_id is None:
        raise ValueError("move_alias needs a job or a job_id")
    target = await succeeded_target(redis, tenant, job_id)
    await point_alias(
        redis, tenant=tenant, name=name, target=target, reason=reason or f"promote_to {job_id}"
    )


async def note_not_moved(
    redis: Redis, tenant: str, name: str, *, job_id: str, model: str, reason: str
) -> bool:
    """Keep in the alias' history that `job_id` was not promoted to it, and why; the alias
    does not move. False when there is no such alias (its history starts with its first move).

    The same note twice in a row is kept once, so a repeated decision is harmless.
    """

    def change(current: Alias | None) -> Alias | None:
        if current is None:
            return None
        entry = AliasTarget(job=job_id, model=model, at=now(), reason=reason, moved=False)
        last = current.history[-1] if current.history else None
        if last is not None and (last.job, last.reason, last.moved) == (job_id, reason, False):
            return current
        return msgspec.structs.replace(current, history=[*current.history, entry][-MAX_HISTORY:])

    before, after = await _write(redis, tenant, name, change)
    if after is not None and after is not before:
        log.info("alias.not_moved", tenant=tenant, alias=name, job=job_id, reason=reason)
    return after is not None


async def rollback_alias(redis: Redis, tenant: str, name: str) -> Alias:
    """Point `name` back at the target it had before its last move (Conflict when none)."""
    current = await get_alias(redis, tenant, name)
    if current is None:
        raise NotFound(f"No alias {name!r}.")
    if not current.previous:
        raise NothingToRollBack(f"Alias {name!r} has no earlier target to roll back to.")
    back_to = current.previous[-1]
    target = await registered(redis, tenant, back_to)
    if target is None:  # registrations are never removed; only a damaged store gets here
        raise Conflict(f"Alias {name!r}: the earlier target {back_to} is no longer servable.")

    def change(now_: Alias | None) -> Alias | None:
        if now_ is None:
            raise NotFound(f"No alias {name!r}.")
        if now_.previous[-1:] != [back_to]:
            raise Conflict(f"Alias {name!r} moved during the rollback; look at it and retry.")
        return _moved(now_, tenant, name, target, "rollback", undo=True)

    _, after = await _write(redis, tenant, name, change)
    assert after is not None
    log.info("alias.rolled_back", tenant=tenant, alias=name, job=after.job)
    return after


async def delete_alias(redis: Redis, tenant: str, name: str) -> bool:
    """Remove the alias; False when there was none."""
    before, _ = await _write(redis, tenant, name, lambda current: None)
    return before is not None
