"""Fine-tuning jobs move through OpenAI's statuses on the sandbox's clock."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator

import openai
import pytest

from sandbox.config import SandboxConfig
from sandbox.testing import ManualClock
from tests.support.data import chat_examples, jsonl
from tests.support.fixtures import StartSandbox
from tests.support.sandboxes import succeeded, upload_training

MODEL = "gpt-4o-mini-2024-07-18"
STEP = 10.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_764_160_000.0)


@pytest.fixture
def manual(start_sandbox: StartSandbox, clock: ManualClock) -> Iterator[openai.OpenAI]:
    """A upstream of a sandbox whose clock moves only when the test says so."""
    url = start_sandbox(SandboxConfig(step_seconds=STEP), clock=clock)
    with openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0) as upstream:
        yield upstream


def test_a_job_succeeds_with_model_events_checkpoints_and_result_file(
    upstream: openai.OpenAI,
) -> None:
    file_id = upload_training(upstream, jsonl(chat_examples(12)))
    job = upstream.fine_tuning.jobs.create(
        model=MODEL,
        training_file=file_id,
        suffix="shrek",
        seed=42,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
    )
    assert (job.status, job.object, job.fine_tuned_model) == (
        "validating_files",
        "fine_tuning.job",
        None,
    )
    assert job.id.startswith("ftjob-")

    done = succeeded(upstream, job.id)

    assert done.fine_tuned_model is not None
    assert done.fine_tuned_model.startswith(f"ft:{MODEL}:sandbox:shrek:")
    assert done.finished_at is not None and done.trained_tokens and done.trained_tokens > 0
    assert done.hyperparameters.n_epochs == 3 and done.seed == 42
    # OpenAI's field, which the SDK's type does not declare.
    assert (done.model_extra or {})["user_provided_suffix"] == "shrek"
    messages = [e.message for e in upstream.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert messages[0] == "The job has successfully completed"
    assert messages[-1].startswith("Created fine-tuning job")
    for expected in (
        "Validating training file",
        "Files validated, moving job to queued state",
        "Fine-tuning job started",
        "New fine-tuned model created",
    ):
        assert any(m.startswith(expected) for m in messages), expected
    metrics = [
        e for e in upstream.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"
    ]
    assert metrics and all(isinstance(e.data, dict) and "train_loss" in e.data for e in metrics)

    checkpoints = upstream.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [36, 24, 12]  # 12 examples, batch 1, 3 epochs
    assert all(c.id.startswith("ftckpt-") for c in checkpoints)
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-36"

    (result_id,) = done.result_files
    assert upstream.files.retrieve(result_id).purpose == "fine-tune-results"
    rows = list(
        csv.DictReader(
            io.StringIO(base64.b64decode(upstream.files.content(result_id).content).decode())
        )
    )
    assert list(rows[0]) == [
        "step",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
        "train_mean_token_accuracy",
        "full_valid_loss",
        "full_valid_mean_token_accuracy",
    ]
    assert len(rows) == 36
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert done.fine_tuned_model in [m.id for m in upstream.models.list()]


def test_statuses_follow_the_clock(manual: openai.OpenAI, clock: ManualClock) -> None:
    file_id = upload_training(manual, jsonl(chat_examples(10)))
    job = manual.fine_tuning.jobs.create(model=MODEL, training_file=file_id)
    seen = []
    for _ in range(4):
        seen.append(manual.fine_tuning.jobs.retrieve(job.id).status)
        clock.advance(STEP)

    assert seen == ["validating_files", "queued", "running", "succeeded"]


def test_pause_stops_the_clock_and_resume_restarts_it(
    manual: openai.OpenAI, clock: ManualClock
) -> None:
    file_id = upload_training(manual, jsonl(chat_examples(10)))
    job = manual.fine_tuning.jobs.create(model=MODEL, training_file=file_id)
    clock.advance(2.5 * STEP)

    # str(): the SDK's types do not know OpenAI's `paused`.
    assert str(manual.fine_tuning.jobs.pause(job.id).status) == "paused"
    clock.advance(100 * STEP)
    assert str(manual.fine_tuning.jobs.retrieve(job.id).status) == "paused"
    assert manual.fine_tuning.jobs.resume(job.id).status == "running"
    clock.advance(0.4 * STEP)
    assert manual.fine_tuning.jobs.retrieve(job.id).status == "running"
    clock.advance(0.2 * STEP)
    assert manual.fine_tuning.jobs.retrieve(job.id).status == "succeeded"


def test_only_running_jobs_pause(manual: openai.OpenAI) -> None:
    file_id = upload_training(manual, jsonl(chat_examples(10)))
    job = manual.fine_tuning.jobs.create(model=MODEL, training_file=file_id)

    with pytest.raises(openai.BadRequestError):
        manual.fine_tuning.jobs.pause(job.id)


def test_cancel_works_until_the_job_is_terminal(manual: openai.OpenAI, clock: ManualClock) -> None:
    file_id = upload_training(manual, jsonl(chat_examples(10)))
    job = manual.fine_tuning.jobs.create(model=MODEL, training_file=file_id)
    clock.advance(1.5 * STEP)

    cancelled = manual.fine_tuning.jobs.cancel(job.id)
    clock.advance(10 * STEP)

    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert manual.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        manual.fine_tuning.jobs.cancel(job.id)


def test_invalid_jsonl_fails_with_the_line_number(
    manual: openai.OpenAI, clock: ManualClock
) -> None:
    lines = [json.dumps(e) for e in chat_examples(12)]
    lines[4] = '{"messages": [broken'
    file_id = upload_training(manual, ("\n".join(lines) + "\n").encode())
    job = manual.fine_tuning.jobs.create(model=MODEL, training_file=file_id)

    assert manual.fine_tuning.jobs.retrieve(job.id).status == "validating_files"
    clock.advance(STEP)
    failed = manual.fine_tuning.jobs.retrieve(job.id)

    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "invalid_file_format"
    assert failed.error.param == "training_file"
    assert "Line 5" in failed.error.message


def test_an_example_without_assistant_message_fails(
    manual: openai.OpenAI, clock: ManualClock
) -> None:
    examples = chat_examples(12)
    examples[2]["messages"] = examples[2]["messages"][:2]
    file_id = upload_training(manual, jsonl(examples))
    job = manual.fine_tuning.jobs.create(model=MODEL, training_file=file_id)
    clock.advance(STEP)

    failed = manual.fine_tuning.jobs.retrieve(job.id)
    assert failed.error is not None and "Line 3" in failed.error.message


def test_nine_examples_fail_with_invalid_n_examples(
    manual: openai.OpenAI, clock: ManualClock
) -> None:
    file_id = upload_training(manual, jsonl(chat_examples(9)))
    job = manual.fine_tuning.jobs.create(model=MODEL, training_file=file_id)
    clock.advance(STEP)

    failed = manual.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.code == "invalid_n_examples"
    assert "9 example(s)" in failed.error.message and "at least 10" in failed.error.message


def test_list_filters_by_metadata(upstream: openai.OpenAI) -> None:
    file_id = upload_training(upstream, jsonl(chat_examples(10)))
    a = upstream.fine_tuning.jobs.create(
        model=MODEL, training_file=file_id, metadata={"commit": "a"}
    )
    b = upstream.fine_tuning.jobs.create(
        model=MODEL, training_file=file_id, metadata={"commit": "b"}
    )
    c = upstream.fine_tuning.jobs.create(model=MODEL, training_file=file_id)

    assert [j.id for j in upstream.fine_tuning.jobs.list(metadata={"commit": "b"})] == [b.id]
    assert [j.id for j in upstream.fine_tuning.jobs.list()] == [c.id, b.id, a.id]
    first = upstream.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == [c.id, b.id] and first.has_more
    assert [j.id for j in upstream.fine_tuning.jobs.list(after=b.id)] == [a.id]


def test_training_not_available_is_permission_denied(start_sandbox: StartSandbox) -> None:
    url = start_sandbox(SandboxConfig(step_seconds=0.2, training_available=False))
    with openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0) as upstream:
        file_id = upload_training(upstream, jsonl(chat_examples(10)))
        with pytest.raises(openai.PermissionDeniedError) as caught:
            upstream.fine_tuning.jobs.create(model=MODEL, training_file=file_id)

    assert caught.value.status_code == 403
    assert caught.value.code == "training_not_available"
    assert "no longer able to create new fine-tuning" in caught.value.message


@pytest.mark.parametrize("model", ["gpt-5", "davinci-002", "ft:llama:x:y:z"])
def test_an_unknown_model_is_refused_at_create(upstream: openai.OpenAI, model: str) -> None:
    file_id = upload_training(upstream, jsonl(chat_examples(10)))

    with pytest.raises(openai.BadRequestError) as caught:
        upstream.fine_tuning.jobs.create(model=model, training_file=file_id)

    assert caught.value.param == "model"


def test_a_missing_or_wrong_purpose_training_file_is_refused(upstream: openai.OpenAI) -> None:
    other = upstream.files.create(file=("a.jsonl", jsonl(chat_examples(10))), purpose="batch")
    for file_id in ("file-nope", other.id):
        with pytest.raises(openai.BadRequestError) as caught:
            upstream.fine_tuning.jobs.create(model=MODEL, training_file=file_id)
        assert caught.value.param == "training_file"


def test_an_unknown_job_is_a_404(upstream: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        upstream.fine_tuning.jobs.retrieve("ftjob-nope")


def test_an_api_key_is_required_when_configured(start_sandbox: StartSandbox) -> None:
    url = start_sandbox(SandboxConfig(step_seconds=0.2, api_key="sk-right"))
    with (
        openai.OpenAI(base_url=url, api_key="sk-wrong-key", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        wrong.fine_tuning.jobs.list()
    assert caught.value.code == "invalid_api_key"
    with openai.OpenAI(base_url=url, api_key="sk-right", max_retries=0) as right:
        assert right.fine_tuning.jobs.list().data == []
