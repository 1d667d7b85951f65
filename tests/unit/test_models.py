"""The model table: shipped facts, overrides by file, ft: resolution, retirement dates."""

from __future__ import annotations

import datetime
from pathlib import Path

import msgspec
import pytest

from service.models import ModelTable, base_model_name


@pytest.fixture(scope="module")
def table() -> ModelTable:
    return ModelTable.load()


def test_shipped_table_has_todays_prices(table: ModelTable) -> None:
    prices = {m.name: m.training_usd_per_1m_tokens for m in table}
    assert prices == {
        "gpt-4.1-2025-04-14": 25.0,
        "gpt-4.1-mini-2025-04-14": 5.0,
        "gpt-4.1-nano-2025-04-14": 1.5,
        "gpt-4o-2024-08-06": 25.0,
        "gpt-4o-mini-2024-07-18": 3.0,
        "gpt-3.5-turbo-0125": 8.0,
        "SmolLM2-135M-Instruct": 0.0,  # trained by Burro itself: priced by trainer time
    }


def test_gpt35_counts_with_cl100k_and_a_smaller_limit(table: ModelTable) -> None:
    info = table.get("gpt-3.5-turbo-0125")
    assert info is not None
    assert (info.encoding, info.max_tokens_per_example) == ("cl100k_base", 16385)
    assert info.methods == ("supervised",)


def test_dpo_models(table: ModelTable) -> None:
    assert {m.name for m in table if "dpo" in m.methods} == {
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano-2025-04-14",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
        "SmolLM2-135M-Instruct",
    }


def test_fine_tuned_model_resolves_to_its_base(table: ModelTable) -> None:
    info = table.get("ft:gpt-4.1-mini-2025-04-14:acme:burro-shrek:AbC123")
    assert info is not None and info.name == "gpt-4.1-mini-2025-04-14"
    assert base_model_name("ft:gpt-4o-2024-08-06:acme::xyz") == "gpt-4o-2024-08-06"


def test_alias_resolves(table: ModelTable) -> None:
    info = table.get("gpt-4o-mini")
    assert info is not None and info.name == "gpt-4o-mini-2024-07-18"


def test_unknown_model_is_none(table: ModelTable) -> None:
    assert table.get("gpt-5-turbo-9000") is None
    assert table.is_retired("gpt-5-turbo-9000", datetime.date(2030, 1, 1)) is None


def test_retired_from_its_shutdown_day(table: ModelTable) -> None:
    day = datetime.date(2026, 10, 23)
    assert table.is_retired("gpt-3.5-turbo-0125", day - datetime.timedelta(days=1)) is None
    assert table.is_retired("gpt-3.5-turbo-0125", day) == day
    assert table.is_retired("ft:gpt-4.1-nano-2025-04-14:o:s:i", day) == day
    assert table.is_retired("gpt-4.1-2025-04-14", day) is None


def test_training_closes_on_2027_01_06_before_shutdown(table: ModelTable) -> None:
    closes = datetime.date(2027, 1, 6)
    assert table.training_closed("gpt-4o-2024-08-06", datetime.date(2027, 1, 5)) is None
    assert table.training_closed("gpt-4o-2024-08-06", closes) == closes
    assert table.is_retired("gpt-4o-2024-08-06", closes) is None
    assert table.is_retired("gpt-4o-2024-08-06", datetime.date(2027, 1, 14)) == datetime.date(
        2027, 1, 14
    )


def test_deployment_overrides_the_table_with_a_file(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        """
[[models]]
name = "my-model"
encoding = "cl100k_base"
max_tokens_per_example = 1000
training_usd_per_1m_tokens = 1.0
input_usd_per_1m_tokens = 0.5
output_usd_per_1m_tokens = 2.0
"""
    )
    table = ModelTable.load(path)
    info = table.get("my-model")
    assert info is not None and info.shutdown is None and info.methods == ("supervised",)
    assert table.get("gpt-4.1-2025-04-14") is None


def test_bad_table_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[[models]]\nname = "x"\nencoding = "p50k_base"\n')
    with pytest.raises(msgspec.ValidationError, match="encoding"):
        ModelTable.load(path)
