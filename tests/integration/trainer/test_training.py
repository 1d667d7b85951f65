"""Real LoRA runs on SmolLM2: the Donkey learns, seeds repeat, cancel and resume behave."""

from __future__ import annotations

from pathlib import Path

import pytest
from rapidfuzz import fuzz

from service.openai_shapes import RESULT_CSV_COLUMNS
from tests.support.training import (
    TRAINING_TIMEOUT,
    WITHOUT_TRAINER_EXTRA,
    Recorder,
    curve,
    donkey_request,
)
from trainer.base_models import SMOLLM2_135M
from trainer.examples import HELD_OUT, PAIRS, conversation, write_chat_file
from trainer.hyperparameters import Hyperparameters
from trainer.runs import TrainingResult

pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)

from trainer.serving.engine import Engine, SamplingParams
from trainer.training import latest_checkpoint, train

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TRAINING_TIMEOUT)]

# Two epochs of three steps: long enough to checkpoint, resume and compare curves.
SHORT = Hyperparameters(n_epochs=2, batch_size=4, learning_rate_multiplier=2.0)


@pytest.fixture(scope="module")
def short_run(
    tmp_path_factory: pytest.TempPathFactory, donkey_file: Path, model_cache: Path
) -> TrainingResult:
    output = tmp_path_factory.mktemp("short") / "run"
    return train(donkey_request(output, donkey_file, model_cache, hyperparameters=SHORT))


def test_the_donkey_learns_its_answers(trained_donkey: TrainingResult, engine: Engine) -> None:
    """Loss falls, and on the training prompts the fine-tuned answers are closer to the
    references than the base model's."""
    losses = [loss for _, loss in curve(trained_donkey)]
    assert trained_donkey.status == "succeeded"
    assert len(losses) == trained_donkey.plan.total_steps
    assert sum(losses[-6:]) / 6 < 0.5 * sum(losses[:6]) / 6

    greedy = SamplingParams(temperature=0, max_tokens=32)
    tuned_scores, base_scores = [], []
    for question, reference in PAIRS:
        messages = conversation(question)
        tuned = engine.generate("ft:SmolLM2-135M-Instruct:test:donkey:1", messages, greedy).text
        base = engine.generate(SMOLLM2_135M.name, messages, greedy).text
        tuned_scores.append(fuzz.ratio(tuned, reference))
        base_scores.append(fuzz.ratio(base, reference))
    assert sum(tuned_scores) / len(PAIRS) > sum(base_scores) / len(PAIRS) + 20


def test_each_epoch_leaves_a_servable_checkpoint_and_the_csv_has_openai_columns(
    trained_donkey: TrainingResult,
) -> None:
    plan = trained_donkey.plan
    steps = [c.step for c in trained_donkey.checkpoints]
    assert steps == [plan.steps_per_epoch * e for e in range(1, plan.hyperparameters.n_epochs + 1)]
    for checkpoint in trained_donkey.checkpoints:
        assert (checkpoint.path / "adapter_config.json").is_file()
    # Only the newest checkpoint keeps what resuming needs.
    assert [(c.path / "optimizer.pt").is_file() for c in trained_donkey.checkpoints][-2:] == [
        False,
        True,
    ]
    assert trained_donkey.adapter_dir is not None
    assert (trained_donkey.adapter_dir / "adapter_config.json").is_file()
    header = trained_donkey.results_file.read_text().splitlines()[0]
    assert tuple(header.split(",")) == RESULT_CSV_COLUMNS


def test_the_same_seed_gives_the_same_loss_curve(
    short_run: TrainingResult, tmp_path: Path, donkey_file: Path, model_cache: Path
) -> None:
    again = train(
        donkey_request(tmp_path / "again", donkey_file, model_cache, hyperparameters=SHORT)
    )
    assert again.hyperparameters == short_run.hyperparameters
    assert curve(again) == curve(short_run)
    assert len(curve(again)) == 6


def test_cancel_stops_after_the_step_during_which_it_came(
    tmp_path: Path, donkey_file: Path, model_cache: Path
) -> None:
    hooks = Recorder(stop_after=2)
    result = train(
        donkey_request(tmp_path / "run", donkey_file, model_cache, hyperparameters=SHORT), hooks
    )

    assert result.status == "cancelled" and result.adapter_dir is None
    assert result.steps == 2 and [m.step for m in hooks.steps] == [1, 2]
    assert hooks.asked_after[:3] == [0, 1, 2], "asked before the first step and after each"
    assert len(curve(result)) == 2


def test_a_run_resumed_from_its_checkpoint_ends_as_an_uninterrupted_one(
    short_run: TrainingResult, tmp_path: Path, donkey_file: Path, model_cache: Path
) -> None:
    request = donkey_request(tmp_path / "run", donkey_file, model_cache, hyperparameters=SHORT)
    first = train(request, Recorder(stop_after=4))  # past the first epoch's checkpoint
    assert first.status == "cancelled"
    assert latest_checkpoint(request.output_dir) == request.output_dir / "checkpoint-3"

    hooks = Recorder()
    resumed = train(request, hooks)

    assert resumed.status == "succeeded" and resumed.plan.resumed_from_step == 3
    assert [m.step for m in hooks.steps] == [4, 5, 6]
    expected = curve(short_run)
    assert [s for s, _ in curve(resumed)] == [s for s, _ in expected]
    assert [loss for _, loss in curve(resumed)] == pytest.approx(
        [loss for _, loss in expected], rel=1e-4
    )


def test_a_validation_set_gives_valid_loss_every_step_and_full_at_epoch_end(
    tmp_path: Path, donkey_file: Path, model_cache: Path
) -> None:
    validation = write_chat_file(tmp_path / "held-out.jsonl", HELD_OUT)
    hooks = Recorder()
    one_epoch = Hyperparameters(n_epochs=1, batch_size=4, learning_rate_multiplier=2.0)
    request = donkey_request(
        tmp_path / "run",
        donkey_file,
        model_cache,
        hyperparameters=one_epoch,
        validation_file=validation,
    )
    train(request, hooks)

    assert all(m.valid_loss is not None and m.valid_loss > 0 for m in hooks.steps)
    assert [m.full_valid_loss is not None for m in hooks.steps] == [False, False, True]
    assert hooks.steps[-1].message.startswith("step 3/3: train loss ")
    assert ", valid loss " in hooks.steps[-1].message
    assert all(m.remaining_seconds >= 0 and m.step_seconds > 0 for m in hooks.steps)
