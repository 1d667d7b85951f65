"""OpenAI's own command line against Burro, when the installed SDK still ships one.

The `openai` package shipped `openai api fine_tuning.jobs.create -m MODEL -F FILE` up to its 1.x
releases; later ones have no command line at all, and then this test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import openai
import pytest

from tests.support.data import TUTORIAL_MODEL


def _openai_command() -> list[str] | None:
    """How to run the installed SDK's command line, or None when it ships none."""
    if find_spec("openai.cli") is None:
        return None
    found = shutil.which("openai", path=Path(sys.executable).parent)
    return [found] if found else [sys.executable, "-m", "openai"]


@pytest.mark.skipif(
    _openai_command() is None,
    reason=f"the installed openai SDK ({metadata.version('openai')}) ships no command line "
    "(no openai.cli module, no `openai` script)",
)
def test_openais_command_line_creates_a_job_on_burro(
    burro_url: str, sdk: openai.OpenAI, training_file: str
) -> None:
    command = _openai_command()
    assert command is not None
    env = {**os.environ, "OPENAI_BASE_URL": f"{burro_url}/v1", "OPENAI_API_KEY": "key-acme"}

    done = subprocess.run(
        [*command, "api", "fine_tuning.jobs.create", "-m", TUTORIAL_MODEL, "-F", training_file],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["id"]
    assert sdk.fine_tuning.jobs.retrieve(job_id).training_file == training_file
