"""Distillation → a job request with a `teacher`: checked when the job is created (422 naming the
field), and the teacher pinned to the model its name points at now."""

from __future__ import annotations

from redis.asyncio import Redis

from service.datasets.records import Dataset
from service.distillation.prompts import MIN_EXAMPLES, holdout_count
from service.errors import Unprocessable
from service.inference.catalog import ModelNotFound, resolve
from service.jobs.records import Distillation, DistillationIn, JobCreate
from service.models import ModelTable
from service.settings import Settings

__all__ = ["check"]


async def check(
    redis: Redis,
    settings: Settings,
    models: ModelTable,
    *,
    tenant: str,
    data: JobCreate,
    prompts: Dataset,
) -> Distillation | None:
    """The distillation `data` asks for (None without a `teacher`): a teacher the tenant can
    chat with, a chat set of prompts that leaves at least ten for training once the held-out
    ones are set aside, and no promotion gate of the caller's own (the held-out set is it)."""
    if data.teacher is None:
        if data.distillation is not None:
            raise Unprocessable(
                "distillation: only a job with a teacher distils; add teacher.model.",
                param="distillation",
            )
        return None
    if data.promotion is not None:
        raise Unprocessable(
            "promotion: a distillation gates promote_to on its own held-out prompts (the "
            "student against the teacher); set distillation.min_similarity instead.",
            param="promotion",
        )
    if prompts.kind != "chat":
        raise Unprocessable(
            f"training_dataset: {prompts.id} is a {prompts.kind} set; a distillation's prompts "
            "come from a chat set.",
            param="training_dataset",
        )
    options = data.distillation or DistillationIn()
    held = holdout_count(prompts.examples, options.holdout)
    if prompts.examples - held < MIN_EXAMPLES:
        raise Unprocessable(
            f"distillation.holdout: holding out {held} of the {prompts.examples} prompts of "
            f"{prompts.id} leaves {prompts.examples - held} to train on; at least "
            f"{MIN_EXAMPLES} are needed.",
            param="distillation.holdout",
        )
    try:
        target = await resolve(redis, settings, tenant, data.teacher.model, models=models)
    except ModelNotFound:
        raise Unprocessable(
            f"teacher.model: {data.teacher.model!r} is none of your models, jobs or aliases, "
            "and no base model you can chat with.",
            param="teacher.model",
        ) from None
    if settings.provider(target.provider) is None:
        raise Unprocessable(
            f"teacher.model: its provider {target.provider!r} is not configured.",
            param="teacher.model",
        )
    return Distillation(
        teacher=data.teacher.model,
        teacher_model=target.model,
        teacher_provider=target.provider,
        teacher_base_model=target.base_model,
        prompts_dataset=prompts.id,
        holdout=options.holdout,
        min_similarity=options.min_similarity,
        max_concurrency=options.max_concurrency,
        max_tokens=options.max_tokens,
    )
