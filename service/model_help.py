"""Model errors a person can act on: the closest known names to a mistyped one, when a model
retired and what to use instead, and what opens a base model for chat."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from rapidfuzz import fuzz, process, utils

from service.models import ModelTable

# rapidfuzz's ratio (0-100): a transposed pair of digits in a dated name scores about 90.
_CLOSE_ENOUGH = 75
_SUGGESTIONS = 3


def closest(name: str, candidates: Iterable[str], limit: int = _SUGGESTIONS) -> list[str]:
    """The known names nearest to `name`, best first (none when nothing is close)."""
    unique = sorted(set(candidates))
    found = process.extract(
        name,
        unique,
        scorer=fuzz.ratio,
        processor=utils.default_process,
        limit=limit,
        score_cutoff=_CLOSE_ENOUGH,
    )
    return [match for match, _, _ in found]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' Did you mean a or b?' (with a leading space), or '' when nothing is close."""
    near = closest(name, candidates)
    if not near:
        return ""
    return f" Did you mean {' or '.join(near)}?"


def trainable_names(models: ModelTable, today: datetime.date) -> list[str]:
    """Every name of every model that can still be fine-tuned on `today`."""
    return [n for m in models if not models.is_retired(m.name, today) for n in (m.name, *m.aliases)]


def retirement_note(models: ModelTable, model: str, today: datetime.date) -> str | None:
    """'X was retired on D. Use Y instead.' when `model` (or its base) is retired, else None."""
    entry = models.retired_entry(model)
    info = models.get(model)
    if entry is not None:
        name, shutdown, replacement = entry.name, entry.shutdown, entry.replacement
    elif info is not None and info.shutdown is not None and info.shutdown <= today:
        name, shutdown, replacement = info.name, info.shutdown, info.replacement
    else:
        return None
    note = f"{name} was retired on {shutdown.isoformat()}."
    if replacement:
        note += f" Use {replacement} instead."
    return note


def unknown_for_training(models: ModelTable, model: str, today: datetime.date) -> str:
    """Why `model`, not in the table, cannot be fine-tuned, and what was probably meant."""
    retired = retirement_note(models, model, today)
    if retired is not None:
        return f"{retired} It cannot be fine-tuned."
    return f"{model!r} cannot be fine-tuned (it is not in Burro's model table)." + did_you_mean(
        model, trainable_names(models, today)
    )
