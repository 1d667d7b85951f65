"""Helpers for the page tests: a job with a timeline and a loss curve, an evaluation run by the
core function, headless Chromium, and a small PNG reader to look at its screenshots."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

BASE_MODEL = "gpt-4.1-mini-2025-04-14"
JSONL = {"Content-Type": "application/jsonl"}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def training_examples(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "You are Burro, a donkey who knows hay."},
                {"role": "user", "content": f"Which barn keeps bale number {i}?"},
                {"role": "assistant", "content": f"Bale {i} sleeps in the red barn, row {i}."},
            ]
        }
        for i in range(n)
    ]


def jsonl(examples: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in examples)


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
            job = Job(
                id="job_ui_succeeded",
                tenant=tenant,
                status="succeeded",
                provider="sandbox",
                model=BASE_MODEL,
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
            failed = Job(
                id="job_ui_failed",
                tenant=tenant,
                status="failed",
                provider="sandbox",
                model=BASE_MODEL,
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


# --- Chromium --------------------------------------------------------------------------------


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def install_chromium() -> str | None:
    """Debian's chromium through apt-get, only as root where apt-get exists; None otherwise."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=600)
    return find_chromium()


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once with a fresh profile (`profile` must not exist yet)."""
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        row, i = self.rows[y], x * self.channels
        return row[i], row[i + 1], row[i + 2]

    def where(self, colour: tuple[int, int, int], tolerance: int = 24) -> list[tuple[int, int]]:
        """Every (x, y) whose colour is within `tolerance` of `colour` on each channel."""
        found = []
        r0, g0, b0 = colour
        step = self.channels
        for y, row in enumerate(self.rows):
            for x in range(self.width):
                i = x * step
                if (
                    abs(row[i] - r0) <= tolerance
                    and abs(row[i + 1] - g0) <= tolerance
                    and abs(row[i + 2] - b0) <= tolerance
                ):
                    found.append((x, y))
        return found


def read_png(path: Path) -> Image:
    """An 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes), decoded."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, b""
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    return Image(width=width, height=height, channels=channels, rows=rows)
