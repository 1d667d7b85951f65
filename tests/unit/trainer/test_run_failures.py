"""A run that cannot start fails at once, before any model is loaded, with its code."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.training import WITHOUT_TRAINER_EXTRA, donkey_request
from trainer.base_models import BaseModelSpec
from trainer.errors import BaseModelUnavailable, InvalidTrainingData

pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)

from trainer.training import train


def test_a_bad_base_model_path_fails_the_run_with_its_code(
    tmp_path: Path, donkey_file: Path
) -> None:
    missing = BaseModelSpec(name="missing", weights=str(tmp_path / "nowhere" / "model.gguf"))
    request = donkey_request(tmp_path / "run", donkey_file, tmp_path / "cache", base_model=missing)
    with pytest.raises(BaseModelUnavailable) as raised:
        train(request)
    assert raised.value.code == "base_model_unavailable"


def test_dpo_on_a_chat_file_is_invalid_training_data(
    tmp_path: Path, donkey_file: Path, model_cache: Path
) -> None:
    request = donkey_request(tmp_path / "run", donkey_file, model_cache, method="dpo")
    with pytest.raises(InvalidTrainingData, match="not a preference example"):
        train(request)
