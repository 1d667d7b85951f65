"""Worlds to look at: what a tenant has after a while, written the way Burro's own code writes
it (job records, timelines, loss curves, catalog entries, a finished evaluation)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from service.evaluations.records import EvaluationCreate
from service.evaluations.runner import RetryPolicy, create_evaluation, run_evaluation
from service.inference.catalog import register_model
from service.jobs import events as timeline
from service.jobs.records import JOBS, Job, JobError
from service.models import ModelTable
from service.providers import Providers
from service.queue import Queue
from service.settings import Settings
from service.store import Collection, now
from tests.support.data import BASE_MODEL, job_record


def metrics_rows(steps: int = 40) -> list[timeline.MetricsRow]:
    """A falling training loss at every step, a validation loss every fifth step."""
    return [
        timeline.MetricsRow(
            step=step,
            train_loss=round(2.5 * math.exp(-step / 12) + 0.1, 4),
            valid_loss=round(2.6 * math.exp(-step / 14) + 0.2, 4) if step % 5 == 0 else None,
        )
        for step in range(1, steps + 1)
    ]


@dataclass(frozen=True)
class Seeded:
    job_id: str
    failed_job_id: str
    evaluation_id: str


def seed(settings: Settings, *, tenant: str, model: str, dataset_id: str) -> Seeded:
    """What a tenant has after a job succeeded and was evaluated: the job's record, timeline,
    curve and catalog entry (as the jobs code writes them), a failed job, and a finished
    evaluation (run by the core function against the sandbox)."""
    assert settings.redis_url is not None
    redis_url = settings.redis_url

    async def run() -> Seeded:
        queue = await Queue.connect(redis_url)
        redis = queue.redis
        providers = Providers(settings)
        try:
            stamp = now() - 3600
            job = job_record(
                "job_ui_succeeded",
                tenant,
                "succeeded",
                training_dataset=dataset_id,
                suffix="barns",
                upstream_job_id="ftjob-ui",
                fine_tuned_model=model,
                trained_tokens=12345,
                estimated_cost_usd=0.5,
                cost_usd=0.42,
                created_at=stamp,
                updated_at=stamp + 600,
                finished_at=stamp + 600,
            )
            failed = job_record(
                "job_ui_failed",
                tenant,
                "failed",
                training_dataset=dataset_id,
                error=JobError(code="invalid_file", message="The file is not valid."),
                created_at=stamp - 60,
                updated_at=stamp,
            )
            collection = Collection(redis, JOBS, Job)
            await collection.save(failed)
            await collection.save(job)
            events = []
            for offset, (previous, status) in enumerate(
                [
                    ("pending", "uploading"),
                    ("uploading", "validating_files"),
                    ("validating_files", "queued"),
                    ("queued", "running"),
                    ("running", "succeeded"),
                ]
            ):
                events.append(
                    timeline.JobEvent(
                        id=f"jobev_ui_{offset}",
                        created_at=stamp + 100 * offset,
                        type="status",
                        message=f"Status: {status}",
                        data={"status": status, "previous": previous},
                    )
                )
            events.append(
                timeline.JobEvent(
                    id="jobev_ui_upstream",
                    created_at=stamp + 450,
                    source="upstream",
                    message="Step 40/40: training loss=0.12",
                )
            )
            await timeline.add_events(redis, job.id, events)
            await timeline.save_metrics(redis, job.id, metrics_rows())
            await register_model(
                redis,
                tenant=tenant,
                job_id=job.id,
                model=model,
                provider="sandbox",
                base_model=BASE_MODEL,
            )
            models = ModelTable.load(settings.models_file)
            evaluation = await create_evaluation(
                redis,
                settings,
                models,
                tenant=tenant,
                data=EvaluationCreate(job=job.id, dataset=dataset_id, max_examples=3),
            )
            await run_evaluation(
                redis,
                queue,
                providers.client,
                models,
                settings.data_dir,
                evaluation.id,
                retry=RetryPolicy(base=0.02, cap=0.1),
            )
            return Seeded(job_id=job.id, failed_job_id=failed.id, evaluation_id=evaluation.id)
        finally:
            await providers.close()
            await queue.close()

    return asyncio.run(run())
