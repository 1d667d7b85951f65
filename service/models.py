"""The model table: what each fine-tunable model costs, how it counts tokens, when it retires."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec

__all__ = ["ModelInfo", "ModelTable", "RetiredModel", "base_model_name", "today"]

Method = Literal["supervised", "dpo"]
Price = Annotated[float, msgspec.Meta(ge=0)]


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One fine-tunable base model, as the table file describes it."""

    name: str
    # The tiktoken vocabulary that counts a dataset's tokens; required but for local models,
    # which count with their own tokenizer (service.datasets.local_tokens).
    encoding: Literal["o200k_base", "cl100k_base"] | None = None
    max_tokens_per_example: Annotated[int, msgspec.Meta(gt=0)]
    training_usd_per_1m_tokens: Price
    input_usd_per_1m_tokens: Price
    output_usd_per_1m_tokens: Price
    methods: tuple[Method, ...] = ("supervised",)
    shutdown: datetime.date | None = None
    training_ends: datetime.date | None = None
    aliases: tuple[str, ...] = ()
    replacement: str | None = None  # what to fine-tune instead once this one retires
    # The provider that trains it when a job names none ("local": Burro's own trainer).
    provider: str | None = None
    # Local models: a .gguf file or a Hugging Face model directory, relative to `package` (an
    # installed Python package holding the weights) when that is set.
    weights: str | None = None
    package: str | None = None
    # A Jinja chat template replacing the model's own (local models; None: the model's).
    chat_template: str | None = None
    # Local models: trained tokens per second of one trainer, which turns an estimate's tokens
    # into a duration and, at BURRO_TRAINER_USD_PER_HOUR, into a cost (None: no duration).
    trainer_tokens_per_second: Annotated[float, msgspec.Meta(gt=0)] | None = None

    def __post_init__(self) -> None:
        if self.provider == "local":
            if self.weights is None:
                raise msgspec.ValidationError(f"{self.name}: a local model needs `weights`")
            if self.encoding is not None:
                raise msgspec.ValidationError(
                    f"{self.name}: a local model counts with its own tokenizer; drop `encoding`"
                )
        elif self.encoding is None:
            raise msgspec.ValidationError(
                f"{self.name}: `encoding` is required (o200k_base or cl100k_base) for a model "
                "that a hosted provider trains"
            )

    @property
    def is_local(self) -> bool:
        """Burro's own trainer trains it, and its own tokenizer counts it."""
        return self.provider == "local"

    @property
    def counter(self) -> str:
        """What counts this model's tokens: its tiktoken encoding, or `local:NAME`."""
        return self.encoding if self.encoding is not None else f"local:{self.name}"


class RetiredModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A model that can no longer be fine-tuned, kept so that its name gets a useful answer
    ("retired on …, use … instead") rather than reading like a typo. Never priced."""

    name: str
    shutdown: datetime.date
    replacement: str | None = None
    aliases: tuple[str, ...] = ()


class _TableFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    models: tuple[ModelInfo, ...]
    retired: tuple[RetiredModel, ...] = ()


def today() -> datetime.date:
    """Today's date in UTC, the one clock model retirement is judged by."""
    return datetime.datetime.now(datetime.UTC).date()


def base_model_name(model: str) -> str:
    """The base of a fine-tuned model id (`ft:BASE:org:suffix:id` → `BASE`); other names as is."""
    if model.startswith("ft:"):
        return model.split(":", 2)[1]
    return model


class ModelTable(msgspec.Struct, frozen=True, kw_only=True):
    """All fine-tunable models, looked up by name, alias, or fine-tuned model id."""

    models: tuple[ModelInfo, ...]
    retired: tuple[RetiredModel, ...] = ()

    @classmethod
    def load(cls, path: Path | None = None) -> ModelTable:
        """Read the table from `path`, or the one shipped with Burro when `path` is None.

        Raises `msgspec.ValidationError` (or `DecodeError`) naming the bad field of a bad file.
        """
        if path is None:
            data = (resources.files("service") / "models.toml").read_bytes()
        else:
            data = path.read_bytes()
        table = msgspec.toml.decode(data, type=_TableFile)
        names = [n for m in table.models for n in (m.name, *m.aliases)]
        names += [n for r in table.retired for n in (r.name, *r.aliases)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise msgspec.ValidationError(f"model names listed twice: {', '.join(duplicates)}")
        return cls(models=table.models, retired=table.retired)

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self.models)

    def get(self, model: str) -> ModelInfo | None:
        """The entry for `model`: a table name, an alias, or an `ft:` model built on one."""
        name = base_model_name(model)
        return next((m for m in self.models if name == m.name or name in m.aliases), None)

    def retired_entry(self, model: str) -> RetiredModel | None:
        """The `[[retired]]` entry for `model` (or the base of an `ft:` model), if any."""
        name = base_model_name(model)
        return next((m for m in self.retired if name == m.name or name in m.aliases), None)

    def shutdown(self, model: str, base_model: str | None = None) -> datetime.date | None:
        """The day `model` stops answering: its own entry's, an `ft:` model's base's, else
        (a model id that names no base, as some providers' do) `base_model`'s."""
        info = self.get(model)
        if info is None and base_model is not None:
            info = self.get(base_model)
        return None if info is None else info.shutdown

    def is_retired(self, model: str, today: datetime.date) -> datetime.date | None:
        """The day `model` (or its base) shut down, if that is `today` or earlier."""
        info = self.get(model)
        if info is None or info.shutdown is None or today < info.shutdown:
            return None
        return info.shutdown

    def training_closed(self, model: str, today: datetime.date) -> datetime.date | None:
        """The day new fine-tuning jobs for `model` stopped, if that is `today` or earlier.

        Jobs close on `training_ends`, or on `shutdown` when that comes first.
        """
        info = self.get(model)
        if info is None:
            return None
        ends = [d for d in (info.training_ends, info.shutdown) if d is not None]
        if not ends or today < min(ends):
            return None
        return min(ends)
