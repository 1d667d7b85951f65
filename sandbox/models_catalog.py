"""Which base models the sandbox knows: it fine-tunes and chats with the OpenAI families that
could be fine-tuned (gpt-4o*, gpt-4.1*, gpt-3.5*)."""

from __future__ import annotations

BASE_MODELS: tuple[str, ...] = (
    "gpt-4.1-2025-04-14",
    "gpt-4.1",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-mini",
    "gpt-4.1-nano-2025-04-14",
    "gpt-4.1-nano",
    "gpt-4o-2024-08-06",
    "gpt-4o",
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-mini",
    "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo",
)
_FAMILIES = ("gpt-4o", "gpt-4.1", "gpt-3.5")
BASE_CREATED = 1_700_000_000


def is_base_model(model: str) -> bool:
    return model.startswith(_FAMILIES)


def base_of(model: str) -> str:
    """The base model of a model id (of `ft:gpt-4o-mini:org:suffix:id`, its second part)."""
    if model.startswith("ft:"):
        parts = model.split(":")
        return parts[1] if len(parts) > 1 else ""
    return model


def can_fine_tune(model: str) -> bool:
    return is_base_model(base_of(model))
