"""Job → webhook: the one place a job's change is announced (job.<status> to its subscribers).

`transition()` calls `job_changed` after every status change is saved (and, on success, after
the `promote_to` alias moved), so a receiver that calls back sees the new state. Deliveries
are only enqueued here, never sent inline.
"""

from __future__ import annotations

import structlog

from service import metrics
from service.jobs.events import JobEvent
from service.jobs.records import Job, to_builtins
from service.queue import Queue
from service.webhooks.openai_form import publish_openai_form
from service.webhooks.outbox import publish

log = structlog.get_logger("burro.jobs")


async def job_changed(queue: Queue, job: Job, event: JobEvent) -> None:
    """Announce that `job` entered `job.status` to its webhook and the tenant's endpoints."""
    metrics.count_job_transition(job.status)
    job_webhook = (
        (job.webhook_url, job.webhook_secret)
        if job.webhook_url is not None and job.webhook_secret is not None
        else None
    )
    messages = await publish(
        queue.redis,
        queue,
        tenant=job.tenant,
        event_type=f"job.{job.status}",
        job_id=job.id,
        data=to_builtins(job),
        job_webhook=job_webhook,
    )
    # The same news in OpenAI's own form, for the endpoints that asked for OpenAI's names.
    messages += await publish_openai_form(
        queue.redis,
        queue,
        tenant=job.tenant,
        job_id=job.id,
        status=job.status,
        at=job.finished_at or job.updated_at,
    )
    log.info("job.changed", job=job.id, status=job.status, event_id=event.id, messages=messages)
