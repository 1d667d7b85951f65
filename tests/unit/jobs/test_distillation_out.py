"""The step a distillation shows callers (`JobOut.distillation.phase`), from its own phase, the
job's status and its promotion gate."""

from __future__ import annotations

import msgspec
import pytest

from service.jobs.records import (
    Distillation,
    DistillationPhase,
    JobOut,
    JobStatus,
    Promotion,
    PromotionStatus,
)
from tests.support.data import job_record

TEACHER = Distillation(
    teacher="donkey",
    teacher_model="ft:gpt-4o-mini-2024-07-18:acme:donkey:abc",
    teacher_provider="openai",
    teacher_base_model="gpt-4o-mini-2024-07-18",
    prompts_dataset="ds_prompts",
)


@pytest.mark.parametrize(
    ("phase", "status", "gate", "shown"),
    [
        ("teacher", "pending", None, "teacher"),
        ("teacher", "cancelled", None, "finished"),
        ("teacher", "failed", None, "finished"),
        ("student", "queued", "pending", "student"),
        ("student", "running", "pending", "student"),
        ("student", "succeeded", "evaluating", "evaluation"),
        ("student", "succeeded", "promoted", "finished"),
        ("student", "succeeded", "not_promoted", "finished"),
        ("student", "succeeded", None, "finished"),
        ("student", "failed", "pending", "finished"),
    ],
)
def test_the_step_shown_follows_the_phase_the_status_and_the_gate(
    phase: DistillationPhase,
    status: JobStatus,
    gate: PromotionStatus | None,
    shown: str,
) -> None:
    promotion = None if gate is None else Promotion(evaluation_dataset="ds_held", status=gate)
    job = msgspec.structs.replace(
        job_record("job_1", status=status),
        distillation=msgspec.structs.replace(TEACHER, phase=phase),
        promotion=promotion,
    )
    out = JobOut.of(job)
    assert out.distillation is not None
    assert out.distillation.phase == shown


def test_a_job_without_a_teacher_shows_no_distillation() -> None:
    assert JobOut.of(job_record("job_1")).distillation is None
