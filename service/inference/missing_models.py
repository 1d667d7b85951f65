"""What to tell a caller whose chat names no model of theirs: the closest of their names, that a
model retired (and what replaces it), or that a base model needs `BURRO_ALLOWED_BASE_MODELS`.
Only failed look-ups come here, so the chat path's hit costs nothing more."""

from __future__ import annotations

import datetime

from redis.asyncio import Redis

from service.inference.catalog import ModelNotFound, entries
from service.inference.model_names import model_name_taken
from service.model_help import did_you_mean, retirement_note
from service.models import ModelTable
from service.settings import Settings


class ModelNotFoundWithHint(ModelNotFound):
    def __init__(self, name: str, hint: str) -> None:
        super().__init__(name)
        if hint:
            self.detail = f"{self.detail} {hint}"
            self.args = (self.detail,)


async def explain_missing_model(
    redis: Redis,
    settings: Settings,
    models: ModelTable,
    tenant: str,
    name: str,
    today: datetime.date,
) -> ModelNotFound:
    """The 404 (OpenAI's `model_not_found`) for `name`, with what the caller can do about it."""
    retired = retirement_note(models, name, today)
    if retired is not None:
        return ModelNotFoundWithHint(name, retired)
    if not name.startswith("ft:") and model_name_taken(name, models, ()):
        return ModelNotFoundWithHint(
            name,
            f"{name} is a base model: Burro serves a base model for chat only when the "
            "deployment lists it in BURRO_ALLOWED_BASE_MODELS. Chat with one of your "
            "fine-tuned models, job ids or aliases instead.",
        )
    fine_tuned, aliases = await entries(redis, tenant)
    known = [*fine_tuned, *aliases, *settings.allowed_base_models]
    return ModelNotFoundWithHint(name, did_you_mean(name, known).strip())
