"""Evaluation → scores: how close an answer is to the reference, who wins, and the summary.

Similarity is rapidfuzz's normalised Indel similarity (`fuzz.ratio`, 0 to 1) over the texts
after rapidfuzz's default processing (lower case, punctuation and extra spaces dropped): it
rewards an answer that says the same thing in nearly the same words, and is 1 exactly when the
processed texts are equal. Exact match is stricter: equal texts once surrounding whitespace is
trimmed and inner runs of whitespace are one space.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from rapidfuzz import fuzz, utils

from service.evaluations.records import Answer, ModelSummary, Row, Summary, Winner

__all__ = ["exact_match", "similarity", "summarize", "winner"]

# Similarities closer than this are a tie (floating point noise is not a win).
TIE_TOLERANCE = 1e-9


def _normalise(text: str) -> str:
    return " ".join(text.split())


def exact_match(answer: str, reference: str) -> bool:
    return _normalise(answer) == _normalise(reference)


def similarity(answer: str, reference: str) -> float:
    """How close `answer` is to `reference`, from 0 (nothing shared) to 1 (the same)."""
    score = fuzz.ratio(answer, reference, processor=utils.default_process) / 100.0
    return round(score, 6)


def winner(fine_tuned: Answer, baseline: Answer) -> Winner | None:
    """The side whose answer is closer to the reference; a failed answer loses to any answer,
    and when both failed there is no winner."""
    if fine_tuned.error is not None and baseline.error is not None:
        return None
    if baseline.error is not None:
        return "fine_tuned"
    if fine_tuned.error is not None:
        return "baseline"
    difference = fine_tuned.similarity - baseline.similarity
    if abs(difference) <= TIE_TOLERANCE:
        return "tie"
    return "fine_tuned" if difference > 0 else "baseline"


def _mean(values: list[float]) -> float:
    return round(math.fsum(values) / len(values), 6) if values else 0.0


def _side(model: str, answers: list[Answer], wins: int) -> ModelSummary:
    answered = [a for a in answers if a.error is None]
    exact = sum(1 for a in answered if a.exact_match)
    costs = [a.cost_usd for a in answered]
    known = [c for c in costs if c is not None]
    return ModelSummary(
        model=model,
        answered=len(answered),
        errors=len(answers) - len(answered),
        wins=wins,
        exact_matches=exact,
        exact_match_rate=round(exact / len(answered), 6) if answered else 0.0,
        mean_similarity=_mean([a.similarity for a in answered]),
        mean_latency_ms=round(_mean([a.latency_ms for a in answered]), 3),
        prompt_tokens=sum(a.prompt_tokens for a in answered),
        completion_tokens=sum(a.completion_tokens for a in answered),
        # None when no price is known for the model (it is not in the model table).
        cost_usd=round(math.fsum(known), 8) if known or not costs else None,
    )


def summarize(rows: Iterable[Row], *, model: str, baseline_model: str) -> Summary:
    """Per-model win counts and mean scores over `rows`; the overall winner is the side with
    more wins (ties between the sides make it a "tie")."""
    rows = list(rows)
    wins = {"fine_tuned": 0, "baseline": 0, "tie": 0}
    for row in rows:
        if row.winner is not None:
            wins[row.winner] += 1
    overall: Winner | None
    if wins["fine_tuned"] + wins["baseline"] + wins["tie"] == 0:
        overall = None
    elif wins["fine_tuned"] > wins["baseline"]:
        overall = "fine_tuned"
    elif wins["baseline"] > wins["fine_tuned"]:
        overall = "baseline"
    else:
        overall = "tie"
    return Summary(
        examples=len(rows),
        wins=wins,
        winner=overall,
        fine_tuned=_side(model, [r.fine_tuned for r in rows], wins["fine_tuned"]),
        baseline=_side(baseline_model, [r.baseline for r in rows], wins["baseline"]),
    )
