"""Background work → one registry: every queued function's name, queue, fixed job id and limits.

Callers enqueue a `Task` (`queue.enqueue(tasks.UPLOAD_JOB_FILES, job_id)`), never a bare name,
and a worker registers exactly the tasks of the queue it serves (`workers.main`), so nothing can
be enqueued that nobody runs. A new kind of work is one `register(Task(...))` line here and one
function in the worker that serves its queue; a new kind of worker (the trainer) is a queue name
here and a worker that registers `on_queue(<that queue>)`.

Fixed job ids make a repeated enqueue collapse into the one already waiting: a job's upload is
queued once however often it is asked for. They are built from the task's arguments here, in
one place, by `Task.job_id`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

CONTROL_QUEUE = "burro:queue"
"""The control worker's queue (`burro worker`): uploads, upstream jobs, webhooks, evaluations."""

TRAINER_QUEUE = "burro:trainer"
"""The trainers' queue (`burro trainer`): local jobs to train, one at a time per trainer."""

Key = str | Callable[..., str] | None
# A loop that re-enqueues itself (arq's Retry) after every pass: it runs for as long as it wants.
FOREVER = sys.maxsize


@dataclass(frozen=True, slots=True)
class Task:
    """One kind of background work."""

    name: str
    """The name callers enqueue and the worker registers."""
    key: Key = None
    """The fixed job id: a format string over the arguments (`"upload:{0}"`), a function of
    them, or None for none (every enqueue queues a new run)."""
    queue: str = CONTROL_QUEUE
    timeout: float | None = 60.0
    """Seconds one run may take; None for work that waits on webhook receivers: the worker
    allows it the webhook timeout and a margin."""
    max_tries: int | None = 5
    """Runs before the queue gives up; None when the function bounds its own retries (the
    worker's retry policy)."""
    carries_request: bool = True
    """The request id of whoever enqueues it goes along, and is on every line it logs. Off for
    work shared by many requests (a provider's poll loop)."""
    on_the_clock: tuple[int, ...] = ()
    """Run by the clock, at these seconds of every minute, by one of the queue's workers,
    instead of being enqueued by anybody."""

    def job_id(self, *args: object) -> str | None:
        """The fixed job id of a run with these arguments (None: the task has none)."""
        if self.key is None:
            return None
        if isinstance(self.key, str):
            return self.key.format(*args)
        return self.key(*args)


TASKS: dict[str, Task] = {}
"""Every task, by name."""


def register(new: Task) -> Task:
    """Add `new` to the registry (a name is registered once) and return it."""
    if new.name in TASKS:
        raise ValueError(f"task {new.name!r} is registered twice")
    TASKS[new.name] = new
    return new


def on_queue(queue: str) -> list[Task]:
    """The tasks a worker serving `queue` must run, in registration order."""
    return [t for t in TASKS.values() if t.queue == queue]


def webhook_attempt_id(message_id: str, redelivery: int, number: int) -> str:
    """One attempt of one webhook message: the queue runs each at most once at a time."""
    if redelivery == 0:
        return f"webhook:{message_id}:{number}"
    return f"webhook:{message_id}:r{redelivery}:{number}"


def evaluation_continuation_id(evaluation_id: str, rows_done: int) -> str:
    """An evaluation's run that carries on after `rows_done` rows (its predecessor ran out of
    time), distinct from the run that is ending."""
    return f"evaluation:{evaluation_id}:after-{rows_done}"


def teacher_continuation_id(job_id: str, answers: int) -> str:
    """A distillation's teacher run that carries on after `answers` stored answers."""
    return f"teacher:{job_id}:after-{answers}"


# --- Jobs: dataset → upstream → poll ------------------------------------------------------------

UPLOAD_JOB_FILES = register(
    Task("upload_job_files", key="upload:{0}", timeout=120.0, max_tries=None)
)
CREATE_UPSTREAM_JOB = register(Task("create_upstream_job", key="create:{0}", max_tries=None))
REFRESH_JOB = register(Task("refresh_job", key="refresh:{0}", max_tries=3))
CANCEL_JOB = register(Task("cancel_job", key="cancel:{0}", max_tries=None))
POLL_PROVIDER = register(
    Task("poll_provider", key="poll:{0}", max_tries=FOREVER, carries_request=False)
)

# --- Distillation: a teacher answers the prompts first (service.distillation) ----------------

# Time-boxed like an evaluation's run (it queues its continuation), and safe to run again: a
# prompt with a stored answer is never asked twice. It bounds its own retries, as uploads do.
ASK_TEACHER = register(Task("ask_teacher", key="teacher:{0}", timeout=120.0, max_tries=None))

# --- Local training: jobs Burro trains itself (service.jobs.local) -----------------------------

# One attempt at training one job; a trainer that dies leaves it to the watchdog, which queues
# the next attempt. A run may take days: the trainer's lease, not this timeout, finds the dead.
TRAIN_JOB = register(
    Task(
        "train_job",
        key="train:{0}:{1}",
        queue=TRAINER_QUEUE,
        timeout=7 * 24 * 3600.0,
        max_tries=1,
    )
)
# Queues the next attempt of a job whose trainer stopped renewing its lease, or whose queued
# attempt was lost.
WATCH_TRAINING = register(
    Task("watch_training", max_tries=1, carries_request=False, on_the_clock=(5, 15, 25, 35, 45, 55))
)

# --- Effects: what follows a change (service.effects) -------------------------------------------

# Drains the outbox: one per short time slot of changes (the argument); it sends its webhooks'
# first attempts itself. Each entry carries the request id of its own change.
RELAY_EFFECTS = register(
    Task("relay_effects", key="effects:{0}", timeout=None, max_tries=6, carries_request=False)
)
# The backstop: entries whose relay was never queued (a process died right after the commit).
SWEEP_EFFECTS = register(
    Task("sweep_effects", max_tries=1, carries_request=False, on_the_clock=(0, 10, 20, 30, 40, 50))
)

# --- Webhooks: one attempt of one message -------------------------------------------------------

DELIVER_WEBHOOK = register(
    Task("deliver_webhook", key=webhook_attempt_id, timeout=None, max_tries=6)
)

# --- Evaluations --------------------------------------------------------------------------------

RUN_EVALUATION = register(Task("run_evaluation", key="evaluation:{0}", timeout=120.0, max_tries=3))
START_PROMOTION = register(Task("start_promotion", key="promotion:{0}", max_tries=3))

# --- Models: shutdown notices (service.inference.shutdowns) -----------------------------------

# Once a minute: cheap (one read per tenant with aliases), and a notice is staged once however
# often it runs; the minute keeps a new alias, or a restarted deployment, from waiting a day.
NOTIFY_SHUTDOWNS = register(
    Task("notify_shutdowns", max_tries=1, carries_request=False, on_the_clock=(35,))
)
