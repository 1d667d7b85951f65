"""The API and the control worker stay light: nothing they load imports the training stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


def test_the_api_and_the_worker_never_import_torch_or_its_kin() -> None:
    probe = (
        "import sys\n"
        "import burro.cli, service.app, workers.main\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert loaded == ""
