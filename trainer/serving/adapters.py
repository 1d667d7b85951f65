"""Which adapter a model id names: the pluggable lookup the model server asks on each request.

A resolver maps a model id (`ft:…`, or `ft:…:ckpt-step-N` for a checkpoint) to the directory
of its LoRA adapter (PEFT's `adapter_config.json` and weights), or to nothing. The server asks
it for every id it does not hold yet, so a resolver backed by shared storage (phase 2: Redis,
written by the trainer when it saves an adapter) makes new models servable at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

__all__ = [
    "AdapterResolver",
    "DirectoryResolver",
    "MappingResolver",
    "RunResolver",
    "is_adapter_dir",
]

_CHECKPOINT = re.compile(r"^(?P<model>.+):ckpt-step-(?P<step>\d+)$")
_LOCAL_MODEL_PARTS = 5  # ft:BASE:TENANT:SUFFIX:JOB


class AdapterResolver(Protocol):
    """Finds the adapter directory of a model id."""

    def resolve(self, model: str) -> Path | None:
        """The adapter directory of `model`, or None when no adapter has that id."""

    def models(self) -> Iterable[str]:
        """Every model id it can resolve now (for `GET /v1/models`)."""


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


class MappingResolver:
    """A fixed table of model id → adapter directory."""

    def __init__(self, adapters: dict[str, Path]) -> None:
        self.adapters = dict(adapters)

    def resolve(self, model: str) -> Path | None:
        path = self.adapters.get(model)
        return path if path is not None and is_adapter_dir(path) else None

    def models(self) -> Iterable[str]:
        return [m for m, p in self.adapters.items() if is_adapter_dir(p)]


class DirectoryResolver:
    """Adapters laid out as the trainer writes them, one run directory per model id.

    `root/<model id>/adapter` is the model; `root/<model id>/checkpoint-N` is its checkpoint
    `<model id>:ckpt-step-N`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, model: str) -> Path | None:
        match = _CHECKPOINT.match(model)
        if match:
            path = self._run(match["model"]) / f"checkpoint-{int(match['step'])}"
        else:
            path = self._run(model) / "adapter"
        return path if is_adapter_dir(path) else None

    def models(self) -> Iterable[str]:
        if not self.root.is_dir():
            return []
        found = []
        for run in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if is_adapter_dir(run / "adapter"):
                found.append(run.name)
            steps = sorted(
                int(c.name.removeprefix("checkpoint-"))
                for c in run.glob("checkpoint-*")
                if c.name.removeprefix("checkpoint-").isdigit() and is_adapter_dir(c)
            )
            found.extend(f"{run.name}:ckpt-step-{step}" for step in steps)
        return found

    def _run(self, model: str) -> Path:
        # A model id is a directory name here: nothing that climbs out of the root.
        if not model or "/" in model or "\\" in model or model in (".", ".."):
            return self.root / "\0invalid"
        return self.root / model


class RunResolver:
    """Adapters of local jobs, found by the job id in their model name.

    A local job's model is `ft:BASE:TENANT:SUFFIX:JOB` (`service.jobs.local`), and its run lives
    in `root/JOB`: the final adapter in `adapter/`, each checkpoint in `checkpoint-N/`. Only
    models trained on `base` resolve: an adapter belongs to the weights it was trained on.
    """

    def __init__(self, root: Path, base: str) -> None:
        self.root = root
        self.base = base

    def resolve(self, model: str) -> Path | None:
        match = _CHECKPOINT.match(model)
        name = match["model"] if match else model
        parts = name.split(":")
        if len(parts) != _LOCAL_MODEL_PARTS or parts[0] != "ft" or parts[1] != self.base:
            return None
        job = parts[4]
        if not job or "/" in job or job.startswith("."):
            return None
        leaf = f"checkpoint-{int(match['step'])}" if match else "adapter"
        path = self.root / job / leaf
        return path if is_adapter_dir(path) else None

    def models(self) -> Iterable[str]:
        return []  # the catalog in Redis lists a tenant's models; this server lists its base
