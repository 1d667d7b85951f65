"""Memory running out mid-training fails the run with `out_of_memory` and advice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.training import TRAINING_TIMEOUT
from trainer.examples import PAIRS, write_chat_file

# A real trainer process whose address space is capped right before its first step, so the
# first step's activations cannot be allocated (as on a machine without enough memory).
CHILD = """
import json, resource, sys
from pathlib import Path
import trainer
from trainer.base_models import SMOLLM2_135M
from trainer.errors import TrainingError
from trainer.hyperparameters import Hyperparameters
from trainer.runs import TrainingHooks, TrainingRequest
from trainer.training import train

class CapMemory(TrainingHooks):
    def on_start(self, plan):
        with open("/proc/self/status") as f:
            size = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + (64 << 20), resource.RLIM_INFINITY))

data, out, cache = map(Path, sys.argv[1:4])
request = TrainingRequest(
    base_model=SMOLLM2_135M, training_file=data, output_dir=out, cache_dir=cache, seed=1,
    hyperparameters=Hyperparameters(n_epochs=1, batch_size=8),
)
try:
    train(request, CapMemory())
    print(json.dumps({"code": None}))
except TrainingError as exc:
    print(json.dumps({"code": exc.code, "message": exc.message}))
"""


@pytest.mark.slow
@pytest.mark.timeout(TRAINING_TIMEOUT)
def test_running_out_of_memory_is_out_of_memory(
    tmp_path: Path, model_cache: Path, smollm2_dir: Path
) -> None:
    long_pairs = [(q * 40, a * 40) for q, a in PAIRS]
    data = write_chat_file(tmp_path / "long.jsonl", long_pairs)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(tmp_path / "run"), str(model_cache)],
        capture_output=True,
        text=True,
        timeout=TRAINING_TIMEOUT - 60,  # the child times out before the test does
        check=False,
    )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["code"] == "out_of_memory", done.stderr[-2000:]
    assert "batch_size" in outcome["message"]
