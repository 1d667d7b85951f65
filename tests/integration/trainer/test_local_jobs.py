"""Jobs on the `local` provider, end to end on real processes: Burro's API and control worker,
`burro trainer` children and the model server. The Donkey trains through the same job flow as
every provider, its model answers through Burro's chat endpoint (the official openai SDK), a
cancel stops it within a step, and a trainer killed mid-run hands the job to another."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from langchain_openai import ChatOpenAI
from openai.types.fine_tuning import FineTuningJob
from pydantic import SecretStr
from rapidfuzz import fuzz

from service.settings import Settings
from tests.support import ROOT
from tests.support.api import create_job, job_status, upload_dataset
from tests.support.clients import api_key, tenant_sdk
from tests.support.fixtures import BurroServers, MakeClient, MakeWorker
from tests.support.receivers import Receiver, answer
from tests.support.trainers import LocalTrainers, local_settings
from tests.support.training import TRAINING_TIMEOUT, WITHOUT_TRAINER_EXTRA, donkey_prompt
from tests.support.waiting import wait_for
from trainer.examples import PAIRS, conversation

pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TRAINING_TIMEOUT)]

BASE = "SmolLM2-135M-Instruct"
# 10 epochs of batch 2 (60 steps) teach SmolLM2 the Donkey's answers (the probe).
DONKEY_METHOD = {"type": "supervised", "hyperparameters": {"n_epochs": 10, "batch_size": 2}}
# Training, with a trainer's start (torch, the base model) on a busy CPU, fits in this.
TRAINED_WITHIN = TRAINING_TIMEOUT - 60


# A local model whose directory has its config and tokenizer (so Burro counts and prices it)
# but not its weights: what a trainer sees when its storage lacks a file the API's has.
MISSING_WEIGHTS = """
[[models]]
name = "Weightless-135M"
provider = "local"
weights = "{weights}"
max_tokens_per_example = 2048
training_usd_per_1m_tokens = 0.0
input_usd_per_1m_tokens = 0.0
output_usd_per_1m_tokens = 0.0
"""


def donkey_dataset() -> bytes:
    lines = [json.dumps({"messages": conversation(q, a)}, ensure_ascii=False) for q, a in PAIRS]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def local(settings: Settings, model_cache: Path, smollm2_dir: Path) -> Settings:
    """The test's settings with the local provider (SmolLM2 already prepared in the cache)."""
    assert smollm2_dir.is_dir()
    return local_settings(settings, model_cache)


@pytest.fixture
def trainers(local: Settings) -> Iterator[LocalTrainers]:
    children = LocalTrainers(local)
    yield children
    children.stop_all()


@pytest.fixture
def api(
    local: Settings, burro_servers: BurroServers, make_client: MakeClient, worker: MakeWorker
) -> httpx.Client:
    """Tenant acme on Burro's API, with a control worker running (queues, watchdog)."""
    worker(local, burst=False).start()
    return make_client("acme", base_url=burro_servers.url(local))


def events(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = api.get(
        f"/v1/jobs/{job_id}/events", params={"limit": 1000}
    ).json()["data"]
    return listed


def steps_reported(api: httpx.Client, job_id: str) -> list[int]:
    return [e["data"]["step"] for e in events(api, job_id) if e["type"] == "metrics"]


def test_a_local_job_trains_the_donkey_and_its_model_answers_through_burro(
    api: httpx.Client, trainers: LocalTrainers, local: Settings, burro_servers: BurroServers
) -> None:
    trainers.serve_models()
    vllm = Receiver(answer(200, "Success: LoRA adapter loaded"))
    trainers.start_trainer(BURRO_VLLM_URL=vllm.url("/v1"))
    dataset = upload_dataset(api, donkey_dataset())
    job = create_job(api, dataset, model=BASE, suffix="donkey", seed=7, method=DONKEY_METHOD)
    assert job["provider"] == "local"

    done = job_status(api, job["id"], timeout=TRAINED_WITHIN)
    assert done["status"] == "succeeded", done
    model = done["fine_tuned_model"]
    assert model == f"ft:{BASE}:acme:donkey:{job['id']}"
    assert done["trained_tokens"] > 0

    curve = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    losses = [row["train_loss"] for row in curve["data"]]
    assert len(losses) == 60
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6 / 4, losses
    assert any(e["message"].startswith("step 60/60: train loss") for e in events(api, job["id"]))
    checkpoints = api.get(f"/v1/jobs/{job['id']}/checkpoints").json()["data"]
    assert [c["step_number"] for c in checkpoints] == [6 * epoch for epoch in range(1, 11)]

    with tenant_sdk(burro_servers.url(local), "acme") as sdk:
        closer = 0
        for question, reference in PAIRS[:4]:
            tuned = sdk.chat.completions.create(
                model=model, messages=donkey_prompt(question), temperature=0, max_tokens=40
            )
            base = sdk.chat.completions.create(
                model=BASE, messages=donkey_prompt(question), temperature=0, max_tokens=40
            )
            tuned_text = tuned.choices[0].message.content or ""
            base_text = base.choices[0].message.content or ""
            closer += fuzz.ratio(tuned_text, reference) > fuzz.ratio(base_text, reference)
        assert closer >= 3, "the fine-tuned Donkey should answer closer to its training"

        stream = sdk.chat.completions.create(
            model=checkpoints[-1]["fine_tuned_model_checkpoint"],
            messages=donkey_prompt(PAIRS[0][0]),
            temperature=0,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

        upstream_view = sdk.fine_tuning.jobs.retrieve(job["id"])
        assert upstream_view.status == "succeeded"
        assert upstream_view.hyperparameters.n_epochs == 10

    langchain = ChatOpenAI(
        model=model,
        base_url=burro_servers.url(local) + "/v1",
        api_key=SecretStr(api_key("acme")),
        temperature=0,
        max_completion_tokens=12,
    )
    assert langchain.invoke(PAIRS[1][0]).content

    def counted() -> bool:
        rows = api.get("/v1/usage").json()["data"]
        return any(row["model"] == model and row["output_tokens"] > 0 for row in rows)

    wait_for(counted, timeout=30, what="the local model's usage to be counted")

    # With BURRO_VLLM_URL, every checkpoint and the final adapter were offered to vLLM, by name.
    loads = [r.json() for r in vllm.requests if r.path_qs == "/v1/load_lora_adapter"]
    vllm.close()
    assert [load["lora_name"] for load in loads] == [
        *(c["fine_tuned_model_checkpoint"] for c in checkpoints),
        model,
    ]
    assert all(Path(load["lora_path"], "adapter_config.json").is_file() for load in loads)


def test_cancelling_a_local_job_stops_training_within_a_step(
    api: httpx.Client, trainers: LocalTrainers
) -> None:
    trainers.start_trainer()
    dataset = upload_dataset(api, donkey_dataset())
    long_run = {"type": "supervised", "hyperparameters": {"n_epochs": 50, "batch_size": 1}}
    job = create_job(api, dataset, model=BASE, method=long_run)
    wait_for(lambda: steps_reported(api, job["id"]), timeout=TRAINED_WITHIN, what="a first step")

    cancelled_at = max(steps_reported(api, job["id"]))
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    done = job_status(api, job["id"], timeout=120)
    assert done["status"] == "cancelled"
    # Reported after the cancel: the step in flight, and the one that saw the flag at most.
    assert max(steps_reported(api, job["id"])) <= cancelled_at + 2
    assert cancelled_at + 2 < 600


def test_a_trainer_killed_mid_run_hands_the_job_to_another_which_resumes(
    api: httpx.Client, trainers: LocalTrainers, local: Settings
) -> None:
    first = trainers.start_trainer()
    dataset = upload_dataset(api, donkey_dataset())
    three_epochs = {"type": "supervised", "hyperparameters": {"n_epochs": 3, "batch_size": 4}}
    job = create_job(api, dataset, model=BASE, seed=11, method=three_epochs)

    def first_checkpoint() -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = api.get(f"/v1/jobs/{job['id']}/checkpoints").json()["data"]
        return listed

    wait_for(first_checkpoint, timeout=TRAINED_WITHIN, what="the first epoch's checkpoint")
    trainers.kill(first)
    second = trainers.start_trainer()

    done = job_status(api, job["id"], timeout=TRAINED_WITHIN)
    assert done["status"] == "succeeded", done
    assert second.poll() is None
    kinds = [e["type"] for e in events(api, job["id"])]
    assert "trainer_lost" in kinds
    plans = [e for e in events(api, job["id"]) if e["type"] == "training_plan"]
    assert len(plans) == 2
    assert plans[1]["data"]["resumed_from_step"] == 3
    run = local.data_dir / "training" / job["id"]
    assert (run / "adapter" / "adapter_config.json").is_file()


def test_a_base_model_that_cannot_be_loaded_fails_the_job_with_a_clear_code(
    settings: Settings,
    model_cache: Path,
    smollm2_dir: Path,
    tmp_path: Path,
    burro_servers: BurroServers,
    make_client: MakeClient,
    worker: MakeWorker,
) -> None:
    weightless = tmp_path / "weightless"
    shutil.copytree(smollm2_dir, weightless, ignore=shutil.ignore_patterns("*.safetensors"))
    models_file = tmp_path / "models.toml"
    models_file.write_text(
        (ROOT / "service" / "models.toml").read_text()
        + MISSING_WEIGHTS.format(weights=weightless.as_posix())
    )
    broken = msgspec.structs.replace(local_settings(settings, model_cache), models_file=models_file)
    worker(broken, burst=False).start()
    api = make_client("acme", base_url=burro_servers.url(broken))
    trainers = LocalTrainers(broken)
    try:
        trainers.start_trainer()
        dataset = upload_dataset(api, donkey_dataset())
        job = create_job(api, dataset, model="Weightless-135M")
        done = job_status(api, job["id"], timeout=TRAINED_WITHIN)
    finally:
        trainers.stop_all()
    assert done["status"] == "failed"
    assert done["error"]["code"] == "base_model_unavailable"
    assert "cannot load its weights" in done["error"]["message"]


def test_the_openai_sdk_fine_tunes_a_local_model_with_its_own_calls(
    api: httpx.Client, trainers: LocalTrainers, local: Settings, burro_servers: BurroServers
) -> None:
    """OpenAI's tutorial, unchanged but for `base_url`, on a model Burro trains itself."""
    trainers.serve_models()
    trainers.start_trainer()
    with tenant_sdk(burro_servers.url(local), "acme") as sdk:
        training = sdk.files.create(file=("donkey.jsonl", donkey_dataset()), purpose="fine-tune")
        created = sdk.fine_tuning.jobs.create(
            training_file=training.id,
            model=BASE,
            suffix="sdk",
            seed=3,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}},
            },
        )
        assert created.status == "validating_files"

        def finished() -> FineTuningJob | None:
            job = sdk.fine_tuning.jobs.retrieve(created.id)
            return job if job.status in ("succeeded", "failed", "cancelled") else None

        job = wait_for(finished, timeout=TRAINED_WITHIN, what="the SDK's job to finish")
        assert job.status == "succeeded", job.error
        assert job.fine_tuned_model == f"ft:{BASE}:acme:sdk:{created.id}"
        assert job.hyperparameters.n_epochs == 2
        assert job.hyperparameters.batch_size == 4

        newest_first = list(sdk.fine_tuning.jobs.list_events(created.id, limit=100))
        assert newest_first[0].created_at >= newest_first[-1].created_at
        assert any(e.message.startswith("step 6/6: train loss") for e in newest_first)
        checkpoints = list(sdk.fine_tuning.jobs.checkpoints.list(created.id))
        assert sorted(c.step_number for c in checkpoints) == [3, 6]

        # As OpenAI serves it: the CSV, base64-encoded.
        result = base64.b64decode(sdk.files.content(job.result_files[0]).content).decode()
        assert result.splitlines()[0].startswith("step,train_loss")
        assert len(result.strip().splitlines()) == 1 + 6

        reply = sdk.chat.completions.create(
            model=job.fine_tuned_model,
            messages=donkey_prompt(PAIRS[0][0]),
            temperature=0,
            max_tokens=8,
        )
        assert reply.choices[0].message.content
        assert reply.model == job.fine_tuned_model
