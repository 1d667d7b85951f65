"""Scores, winners and summaries, and how a dataset line becomes a prompt and a reference."""

from __future__ import annotations

import json
from pathlib import Path

from service.evaluations.examples import read_examples
from service.evaluations.records import Answer, PromptMessage, Row
from service.evaluations.scoring import exact_match, similarity, summarize, winner


def answer(text: str, reference: str, error: str | None = None) -> Answer:
    return Answer(
        model="m",
        text=text,
        exact_match=exact_match(text, reference),
        similarity=0.0 if error else similarity(text, reference),
        prompt_tokens=10,
        completion_tokens=5,
        latency_ms=3.0,
        cost_usd=0.001,
        error=error,
    )


def test_exact_match_ignores_only_surrounding_and_repeated_whitespace() -> None:
    assert exact_match("  Bale 1 is  golden.\n", "Bale 1 is golden.")
    assert not exact_match("bale 1 is golden.", "Bale 1 is golden.")


def test_similarity_is_rapidfuzz_ratio_scaled_to_one() -> None:
    assert similarity("Bale 1 is golden.", "bale 1 is golden") == 1.0
    assert similarity("", "Bale 1") == 0.0
    close, far = similarity("Bale 1 is gold", "Bale 1 is golden"), similarity("No", "Bale 1")
    assert 0.8 < close < 1.0 and far < 0.3


def test_the_closer_answer_wins_and_a_failed_one_loses() -> None:
    ref = "Bale 1 is golden."
    assert winner(answer(ref, ref), answer("Hay.", ref)) == "fine_tuned"
    assert winner(answer("Hay.", ref), answer(ref, ref)) == "baseline"
    assert winner(answer(ref, ref), answer(ref, ref)) == "tie"
    assert winner(answer("", ref, error="boom"), answer("Hay.", ref)) == "baseline"
    assert winner(answer("", ref, error="x"), answer("", ref, error="y")) is None


def test_the_summary_counts_wins_and_averages_over_answered_examples() -> None:
    ref = "Bale 1 is golden."
    rows = [
        Row(
            index=i,
            line=i + 1,
            prompt=[PromptMessage(role="user", content="?")],
            reference=ref,
            fine_tuned=tuned,
            baseline=base,
            winner=winner(tuned, base),
        )
        for i, (tuned, base) in enumerate(
            [
                (answer(ref, ref), answer("Hay.", ref)),
                (answer(ref, ref), answer("", ref, error="upstream_500: boom")),
                (answer("Hay.", ref), answer(ref, ref)),
            ]
        )
    ]
    summary = summarize(rows, model="ft:x", baseline_model="base")
    assert summary.wins == {"fine_tuned": 2, "baseline": 1, "tie": 0}
    assert summary.winner == "fine_tuned"
    assert summary.fine_tuned.answered == 3 and summary.fine_tuned.exact_matches == 2
    assert summary.baseline.answered == 2 and summary.baseline.errors == 1
    assert summary.baseline.wins == 1
    assert summary.baseline.mean_similarity == round((rows[0].baseline.similarity + 1.0) / 2, 6)
    assert summary.fine_tuned.cost_usd == 0.003 and summary.baseline.prompt_tokens == 20


def test_the_last_assistant_message_is_the_reference_and_what_precedes_it_the_prompt(
    tmp_path: Path,
) -> None:
    lines = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello", "weight": 0},
                {"role": "user", "content": [{"type": "text", "text": "Colour of hay?"}]},
                {"role": "assistant", "content": "Golden."},
            ]
        },
        {"messages": [{"role": "assistant", "content": "No prompt before me."}]},
        {"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []},
        {
            "messages": [
                {"role": "user", "content": "Second?"},
                {"role": "assistant", "content": "Yes"},
            ]
        },
    ]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first, second = read_examples(path, 10)
    assert first.line == 1 and first.reference == "Golden."
    assert [m.content for m in first.prompt] == ["Be brief.", "Hi", "Hello", "Colour of hay?"]
    assert first.messages[2] == {"role": "assistant", "content": "Hello"}  # no `weight`
    assert second.line == 4 and second.reference == "Yes"
    assert [e.line for e in read_examples(path, 1)] == [1]
