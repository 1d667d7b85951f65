"""A distillation's prompts: each example up to its last assistant turn (the old answer is not
used), a held-out share fixed by the job, and training examples that learn the teacher's answer
alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.distillation.prompts import (
    distilled_example,
    holdout_count,
    jsonl,
    read_prompts,
    split,
)


def test_a_prompt_is_the_conversation_before_its_last_answer_and_the_answer_is_not_sent(
    tmp_path: Path,
) -> None:
    tools = [{"type": "function", "function": {"name": "hay", "parameters": {}}}]
    rows: list[dict[str, Any]] = [
        {
            "messages": [
                {"role": "system", "content": "Be Donkey."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!", "weight": 1},
                {"role": "user", "content": "Waffles?"},
                {"role": "assistant", "content": "The old answer."},
            ],
            "tools": tools,
        },
        {"messages": [{"role": "user", "content": "Alone"}, {"role": "assistant", "content": "x"}]},
    ]
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(jsonl(rows) + b"\n")
    first, second = read_prompts(path)
    assert first.messages == [
        {"role": "system", "content": "Be Donkey."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Waffles?"},
    ]
    assert first.tools == tools
    assert second.messages == [{"role": "user", "content": "Alone"}]
    assert "The old answer." not in json.dumps([first.messages, second.messages])


def test_the_distilled_example_learns_only_the_teachers_answer(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(
        jsonl(
            [
                {
                    "messages": [
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello!"},
                        {"role": "user", "content": "Waffles?"},
                        {"role": "assistant", "content": "old"},
                    ]
                }
            ]
        )
    )
    (prompt,) = read_prompts(path)
    assert distilled_example(prompt, "¡Gofres!") == {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!", "weight": 0},
            {"role": "user", "content": "Waffles?"},
            {"role": "assistant", "content": "¡Gofres!"},
        ]
    }


@pytest.mark.parametrize(
    ("prompts", "holdout", "held"),
    [(12, 0.2, 2), (100, 0.2, 20), (12, 0.01, 1), (12, 3, 3), (5, 0.5, 2)],
)
def test_the_held_out_count_is_a_rounded_share_of_at_least_one_or_the_count_given(
    prompts: int, holdout: float, held: int
) -> None:
    assert holdout_count(prompts, holdout) == held


def test_the_split_holds_out_the_same_prompts_for_the_same_job_and_others_for_another() -> None:
    training, held = split(50, 0.2, "job_a")
    assert len(held) == 10 and len(training) == 40
    assert sorted(training + held) == list(range(50))
    assert training == sorted(training) and held == sorted(held)
    assert split(50, 0.2, "job_a") == (training, held)
    assert split(50, 0.2, "job_b")[1] != held
    # Drawn across the file, not its tail: a file sorted by topic still tests every topic.
    assert held != list(range(40, 50))


def test_a_count_larger_than_the_prompts_holds_out_them_all() -> None:
    assert split(3, 5, "job_a") == ([], [0, 1, 2])
