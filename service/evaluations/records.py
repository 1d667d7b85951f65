"""The Evaluation: its stored record and rows, the request that starts one, its wire shapes.

An evaluation's header (status, summary) is one record in `Collection(redis, "evaluations")`;
its rows, one per test example, live in a hash `burro:evaluations:rows:{id}` keyed by the
row's index, so a worker writes each row as soon as it is scored and a second run of the same
evaluation finds the rows that are already done.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from service.store import PREFIX

EVALUATIONS = "evaluations"

EvaluationStatus = Literal["queued", "running", "completed", "failed"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed"})
# Which side won an example: the higher similarity to the reference wins.
Winner = Literal["fine_tuned", "baseline", "tie"]

MAX_EXAMPLES = 1000
DEFAULT_MAX_EXAMPLES = 50


def rows_key(evaluation_id: str) -> str:
    """Hash of the evaluation's rows: field = the row's index, value = the msgpack row."""
    return f"{PREFIX}:{EVALUATIONS}:rows:{evaluation_id}"


# --- Stored ----------------------------------------------------------------------------------


class PromptMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of an example's prompt, as text (tool calls as their JSON)."""

    role: str
    content: str


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """What one model answered to one prompt, and how it scores against the reference.

    On failure (`error` set) the text is empty and the scores are zero.
    """

    model: str
    text: str = ""
    exact_match: bool = False
    # rapidfuzz's normalised Indel similarity of answer and reference, 0 to 1.
    similarity: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None
    finish_reason: str | None = None
    error: str | None = None


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """One test example: its prompt, its reference answer, and both models' answers."""

    index: int
    line: int  # the example's line in the dataset file, counted from 1
    prompt: list[PromptMessage]
    reference: str
    fine_tuned: Answer
    baseline: Answer
    winner: Winner | None  # None when both models failed


class ModelSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One side's totals over the evaluated examples (means over those it answered)."""

    model: str
    answered: int
    errors: int
    wins: int
    exact_matches: int
    exact_match_rate: float
    mean_similarity: float
    mean_latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """Who wins how often: per-model win counts and mean scores, what a promotion gate reads."""

    examples: int
    wins: dict[str, int]  # {"fine_tuned": n, "baseline": n, "tie": n}
    winner: Winner | None  # the side with more wins; None when no example was answered
    fine_tuned: ModelSummary
    baseline: ModelSummary


class EvaluationError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    """An evaluation as stored in Redis. New fields get defaults; types never change."""

    id: str
    tenant: str
    status: EvaluationStatus
    job: str
    dataset: str
    model: str  # the fine-tuned model
    provider: str
    base_model: str  # what the fine-tuned model was trained from (its prices)
    baseline_model: str
    baseline_provider: str
    max_examples: int
    examples: int  # how many examples of the dataset are evaluated
    created_at: int
    updated_at: int
    started_at: int | None = None
    finished_at: int | None = None
    summary: Summary | None = None
    error: EvaluationError | None = None
    request_id: str | None = None
    # The model whose prices the baseline's answers cost (a fine-tuned baseline's base).
    baseline_base_model: str = ""
    # The longest answer asked of either model (a distillation's gate asks the student as its
    # teacher was asked); None: the models' own limits.
    max_tokens: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


# --- Requests --------------------------------------------------------------------------------


class EvaluationCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /v1/evaluations`."""

    job: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    dataset: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    baseline_model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    max_examples: Annotated[int, msgspec.Meta(ge=1, le=MAX_EXAMPLES)] = DEFAULT_MAX_EXAMPLES


# --- Responses -------------------------------------------------------------------------------


class ErrorOut(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


class ProgressOut(msgspec.Struct, frozen=True, kw_only=True):
    done: int
    total: int


class MessageOut(msgspec.Struct, frozen=True, kw_only=True):
    role: str
    content: str


class AnswerOut(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    text: str
    exact_match: bool
    similarity: float
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cost_usd: float | None
    finish_reason: str | None
    error: str | None

    @classmethod
    def of(cls, answer: Answer) -> AnswerOut:
        return cls(**msgspec.structs.asdict(answer))


class RowOut(msgspec.Struct, frozen=True, kw_only=True):
    """One example: `prompt` (the messages before the last assistant message), `reference`
    (that message), and each model's answer with its scores, tokens, latency and cost."""

    index: int
    line: int
    prompt: list[MessageOut]
    reference: str
    fine_tuned: AnswerOut
    baseline: AnswerOut
    winner: Winner | None

    @classmethod
    def of(cls, row: Row) -> RowOut:
        return cls(
            index=row.index,
            line=row.line,
            prompt=[MessageOut(role=m.role, content=m.content) for m in row.prompt],
            reference=row.reference,
            fine_tuned=AnswerOut.of(row.fine_tuned),
            baseline=AnswerOut.of(row.baseline),
            winner=row.winner,
        )


class ModelSummaryOut(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    answered: int
    errors: int
    wins: int
    exact_matches: int
    exact_match_rate: float
    mean_similarity: float
    mean_latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None

    @classmethod
    def of(cls, summary: ModelSummary) -> ModelSummaryOut:
        return cls(**msgspec.structs.asdict(summary))


class SummaryOut(msgspec.Struct, frozen=True, kw_only=True):
    examples: int
    wins: dict[str, int]
    winner: Winner | None
    fine_tuned: ModelSummaryOut
    baseline: ModelSummaryOut

    @classmethod
    def of(cls, summary: Summary) -> SummaryOut:
        return cls(
            examples=summary.examples,
            wins=dict(summary.wins),
            winner=summary.winner,
            fine_tuned=ModelSummaryOut.of(summary.fine_tuned),
            baseline=ModelSummaryOut.of(summary.baseline),
        )


class EvaluationOut(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An evaluation as callers see it; `rows` only when reading one evaluation."""

    id: str
    object: Literal["evaluation"]
    status: EvaluationStatus
    job: str
    dataset: str
    model: str
    baseline_model: str
    max_examples: int
    progress: ProgressOut
    summary: SummaryOut | None
    error: ErrorOut | None
    created_at: int
    updated_at: int
    started_at: int | None
    finished_at: int | None
    rows: list[RowOut] | None = None

    @classmethod
    def of(
        cls, evaluation: Evaluation, *, done: int, rows: list[Row] | None = None
    ) -> EvaluationOut:
        return cls(
            id=evaluation.id,
            object="evaluation",
            status=evaluation.status,
            job=evaluation.job,
            dataset=evaluation.dataset,
            model=evaluation.model,
            baseline_model=evaluation.baseline_model,
            max_examples=evaluation.max_examples,
            progress=ProgressOut(done=done, total=evaluation.examples),
            summary=None if evaluation.summary is None else SummaryOut.of(evaluation.summary),
            error=None
            if evaluation.error is None
            else ErrorOut(code=evaluation.error.code, message=evaluation.error.message),
            created_at=evaluation.created_at,
            updated_at=evaluation.updated_at,
            started_at=evaluation.started_at,
            finished_at=evaluation.finished_at,
            rows=None if rows is None else [RowOut.of(r) for r in rows],
        )


class EvaluationList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[EvaluationOut]
    has_more: bool
