"""Datasets Burro writes itself (a distillation's answers): the same checks, pricing and storage
as an upload, from bytes made in a worker instead of a request body."""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

import anyio.to_thread
from redis.asyncio import Redis

from service.datasets.checks import DatasetCheck, DatasetReport, LineError
from service.datasets.names import check_name
from service.datasets.records import Dataset, DatasetKind, content_path, sha_index_key
from service.ids import new_id
from service.models import ModelTable
from service.store import Collection, now

__all__ = ["NotStored", "store_jsonl"]

TOO_FEW = "too_few_examples"


class NotStored(Exception):
    """The bytes fail the checks an upload must pass: nothing was stored."""

    def __init__(self, report: DatasetReport) -> None:
        self.report = report
        first = report.errors[0] if report.errors else None
        super().__init__(_describe(first, report.error_counts))


def _describe(first: LineError | None, counts: dict[str, int]) -> str:
    shown = ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))
    where = f"; first: line {first.line}, {first.code}: {first.message}" if first else ""
    return f"{shown}{where}"


def _check(
    content: bytes, kind: DatasetKind, models: ModelTable, today: datetime.date
) -> DatasetReport:
    check = DatasetCheck(kind=kind, models=models, today=today)
    check.feed(content)
    return check.finish()


def _write(data_dir: Path, dataset_id: str, content: bytes) -> None:
    """Write the bytes next to where they go, then move them there: never half a file."""
    target = content_path(data_dir, dataset_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=".write-", suffix=".part")
    with os.fdopen(fd, "wb") as file:
        file.write(content)
    Path(name).replace(target)


async def store_jsonl(
    redis: Redis,
    data_dir: Path,
    models: ModelTable,
    *,
    tenant: str,
    name: str,
    content: bytes,
    kind: DatasetKind = "chat",
    test_set: bool = False,
) -> Dataset:
    """Check `content` exactly as an upload is checked and store it as the tenant's dataset
    `name`; raises NotStored (with the report) when it fails the checks. A `test_set` (held
    out for an evaluation, never trained on) may have fewer than the ten examples training
    needs: that one check alone is waived for it.

    The tenant's dataset with the same bytes, when there is one, is returned instead: a
    repeated call stores nothing twice.
    """
    today = datetime.datetime.now(datetime.UTC).date()
    report = await anyio.to_thread.run_sync(_check, content, kind, models, today)
    waived = {TOO_FEW} if test_set else set()
    if not report.valid and not set(report.error_counts) <= waived:
        raise NotStored(report)
    collection = Collection(redis, "datasets", Dataset)
    dataset = Dataset.from_report(
        report, id=new_id("ds_"), tenant=tenant, name=check_name(name), created_at=now()
    )
    sha_key = sha_index_key(tenant, report.sha256)
    if not await redis.set(sha_key, dataset.id, nx=True):
        existing_id = await redis.get(sha_key)
        existing = await collection.get(existing_id.decode()) if existing_id else None
        if existing is not None:
            return existing
        await redis.set(sha_key, dataset.id)  # the index outlived its dataset
    await anyio.to_thread.run_sync(_write, data_dir, dataset.id, content)
    await collection.save(dataset)
    return dataset
