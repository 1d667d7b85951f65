"""The supervised loss covers assistant turns only, skips `weight: 0`, and cuts long examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.training import WITHOUT_TRAINER_EXTRA
from trainer.data import (
    IGNORE_INDEX,
    ChatExample,
    label_example,
    label_examples,
    read_chat_file,
    read_preference_file,
)
from trainer.errors import InvalidTrainingData

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)


def learned_text(tokenizer: PreTrainedTokenizerBase, labels: list[int]) -> str:
    text = tokenizer.decode([t for t in labels if t != IGNORE_INDEX])
    assert isinstance(text, str)
    return text


def chat(*turns: tuple[str, str], weights: dict[int, int] | None = None) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Eres Burro."}]
    for i, (role, content) in enumerate(turns):
        message: dict[str, Any] = {"role": role, "content": content}
        if weights and i in weights:
            message["weight"] = weights[i]
        messages.append(message)
    return {"messages": messages}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_only_the_assistant_answer_and_its_end_of_turn_are_learned(
    tokenizer: PreTrainedTokenizerBase, tmp_path: Path
) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl", [chat(("user", "¿Qué desayunas?"), ("assistant", "¡Gofres!"))]
    )
    [example] = read_chat_file(path)
    labelled = label_example(tokenizer, example, max_tokens=512)

    assert learned_text(tokenizer, labelled.labels) == "¡Gofres!<|im_end|>\n"
    assert labelled.input_ids == tokenizer.apply_chat_template(
        example.messages, tokenize=True, return_dict=False
    )
    learned = [i for i, t in enumerate(labelled.labels) if t != IGNORE_INDEX]
    assert learned == list(range(learned[0], len(labelled.labels)))  # one span, at the end


def test_an_assistant_message_with_weight_0_is_not_learned(
    tokenizer: PreTrainedTokenizerBase, tmp_path: Path
) -> None:
    row = chat(
        ("user", "Hola"),
        ("assistant", "Respuesta mala"),
        ("user", "Otra vez"),
        ("assistant", "Respuesta buena"),
        weights={1: 0},
    )
    [example] = read_chat_file(write_jsonl(tmp_path / "w.jsonl", [row]))
    labelled = label_example(tokenizer, example, max_tokens=512)

    assert learned_text(tokenizer, labelled.labels) == "Respuesta buena<|im_end|>\n"


def test_every_assistant_turn_without_weight_0_is_learned(
    tokenizer: PreTrainedTokenizerBase, tmp_path: Path
) -> None:
    row = chat(("user", "Hola"), ("assistant", "Uno"), ("user", "Y"), ("assistant", "Dos"))
    [example] = read_chat_file(write_jsonl(tmp_path / "two.jsonl", [row]))
    labelled = label_example(tokenizer, example, max_tokens=512)

    assert learned_text(tokenizer, labelled.labels) == "Uno<|im_end|>\nDos<|im_end|>\n"


def test_an_example_over_the_token_limit_is_cut_at_the_limit(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    example = ChatExample(
        messages=[
            {"role": "user", "content": "Cuéntame"},
            {"role": "assistant", "content": "gofres " * 200},
        ],
        learned=[False, True],
    )
    labelled = label_example(tokenizer, example, max_tokens=64)

    assert labelled.truncated
    assert len(labelled.input_ids) == len(labelled.labels) == 64
    assert labelled.n_labelled > 0


def test_examples_with_nothing_left_to_learn_after_the_cut_are_skipped(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    long_prompt = ChatExample(
        messages=[
            {"role": "user", "content": "palabra " * 300},
            {"role": "assistant", "content": "Vale"},
        ],
        learned=[False, True],
    )
    short = ChatExample(
        messages=[{"role": "user", "content": "Hola"}, {"role": "assistant", "content": "Hola"}],
        learned=[False, True],
    )
    labelled = label_examples(tokenizer, [long_prompt, short], max_tokens=100)

    assert (len(labelled.examples), labelled.truncated, labelled.skipped) == (1, 1, 1)
    with pytest.raises(InvalidTrainingData) as raised:
        label_examples(tokenizer, [long_prompt], max_tokens=100)
    assert raised.value.code == "invalid_training_data"


def test_text_parts_are_joined_and_images_are_refused(tmp_path: Path) -> None:
    parts = {
        "role": "user",
        "content": [{"type": "text", "text": "Ho"}, {"type": "text", "text": "la"}],
    }
    row = {"messages": [parts, {"role": "assistant", "content": "Hola"}]}
    [example] = read_chat_file(write_jsonl(tmp_path / "parts.jsonl", [row]))
    assert example.messages[0]["content"] == "Hola"

    image = {"type": "image_url", "image_url": {"url": "https://example.com/burro.png"}}
    row = {
        "messages": [{"role": "user", "content": [image]}, {"role": "assistant", "content": "x"}]
    }
    with pytest.raises(InvalidTrainingData, match="image_url"):
        read_chat_file(write_jsonl(tmp_path / "image.jsonl", [row]))


def test_a_line_that_is_not_a_chat_example_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(chat(("user", "a"), ("assistant", "b"))) + "\n" + '{"nope": 1}\n')
    with pytest.raises(InvalidTrainingData, match=r"bad\.jsonl line 2"):
        read_chat_file(path)


def test_preference_examples_become_prompt_chosen_rejected(tmp_path: Path) -> None:
    row = {
        "input": {"messages": [{"role": "user", "content": "¿Quién es tu amigo?"}]},
        "preferred_output": [{"role": "assistant", "content": "¡Shrek!"}],
        "non_preferred_output": [{"role": "assistant", "content": "Nadie."}],
    }
    [example] = read_preference_file(write_jsonl(tmp_path / "p.jsonl", [row]))

    assert example.prompt == [{"role": "user", "content": "¿Quién es tu amigo?"}]
    assert example.chosen == [{"role": "assistant", "content": "¡Shrek!"}]
    assert example.rejected == [{"role": "assistant", "content": "Nadie."}]
