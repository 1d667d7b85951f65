"""Imports run one way: the API and the control worker never load the training stack, and the
trainer never loads the sandbox (a fake upstream for tests and demos)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.training import WITHOUT_TRAINER_EXTRA

HEAVY = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


def loaded_by(imports: str, watched: tuple[str, ...]) -> list[str]:
    """Which of the `watched` modules a fresh interpreter has loaded after `imports`."""
    probe = (
        "import sys\n"
        f"import {imports}\n"
        f"print(','.join(m for m in {watched!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return [m for m in done.stdout.strip().split(",") if m]


def test_the_api_and_the_worker_never_import_torch_or_its_kin() -> None:
    assert loaded_by("burro.cli, service.app, workers.main", HEAVY) == []


def test_the_trainer_and_its_model_server_never_import_the_sandbox() -> None:
    pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)
    imports = "trainer.training, trainer.serving.app, trainer.serving.engine"
    assert loaded_by(imports, ("sandbox",)) == []
