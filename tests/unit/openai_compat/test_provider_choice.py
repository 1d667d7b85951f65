"""Which provider trains a job made through OpenAI's API: the model table's, when the model's
entry names one (the API side: integration/openai_compat/test_fine_tuning_jobs)."""

from __future__ import annotations

from service.models import ModelTable
from service.openai_compat.jobs import trained_by


def test_the_provider_is_the_model_tables_when_its_entry_names_one() -> None:
    table = ModelTable.load()

    assert trained_by(table, "SmolLM2-135M-Instruct") == "local"
    assert trained_by(table, "ft:SmolLM2-135M-Instruct:acme:donkey:job_1") == "local"
    assert trained_by(table, "gpt-4o-mini-2024-07-18") is None
    assert trained_by(table, "unknown") is None
