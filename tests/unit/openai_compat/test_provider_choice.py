"""Which provider trains a job made through OpenAI's API: the model table's, when the model's
entry names one (the API side: integration/openai_compat/test_fine_tuning_jobs)."""

from __future__ import annotations

import msgspec

from service.models import ModelInfo, ModelTable
from service.openai_compat.jobs import trained_by


def test_the_provider_is_the_model_tables_when_its_entry_names_one() -> None:
    class ModelWithProvider(ModelInfo, frozen=True, kw_only=True):
        provider: str = "local"

    prices = {
        "encoding": "o200k_base",
        "max_tokens_per_example": 4096,
        "training_usd_per_1m_tokens": 0.0,
        "input_usd_per_1m_tokens": 0.0,
        "output_usd_per_1m_tokens": 0.0,
    }
    table = ModelTable(
        models=(
            ModelWithProvider(name="SmolLM2-135M-Instruct", **prices),  # type: ignore[arg-type]
            msgspec.convert({"name": "gpt-4o-mini", **prices}, ModelInfo),
        )
    )

    assert trained_by(table, "SmolLM2-135M-Instruct") == "local"
    assert trained_by(table, "ft:SmolLM2-135M-Instruct:acme:donkey:1") == "local"
    assert trained_by(table, "gpt-4o-mini") is None
    assert trained_by(table, "unknown") is None
