"""One job registry: every background job is enqueued as a task of `service.tasks`, and the
worker of its queue registers exactly those tasks, under their names. (What an enqueued task
carries: tests/integration/test_job_registry.py.)"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from service import tasks
from service.queue import QUEUE_NAME
from service.settings import Settings
from service.tasks import CONTROL_QUEUE, TASKS, Task
from tests.support import ROOT
from trainer import worker as trainer_worker
from workers.main import FUNCTIONS, worker_settings

PACKAGES = ("service", "workers", "burro", "sandbox", "trainer")
# The functions of the worker that serves each queue (a new queue adds its worker here).
WORKERS: dict[str, dict[Task, Any]] = {
    CONTROL_QUEUE: FUNCTIONS,
    tasks.TRAINER_QUEUE: trainer_worker.FUNCTIONS,
}


def _sources() -> list[tuple[Path, ast.Module]]:
    return [
        (path, ast.parse(path.read_text(), str(path)))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def _registered_task(node: ast.expr) -> Task | None:
    """The task an enqueue's first argument names, when it is `tasks.<NAME>` of the registry."""
    if not (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "tasks"
    ):
        return None
    found = getattr(tasks, node.attr, None)
    return found if isinstance(found, Task) else None


def test_the_worker_registers_exactly_the_tasks_of_its_queue_under_their_names() -> None:
    # Nothing connects: the worker's settings only name the Redis it will use.
    worker: Any = worker_settings(Settings(redis_url="redis://127.0.0.1:1/0"))
    names = [f.name for f in worker.functions] + [c.name for c in worker.cron_jobs]

    assert sorted(names) == sorted(t.name for t in tasks.on_queue(CONTROL_QUEUE))
    assert len(names) == len(set(names))
    assert set(FUNCTIONS) == set(tasks.on_queue(CONTROL_QUEUE))
    assert worker.queue_name == CONTROL_QUEUE == QUEUE_NAME


def test_a_trainer_serves_the_trainers_queue_one_job_at_a_time() -> None:
    trainer: Any = trainer_worker.worker_settings(Settings(redis_url="redis://127.0.0.1:1/0"))

    assert [f.name for f in trainer.functions] == [
        t.name for t in tasks.on_queue(tasks.TRAINER_QUEUE)
    ]
    assert trainer.queue_name == tasks.TRAINER_QUEUE != CONTROL_QUEUE
    assert trainer.max_jobs == 1


def test_every_enqueue_in_the_code_names_a_registered_task() -> None:
    enqueued: set[str] = set()
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if node.func.attr == "enqueue_job":
                # arq's own enqueue, by bare name, only behind Queue.enqueue.
                assert path == ROOT / "service" / "queue.py", where
            if node.func.attr != "enqueue":
                continue
            assert node.args, where
            task = _registered_task(node.args[0])
            assert task is not None, f"{where}: enqueues {ast.unparse(node.args[0])}"
            assert TASKS[task.name] is task, where
            enqueued.add(task.name)
    # What the code enqueues, every one of them served by the worker of its queue.
    served = {t.name for functions in WORKERS.values() for t in functions}
    assert enqueued <= served, enqueued - served
    assert "upload_job_files" in enqueued and "relay_effects" in enqueued


def test_every_queue_has_a_worker_that_serves_exactly_its_tasks() -> None:
    queues = {t.queue for t in TASKS.values()}
    assert queues <= set(WORKERS), queues - set(WORKERS)
    for queue, functions in WORKERS.items():
        assert set(functions) == set(tasks.on_queue(queue)), queue


def test_fixed_job_ids_are_built_from_the_arguments_in_one_place() -> None:
    assert tasks.UPLOAD_JOB_FILES.job_id("job_1") == "upload:job_1"
    assert tasks.POLL_PROVIDER.job_id("sandbox") == "poll:sandbox"
    assert tasks.RELAY_EFFECTS.job_id("fx_1") == "effects:fx_1"
    assert tasks.DELIVER_WEBHOOK.job_id("msg_1", 0, 2) == "webhook:msg_1:2"
    assert tasks.DELIVER_WEBHOOK.job_id("msg_1", 3, 1) == "webhook:msg_1:r3:1"
    assert Task("anything").job_id("x") is None


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        tasks.register(Task("upload_job_files"))
