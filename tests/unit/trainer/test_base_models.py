"""A base model that cannot be loaded fails with `base_model_unavailable` and says why."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from tests.support.training import WITHOUT_TRAINER_EXTRA
from trainer.base_models import SMOLLM2_135M, BaseModelSpec, load_model, locate_weights, prepare
from trainer.errors import BaseModelUnavailable

pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)


def test_the_default_model_is_found_inside_its_package_without_importing_it() -> None:
    path = locate_weights(SMOLLM2_135M)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()


def test_a_path_that_does_not_exist_is_base_model_unavailable(tmp_path: Path) -> None:
    spec = BaseModelSpec(name="ghost", weights=str(tmp_path / "missing.gguf"))
    with pytest.raises(BaseModelUnavailable) as raised:
        prepare(spec, tmp_path / "cache")
    assert raised.value.code == "base_model_unavailable"
    assert "missing.gguf" in raised.value.message and "weights" in raised.value.message


def test_a_package_that_is_not_installed_is_base_model_unavailable(tmp_path: Path) -> None:
    spec = BaseModelSpec(name="ghost", package="no_such_burro_package", weights="m.gguf")
    with pytest.raises(BaseModelUnavailable, match="no_such_burro_package"):
        prepare(spec, tmp_path)


def test_a_file_that_is_not_gguf_is_base_model_unavailable(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a model" * 100)
    spec = BaseModelSpec(name="bogus", weights=str(bogus))
    with pytest.raises(BaseModelUnavailable) as raised:
        prepare(spec, tmp_path / "cache")
    assert "bogus" in raised.value.message
    assert not any((tmp_path / "cache").glob("bogus-*")), "nothing half-prepared is left behind"


def test_a_directory_without_weights_is_base_model_unavailable(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_bytes(msgspec.json.encode({"model_type": "llama"}))
    spec = BaseModelSpec(name="empty", weights=str(tmp_path / "model"))
    prepared = prepare(spec, tmp_path / "cache")  # a model directory is used as it is
    with pytest.raises(BaseModelUnavailable, match="empty"):
        load_model(spec, prepared)


def test_the_prepared_model_trains_as_a_plain_float_model(smollm2_dir: Path) -> None:
    config = msgspec.json.decode((smollm2_dir / "config.json").read_bytes())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
