"""Names that belong to models: an alias may not take one, or a chat by that name would reach
the caller's fine-tuned model when it meant the base model (or the other way round).

Taken are the names and aliases of every model in the model table (retired ones included), the
base models a deployment opens for chat (`BURRO_ALLOWED_BASE_MODELS`), and any name shaped like
one of OpenAI's base model ids (`gpt-4o`, `gpt-4.1-mini-2025-04-14`, `gpt-3.5-turbo-0125`,
`o3-mini`, …), which a provider may serve even when the table does not list it.
"""

from __future__ import annotations

import re

from service.errors import Unprocessable
from service.models import ModelTable

_OPENAI_BASE_MODEL = re.compile(
    r"^(?:gpt-\d(?:\.\d+)?o?(?:-(?:mini|nano|turbo|pro|preview|16k|32k|instruct))*"
    r"|o\d(?:-(?:mini|pro|preview))*|chatgpt-4o|davinci|babbage)"
    r"(?:-\d{4}(?:-\d{2}-\d{2})?|-latest|-\d{3})?$",
    re.IGNORECASE,
)


class AliasNameTaken(Unprocessable):
    code = "invalid_alias_name"


def model_name_taken(name: str, models: ModelTable, allowed_base_models: tuple[str, ...]) -> str:
    """Why `name` cannot be an alias ("" when it can)."""
    lowered = name.lower()
    for model in models:
        if lowered in (n.lower() for n in (model.name, *model.aliases)):
            return f"{name!r} names {model.name} in the model table"
    if lowered in (m.lower() for m in allowed_base_models):
        return f"{name!r} is a base model open for chat (BURRO_ALLOWED_BASE_MODELS)"
    if _OPENAI_BASE_MODEL.match(name):
        return f"{name!r} is shaped like one of OpenAI's base model names"
    return ""


def check_alias_name(
    name: str, models: ModelTable, allowed_base_models: tuple[str, ...], *, param: str = "name"
) -> None:
    """Raise AliasNameTaken (422) when `name` is a model's name."""
    reason = model_name_taken(name, models, allowed_base_models)
    if reason:
        raise AliasNameTaken(
            f"{param}: {reason}; an alias needs a name of its own (e.g. '{name}-tuned').",
            param=param,
        )
