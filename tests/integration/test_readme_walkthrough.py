"""The README's walkthrough, run from the README itself against a real `burro dev`: every block
marked `<!-- walkthrough -->` runs in order in one shell (a `walkthrough: background` block runs
beside them, like the reader's third terminal), on free ports instead of the README's. So when
the walkthrough changes, this test follows it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from burro.redis_server import free_port
from burro.testing import burro_process, stop_process
from tests.support import ROOT
from tests.support.training import TRAINING_TIMEOUT

README = ROOT / "README.md"
# The addresses the README uses, and the test's stand-ins for them.
API_ADDRESS = "127.0.0.1:8000"
HOOK_ADDRESS = "127.0.0.1:9000"

_BLOCK = re.compile(
    r"<!-- walkthrough(?P<kind>: background)? -->\s*```sh\n(?P<code>.*?)```", re.DOTALL
)


@dataclass(frozen=True)
class Block:
    code: str
    background: bool


def walkthrough_blocks(text: str) -> list[Block]:
    """The README's marked shell blocks, in order."""
    return [Block(code=m["code"], background=bool(m["kind"])) for m in _BLOCK.finditer(text)]


def test_the_readme_marks_every_step_of_the_walkthrough() -> None:
    blocks = walkthrough_blocks(README.read_text())
    assert len(blocks) == 7
    assert [b.background for b in blocks].count(True) == 1
    # No step hides a refusal behind a KeyError, nor shadows the shell's own names.
    assert not re.search(r"^\s*id\(\)", README.read_text(), re.MULTILINE)
    assert all("python\n" not in b.code.split("<<")[0] for b in blocks)


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        pytest.skip("uv is not on PATH (the README's steps run `uv run python`)")
    return found


@pytest.fixture
def dev(tmp_path: Path, model_cache: Path, smollm2_dir: Path) -> Iterator[tuple[str, str]]:
    """`burro dev` on free ports, with its own Redis, sandbox and trainer (SmolLM2 prepared in
    the session's model cache); yields (api, hook) addresses."""
    assert smollm2_dir.is_dir()
    api_port, sandbox_port = free_port(), free_port()
    env = {
        "BURRO_DATA_DIR": str(tmp_path / "data"),
        "BURRO_BASE_MODELS_DIR": str(model_cache),
        "BURRO_LOCAL_URL": f"http://127.0.0.1:{free_port()}/v1",
        "BURRO_SANDBOX_STEP_SECONDS": "0.3",
        "BURRO_POLL_INTERVAL": "0.5",
        "BURRO_LOG_LEVEL": "WARNING",
        "REDIS_URL": "",
        "OPENAI_API_KEY": "",
        "BURRO_API_KEYS": "",
    }
    with burro_process(
        "dev",
        "--port",
        str(api_port),
        "--sandbox-port",
        str(sandbox_port),
        env=env,
        health_url=f"http://127.0.0.1:{api_port}/health/ready",
        timeout=90,
    ):
        yield f"127.0.0.1:{api_port}", f"127.0.0.1:{free_port()}"


def localised(code: str, api: str, hook: str) -> str:
    """The code with the test's addresses for the README's (as URLs, or as a bind tuple)."""
    host, port = HOOK_ADDRESS.split(":")
    hook_host, hook_port = hook.split(":")
    return (
        code.replace(API_ADDRESS, api)
        .replace(HOOK_ADDRESS, hook)
        .replace(f'("{host}", {port})', f'("{hook_host}", {hook_port})')
    )


@pytest.mark.slow
@pytest.mark.timeout(TRAINING_TIMEOUT + 120)
def test_the_readme_walkthrough_runs_as_written(dev: tuple[str, str], tmp_path: Path) -> None:
    api, hook = dev
    blocks = walkthrough_blocks(README.read_text())
    # UV_NO_SYNC: the README's `uv run` uses the environment `make test` installed; a test never
    # installs anything itself.
    env = {**os.environ, "UV_PROJECT": str(ROOT), "UV_NO_SYNC": "1", "PATH": os.environ["PATH"]}
    uv()
    receiver_path = tmp_path / "receiver.log"
    receiver_log = receiver_path.open("w")
    receivers = [
        subprocess.Popen(
            ["bash", "-c", localised(b.code, api, hook)],
            cwd=tmp_path,
            env=env,
            stdout=receiver_log,
            stderr=subprocess.STDOUT,
        )
        for b in blocks
        if b.background
    ]
    try:
        _wait_for_port(hook, receivers[0])
        script = "set -eo pipefail\n" + "\n".join(
            f"echo '::step {i}'\n{localised(b.code, api, hook)}"
            for i, b in enumerate(blocks, 1)
            if not b.background
        )
        run = subprocess.run(
            ["bash", "-c", script],
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TRAINING_TIMEOUT,
        )
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-4000:]
    finally:
        for receiver in receivers:
            stop_process(receiver)
        receiver_log.close()
    received = receiver_path.read_text()
    assert '"type": "job.succeeded"' in received or '"type":"job.succeeded"' in received, received
    assert re.search(r"^ds_\w+$", run.stdout, re.MULTILINE)
    assert re.search(r"^job_\w+$", run.stdout, re.MULTILINE)
    assert f"http://{api}/ui/login?key=dev-key&next=/ui/evaluations/eval_" in run.stdout
    assert '"object":"alias"' in run.stdout.replace(" ", "")


def test_a_refused_step_stops_with_burros_problem_detail(tmp_path: Path) -> None:
    """`burro_id`, as the README defines it, on a refusal: the problem detail, and a failure."""
    uv()
    setup = next(b.code for b in walkthrough_blocks(README.read_text()) if "burro_id()" in b.code)
    definition = setup[setup.index("burro_id()") : setup.index("\n}\n") + 3]
    problem = (
        '{"type": "urn:burro:problem:invalid_dataset", "title": "Invalid dataset", '
        '"status": 422, "detail": "The dataset has 1 error(s); nothing was stored."}'
    )
    script = f"{definition}\nDATASET=$(echo '{problem}' | burro_id) && echo \"got $DATASET\""
    env = {**os.environ, "UV_PROJECT": str(ROOT), "UV_NO_SYNC": "1"}
    run = subprocess.run(
        ["bash", "-c", script],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "got" not in run.stdout
    assert "Burro refused this step" in run.stderr and "nothing was stored" in run.stderr


def _wait_for_port(address: str, process: subprocess.Popen[bytes]) -> None:
    """Until the receiver accepts connections (a POST it answers 204)."""
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError("the README's webhook receiver exited")
        try:
            httpx.post(f"http://{address}/", content=b"{}", timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
