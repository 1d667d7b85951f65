"""The Dataset: its stored record, its wire shape, and where its bytes live."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from service.datasets.checks import DatasetReport, DatasetWarning, Estimate, TokenStats
from service.store import PREFIX

DatasetKind = Literal["chat", "preference"]


class Dataset(msgspec.Struct, frozen=True, kw_only=True):
    """A checked, stored dataset (the record in Redis)."""

    id: str
    tenant: str
    name: str
    kind: DatasetKind
    created_at: int
    bytes: int
    sha256: str
    examples: int
    tokens: TokenStats
    warnings: list[DatasetWarning] = []
    estimates: list[Estimate] = []

    @classmethod
    def from_report(
        cls, report: DatasetReport, *, id: str, tenant: str, name: str, created_at: int
    ) -> Dataset:
        return cls(
            id=id,
            tenant=tenant,
            name=name,
            kind=report.kind,
            created_at=created_at,
            bytes=report.bytes,
            sha256=report.sha256,
            examples=report.examples,
            tokens=report.tokens,
            warnings=report.warnings,
            estimates=report.estimates,
        )


class DatasetOut(msgspec.Struct, frozen=True, kw_only=True):
    """A dataset as callers see it."""

    id: str
    object: Literal["dataset"]
    name: str
    kind: DatasetKind
    created_at: int
    bytes: int
    sha256: str
    examples: int
    tokens: TokenStats
    warnings: list[DatasetWarning]
    estimates: list[Estimate]

    @classmethod
    def of(cls, dataset: Dataset, models: list[str] | None = None) -> DatasetOut:
        estimates = dataset.estimates
        if models:
            estimates = [e for e in estimates if e.model in models]
        return cls(
            id=dataset.id,
            object="dataset",
            name=dataset.name,
            kind=dataset.kind,
            created_at=dataset.created_at,
            bytes=dataset.bytes,
            sha256=dataset.sha256,
            examples=dataset.examples,
            tokens=dataset.tokens,
            warnings=dataset.warnings,
            estimates=estimates,
        )


class DatasetList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[DatasetOut]
    has_more: bool


def content_path(data_dir: Path, dataset_id: str) -> Path:
    """Where a stored dataset's bytes are, for the API and the workers alike."""
    return data_dir / "datasets" / f"{dataset_id}.jsonl"


def sha_index_key(tenant: str, sha256: str) -> str:
    return f"{PREFIX}:datasets:by-sha:{tenant}:{sha256}"


def users_key(dataset_id: str) -> str:
    """The set of unfinished jobs that use a dataset (it cannot be deleted meanwhile)."""
    return f"{PREFIX}:datasets:users:{dataset_id}"
