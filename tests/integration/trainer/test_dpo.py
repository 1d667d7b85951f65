"""`method: dpo` trains with TRL's DPO trainer on a preference set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.training import (
    TRAINING_TIMEOUT,
    WITHOUT_TRAINER_EXTRA,
    Recorder,
    curve,
    donkey_request,
)
from trainer.examples import PAIRS, SYSTEM
from trainer.hyperparameters import Hyperparameters

pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)

from trainer.training import train


def write_preferences(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for question, answer in PAIRS:
            row = {
                "input": {
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": question},
                    ]
                },
                "preferred_output": [{"role": "assistant", "content": answer}],
                "non_preferred_output": [{"role": "assistant", "content": "No lo sé."}],
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.timeout(TRAINING_TIMEOUT)
def test_dpo_trains_an_adapter_whose_preference_loss_falls(
    tmp_path: Path, model_cache: Path
) -> None:
    preferences = write_preferences(tmp_path / "prefs.jsonl")
    hooks = Recorder()
    hp = Hyperparameters(n_epochs=2, batch_size=4, learning_rate_multiplier=2.0)
    request = donkey_request(
        tmp_path / "run", preferences, model_cache, method="dpo", hyperparameters=hp
    )
    result = train(request, hooks)

    assert result.status == "succeeded" and result.hyperparameters.beta == 0.1
    assert result.adapter_dir is not None and (result.adapter_dir / "adapter_config.json").is_file()
    assert [m.step for m in hooks.steps] == [1, 2, 3, 4, 5, 6]
    assert [c.step for c in hooks.checkpoints] == [3, 6]
    losses = [loss for _, loss in curve(result)]
    assert losses[-1] < losses[0]
