"""Job → the rules a request to create one must pass that need no storage: the provider, the
model, the method and its hyperparameters, the datasets' fit, the metadata. Each refusal is a
422 naming the field and why (`routes._build_job` applies them in this order)."""

from __future__ import annotations

import datetime

import msgspec

from service.datasets.local_tokens import TokenizerUnavailable, get_local_tokenizer
from service.datasets.records import Dataset
from service.errors import Unprocessable
from service.jobs.records import (
    BURRO_METADATA_KEY,
    MAX_CALLER_METADATA_KEYS,
    Hyperparameters,
    MethodIn,
    MethodType,
)
from service.model_help import retirement_note, unknown_for_training
from service.models import ModelInfo, ModelTable
from service.settings import Settings

# OpenAI stopped new fine-tuning for organisations on its own schedule; other providers follow
# their own, so `training_ends` in the model table binds only this provider.
OPENAI_PROVIDER = "openai"


def check_provider(
    settings: Settings, name: str | None, models: ModelTable | None = None, model: str = ""
) -> str:
    """The provider the job runs on, configured and usable: `name`, else the one the model
    table says trains `model`, else the deployment's default."""
    info = models.get(model) if models is not None else None
    provider = name or (info.provider if info is not None else None) or settings.default_provider
    configured = settings.provider(provider)
    if configured is None:
        raise Unprocessable(
            f"provider: no provider named {provider!r} is configured.", param="provider"
        )
    if provider == OPENAI_PROVIDER and not configured.api_key:
        raise Unprocessable(
            "provider: openai has no API key configured (OPENAI_API_KEY).", param="provider"
        )
    return provider


def check_model(
    models: ModelTable, model: str, provider: str, today: datetime.date, settings: Settings
) -> ModelInfo:
    """The table's entry for `model` (or its base), which must still train on `provider`."""
    info = models.get(model)
    if info is None:
        raise Unprocessable(f"model: {unknown_for_training(models, model, today)}", param="model")
    retired = retirement_note(models, model, today)
    if retired is not None:
        raise Unprocessable(f"model: {retired} It cannot be fine-tuned.", param="model")
    if (info.weights is not None) != settings.trains_locally(provider):
        where = "Burro's own trainers" if info.weights is not None else "a hosted provider"
        raise Unprocessable(
            f"provider: {info.name} is trained by {where}, not by {provider!r}"
            + (f" (use {info.provider!r})." if info.provider else "."),
            param="provider",
        )
    if provider == OPENAI_PROVIDER:
        closed = models.training_closed(model, today)
        if closed is not None:
            raise Unprocessable(
                f"model: OpenAI closed new fine-tuning jobs for {info.name} on "
                f"{closed.isoformat()}.",
                param="model",
            )
    return info


def check_method(
    info: ModelInfo, method: MethodIn | None, training: Dataset, validation: Dataset | None
) -> tuple[MethodType, Hyperparameters]:
    """The method (supervised unless given) and its hyperparameters: one the model offers, on
    datasets of the kind it needs."""
    if validation is not None and validation.kind != training.kind:
        raise Unprocessable(
            f"validation_dataset: {validation.id} is a {validation.kind} set but the "
            f"training set is {training.kind}.",
            param="validation_dataset",
        )
    method_type = method.type if method is not None else "supervised"
    if method_type not in info.methods:
        raise Unprocessable(
            f"method.type: {info.name} cannot be fine-tuned with {method_type}.",
            param="method.type",
        )
    wanted_kind = "preference" if method_type == "dpo" else "chat"
    if training.kind != wanted_kind:
        raise Unprocessable(
            f"method.type: {method_type} needs a {wanted_kind} dataset; training_dataset "
            f"{training.id} is a {training.kind} set.",
            param="method.type",
        )
    given = method.hyperparameters if method is not None else None
    hyperparameters = (
        Hyperparameters()
        if given is None
        else msgspec.convert(msgspec.to_builtins(given), Hyperparameters)
    )
    if hyperparameters.beta is not None and method_type != "dpo":
        raise Unprocessable(
            "method.hyperparameters.beta: only the dpo method takes beta.",
            param="method.hyperparameters.beta",
        )
    return method_type, hyperparameters


def check_examples_fit(info: ModelInfo, datasets: dict[str, Dataset | None]) -> None:
    """No example of the datasets (by field name) is longer than the model trains on.

    A local model's counts come from its own tokenizer: a dataset checked while it could not
    be loaded has no estimate for it, and if it still cannot be loaded the job is refused here
    (the trainer would count and cut examples that nobody checked).
    """
    for field, dataset in datasets.items():
        if dataset is None:
            continue
        estimate = next((e for e in dataset.estimates if e.model == info.name), None)
        if estimate is None and info.is_local:
            try:
                get_local_tokenizer(info)
            except TokenizerUnavailable as exc:
                raise Unprocessable(
                    f"model: {exc}; its examples cannot be counted.", param="model"
                ) from None
        if estimate is not None and estimate.examples_over_limit > 0:
            raise Unprocessable(
                f"{field}: {estimate.examples_over_limit} example(s) of {dataset.id} are longer "
                f"than {info.name}'s limit of {info.max_tokens_per_example} tokens per example.",
                param=field,
            )


def check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """The caller's metadata: without Burro's own key, and few enough keys to add it."""
    checked = dict(metadata or {})
    if BURRO_METADATA_KEY in checked:
        raise Unprocessable(
            f"metadata: the key {BURRO_METADATA_KEY!r} is Burro's own.", param="metadata"
        )
    if len(checked) > MAX_CALLER_METADATA_KEYS:
        raise Unprocessable(
            f"metadata: {len(checked)} keys, at most {MAX_CALLER_METADATA_KEYS} (OpenAI allows "
            f"16 and Burro uses one, {BURRO_METADATA_KEY!r}, to find its upstream job).",
            param="metadata",
        )
    return checked
