"""A job's life, computed from the clock: validating_files -> queued -> running -> succeeded.

Nothing runs in the background for a job. Whenever a job is read, `advance` brings its record up
to the present (events, checkpoints, result file, model), so thousands of idle jobs cost nothing.
Each phase lasts `step_seconds` of training time; pausing stops that clock.
"""

from __future__ import annotations

import base64
import heapq
import math
import random

import msgspec
from rapidfuzz import utils

from sandbox.files import store_file
from sandbox.records import (
    ACTIVE,
    TERMINAL,
    Hyperparameters,
    StoredCheckpoint,
    StoredEvent,
    StoredJob,
)
from sandbox.state import FineTunedModel, SandboxState, new_id
from service.openai_shapes import RESULT_CSV_COLUMNS

# Metrics events per job: OpenAI reports every step; the sandbox samples about this many so a
# job's event list stays small whatever the dataset size.
METRICS_EVENTS = 20
# OpenAI keeps checkpoints of the last three epochs only.
CHECKPOINT_EPOCHS = 3
_PHASE_END = {"validating_files": 1, "queued": 2, "running": 3}


def resolve(requested: Hyperparameters, n_examples: int, method: str) -> Hyperparameters:
    """Turn "auto" into numbers, with the cookbook's epoch rule (target 3 epochs, 100 to 25,000
    example passes, 1 to 25 epochs) and a batch size of about 0.2% of the examples."""
    n = max(1, n_examples)
    if isinstance(requested.n_epochs, int):
        n_epochs = requested.n_epochs
    else:
        n_epochs = 3
        if n * n_epochs < 100:
            n_epochs = min(25, math.ceil(100 / n))
        elif n * n_epochs > 25_000:
            n_epochs = max(1, 25_000 // n)
    batch_size = (
        requested.batch_size
        if isinstance(requested.batch_size, int)
        else max(1, min(256, math.ceil(n * 0.002)))
    )
    lr = requested.learning_rate_multiplier
    learning_rate = float(lr) if isinstance(lr, int | float) else 1.8
    beta: float | str | None = None
    if method == "dpo":
        beta = float(requested.beta) if isinstance(requested.beta, int | float) else 0.1
    return Hyperparameters(
        batch_size=batch_size,
        learning_rate_multiplier=learning_rate,
        n_epochs=n_epochs,
        beta=beta,
    )


def _plan(job: StoredJob) -> tuple[int, int, int]:
    """(steps per epoch, epochs, total steps) of a job whose hyperparameters are resolved."""
    hp = job.resolved or resolve(job.requested, job.n_examples, job.method)
    assert isinstance(hp.batch_size, int)
    assert isinstance(hp.n_epochs, int)
    per_epoch = max(1, math.ceil(job.n_examples / hp.batch_size))
    return per_epoch, hp.n_epochs, per_epoch * hp.n_epochs


def train_loss(seed: int, step: int, total: int) -> float:
    """A plausible, deterministic, decreasing loss curve with a little noise."""
    base = 0.12 + 2.2 * math.exp(-4.0 * step / max(1, total))
    noise = random.Random(seed * 1_000_003 + step).uniform(-0.04, 0.04)
    return round(base * (1 + noise), 4)


def _accuracy(loss: float) -> float:
    return round(max(0.0, min(1.0, 1.0 - loss / 2.6)), 4)


def _metrics(job: StoredJob, step: int, total: int) -> dict[str, float]:
    loss = train_loss(job.seed, step, total)
    metrics = {
        "step": float(step),
        "train_loss": loss,
        "train_mean_token_accuracy": _accuracy(loss),
    }
    if job.validation_file:
        valid = round(loss * 1.07 + 0.02, 4)
        metrics["valid_loss"] = valid
        metrics["valid_mean_token_accuracy"] = _accuracy(valid)
    return metrics


def record_event(
    sandbox: SandboxState,
    job_id: str,
    at: float,
    message: str,
    *,
    level: str = "info",
    data: dict[str, object] | None = None,
) -> None:
    sandbox.events.setdefault(job_id, []).append(
        StoredEvent(
            id=new_id("ftevent-"),
            created_at=int(at),
            level="error" if level == "error" else "info",
            message=message,
            type="metrics" if data is not None else "message",
            data=data,
        )
    )


def _wall_time(job: StoredJob, elapsed: float) -> float:
    """When the running clock of `job` reaches `elapsed` (it must be running)."""
    assert job.resumed_at is not None
    return job.resumed_at + (elapsed - job.elapsed)


def phase_end(sandbox: SandboxState, job: StoredJob) -> float | None:
    """Wall time at which an unpaused active job leaves its current phase."""
    if job.resumed_at is None or job.status not in _PHASE_END:
        return None
    return _wall_time(job, _PHASE_END[job.status] * sandbox.config.step_seconds)


def estimated_finish(sandbox: SandboxState, job: StoredJob) -> int | None:
    if job.resumed_at is None or job.status not in ("queued", "running"):
        return None
    return int(_wall_time(job, 3 * sandbox.config.step_seconds))


def schedule(sandbox: SandboxState, job: StoredJob) -> None:
    """Wake the webhook ticker when this job's phase ends (only needed when webhooks are on)."""
    due = phase_end(sandbox, job)
    if due is not None and sandbox.config.webhook_url:
        heapq.heappush(sandbox.due, (due, job.id))


def advance(sandbox: SandboxState, job_id: str) -> StoredJob:
    """Bring a job's record up to the present and return it."""
    job = sandbox.jobs[job_id]
    start = job
    now = sandbox.now()
    step = sandbox.config.step_seconds
    while job.status in _PHASE_END and job.resumed_at is not None:
        elapsed_now = job.elapsed + (now - job.resumed_at)
        if job.status == "running":
            job = _progress(sandbox, job, min(elapsed_now, 3 * step))
        end = _PHASE_END[job.status] * step
        if elapsed_now < end:
            break
        job = _next_phase(sandbox, job, _wall_time(job, end))
    if job is not start:
        sandbox.jobs[job_id] = job
    return job


def _next_phase(sandbox: SandboxState, job: StoredJob, at: float) -> StoredJob:
    replace = msgspec.structs.replace
    if job.status == "validating_files":
        check = sandbox.checks[(job.training_file, job.method)]
        error = check.error
        if error is None and job.validation_file:
            error = sandbox.checks[(job.validation_file, job.method)].error
        if error is not None:
            record_event(sandbox, job.id, at, error.message, level="error")
            return finish(sandbox, replace(job, status="failed", error=error), at)
        record_event(sandbox, job.id, at, "Files validated, moving job to queued state")
        return replace(
            job, status="queued", resolved=resolve(job.requested, check.n_examples, job.method)
        )
    if job.status == "queued":
        record_event(sandbox, job.id, at, "Fine-tuning job started")
        return replace(job, status="running")
    # running -> succeeded
    _, epochs, total = _plan(job)
    results = store_file(
        sandbox,
        filename="step_metrics.csv",
        purpose="fine-tune-results",
        content=base64.b64encode(_results_csv(job)),
    )
    record_event(sandbox, job.id, at, f"New fine-tuned model created: {job.fine_tuned_model_name}")
    record_event(sandbox, job.id, at, "The job has successfully completed")
    job = replace(
        job,
        status="succeeded",
        fine_tuned_model=job.fine_tuned_model_name,
        result_files=(results.id,),
        trained_tokens=max(1, job.training_bytes // 4) * epochs,
        progress_step=total,
    )
    _register_model(sandbox, job, at)
    return finish(sandbox, job, at)


def _progress(sandbox: SandboxState, job: StoredJob, elapsed: float) -> StoredJob:
    """Emit the metrics events and checkpoints of the training steps reached by `elapsed`."""
    step = sandbox.config.step_seconds
    per_epoch, epochs, total = _plan(job)
    reached = min(total, math.floor(total * max(0.0, elapsed - 2 * step) / step))
    if reached <= job.progress_step:
        return job
    every = max(1, math.ceil(total / METRICS_EVENTS))
    checkpoints = {per_epoch * e for e in range(max(1, epochs - CHECKPOINT_EPOCHS + 1), epochs + 1)}
    first = job.progress_step + 1
    milestones = sorted(
        set(range(math.ceil(first / every) * every, reached + 1, every))
        | {s for s in checkpoints if first <= s <= reached}
        | ({total} if reached == total else set())
    )
    for s in milestones:
        at = _wall_time(job, 2 * step + step * s / total)
        metrics = _metrics(job, s, total)
        text = f"Step {s}/{total}: training loss={metrics['train_loss']:.4f}"
        if "valid_loss" in metrics:
            text += f", validation loss={metrics['valid_loss']:.4f}"
        record_event(sandbox, job.id, at, text, data={**metrics, "step": s, "total_steps": total})
        if s in checkpoints:
            name = f"{job.fine_tuned_model_name}:ckpt-step-{s}"
            sandbox.checkpoints.setdefault(job.id, []).append(
                StoredCheckpoint(
                    id=new_id("ftckpt-"),
                    created_at=int(at),
                    fine_tuned_model_checkpoint=name,
                    fine_tuning_job_id=job.id,
                    step_number=s,
                    metrics={**metrics, "full_valid_loss": metrics.get("valid_loss", 0.0)}
                    if job.validation_file
                    else metrics,
                )
            )
            sandbox.model_jobs[name] = job.id
            record_event(sandbox, job.id, at, f"Checkpoint created at step {s}")
    return msgspec.structs.replace(job, progress_step=reached)


def _results_csv(job: StoredJob) -> bytes:
    per_epoch, _, total = _plan(job)
    rows = [",".join(RESULT_CSV_COLUMNS)]
    for s in range(1, total + 1):
        m = _metrics(job, s, total)
        valid = job.validation_file is not None
        epoch_end = s % per_epoch == 0
        rows.append(
            ",".join(
                [
                    str(s),
                    f"{m['train_loss']:.5f}",
                    f"{m['train_mean_token_accuracy']:.5f}",
                    f"{m['valid_loss']:.5f}" if valid else "",
                    f"{m['valid_mean_token_accuracy']:.5f}" if valid else "",
                    f"{m['train_mean_token_accuracy']:.5f}",
                    f"{m['valid_loss']:.5f}" if valid and epoch_end else "",
                    f"{m['valid_mean_token_accuracy']:.5f}" if valid and epoch_end else "",
                ]
            )
        )
    return ("\n".join(rows) + "\n").encode()


def _register_model(sandbox: SandboxState, job: StoredJob, at: float) -> None:
    """Index the training examples once, so chat answers stay a dictionary or one fuzzy lookup."""
    check = sandbox.checks[(job.training_file, job.method)]
    exact: dict[str, str] = {}
    prompts: list[str] = []
    replies: list[str] = []
    for example in check.examples:
        key = utils.default_process(example.prompt)
        exact.setdefault(key, example.reply)
        prompts.append(key)
        replies.append(example.reply)
    model = FineTunedModel(
        id=job.fine_tuned_model_name,
        created=int(at),
        job_id=job.id,
        exact=exact,
        prompts=prompts,
        replies=replies,
    )
    sandbox.models[model.id] = model
    sandbox.model_jobs[model.id] = job.id


def finish(sandbox: SandboxState, job: StoredJob, at: float) -> StoredJob:
    """Stop the clock of a job that just became terminal and queue its webhook."""
    assert job.status in TERMINAL
    job = msgspec.structs.replace(job, finished_at=at, resumed_at=None)
    if sandbox.config.webhook_url:
        sandbox.outbox.append(job.id)
    return job


def cancel(sandbox: SandboxState, job: StoredJob) -> StoredJob:
    now = sandbox.now()
    record_event(sandbox, job.id, now, "The job has been cancelled")
    return finish(sandbox, msgspec.structs.replace(job, status="cancelled"), now)


def pause(sandbox: SandboxState, job: StoredJob) -> StoredJob:
    now = sandbox.now()
    assert job.resumed_at is not None
    assert job.status in ACTIVE
    record_event(sandbox, job.id, now, "Fine-tuning job paused")
    return msgspec.structs.replace(
        job, status="paused", elapsed=job.elapsed + (now - job.resumed_at), resumed_at=None
    )


def resume(sandbox: SandboxState, job: StoredJob) -> StoredJob:
    now = sandbox.now()
    record_event(sandbox, job.id, now, "Fine-tuning job resumed")
    return msgspec.structs.replace(job, status="running", resumed_at=now)
