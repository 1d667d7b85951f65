"""Rescue a hosted fine-tune before it shuts down, on real processes: the Donkey fine-tuned on
the sandbox (the hosted model that will stop answering) is the teacher behind the alias the
caller's code uses; SmolLM2 on Burro's own trainer is the student. The alias moves to the
student when it answers the held-out prompts close enough to the teacher, and stays put when a
threshold asks for more than the student gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.ids import new_id
from service.settings import Settings
from tests.support.api import upload_dataset
from tests.support.data import BASE_MODEL
from tests.support.fixtures import BurroServers, MakeClient, MakeWorker, with_sandbox
from tests.support.sandboxes import chat_prompts, controls, fine_tune
from tests.support.store import register
from tests.support.trainers import LocalTrainers, local_settings
from tests.support.training import TRAINING_TIMEOUT, WITHOUT_TRAINER_EXTRA
from tests.support.waiting import wait_for
from trainer.examples import PAIRS, conversation

pytest.importorskip("torch", reason=WITHOUT_TRAINER_EXTRA)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TRAINING_TIMEOUT)]

STUDENT = "SmolLM2-135M-Instruct"
# Tiny on purpose: ten examples, two epochs of batch 4 (six steps) train in seconds.
QUICK = {"type": "supervised", "hyperparameters": {"n_epochs": 2, "batch_size": 4}}
# The teacher's answers and the student's are both cut here: the evaluation stays short.
MAX_TOKENS = 48
# Six steps teach SmolLM2 little: measured, its answers to the two held-out prompts score 0.41
# to 0.45 against the teacher's (its base model's, 0.43). A bar it clears, for a pass.
PASS = 0.25
# Decided within this: a trainer's and the model server's start (torch, SmolLM2) on a busy
# CPU, six steps of training, four answers of at most MAX_TOKENS.
DECIDED_WITHIN = TRAINING_TIMEOUT / 2 - 30


def donkey_lines(answer: str | None = None) -> bytes:
    """The Donkey's twelve questions; with `answer`, every one answered by it instead."""
    rows = [{"messages": conversation(q, answer or a)} for q, a in PAIRS]
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


@pytest.fixture
def local(settings: Settings, sandbox_url: str, model_cache: Path, smollm2_dir: Path) -> Settings:
    """The sandbox (the teacher's upstream) and the local provider (the student's trainer)."""
    assert smollm2_dir.is_dir()
    return local_settings(with_sandbox(settings, sandbox_url), model_cache)


@pytest.fixture
def api(
    local: Settings,
    burro_servers: BurroServers,
    make_client: MakeClient,
    worker: MakeWorker,
) -> httpx.Client:
    worker(local, burst=False).start()
    return make_client("acme", base_url=burro_servers.url(local))


@pytest.fixture
def trainers(local: Settings) -> Iterator[LocalTrainers]:
    children = LocalTrainers(local)
    children.serve_models()
    children.start_trainer()
    yield children
    children.stop_all()


@pytest.fixture
def hosted_donkey(api: httpx.Client, sandbox_url: str, redis_url: str) -> str:
    """The hosted Donkey (fine-tuned on the sandbox, which answers its training word for word)
    behind acme's alias `donkey`; its model name."""
    model = fine_tune(sandbox_url, donkey_lines(), BASE_MODEL)
    job_id = new_id("job_")
    register(redis_url, "acme", job_id, model)
    assert api.put("/v1/aliases/donkey", json={"job": job_id}).status_code == 201
    return model


def distil(
    api: httpx.Client, prompts: str, min_similarity: float, teacher: str = "donkey"
) -> dict[str, Any]:
    response = api.post(
        "/v1/jobs",
        json={
            "training_dataset": prompts,
            "model": STUDENT,
            "suffix": "donkey",
            "seed": 7,
            "method": QUICK,
            "teacher": {"model": teacher},
            "distillation": {"max_tokens": MAX_TOKENS, "min_similarity": min_similarity},
            "promote_to": "donkey",
        },
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def decided(api: httpx.Client, job_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("failed", "cancelled"):
            raise AssertionError(job)
        gate = job["promotion"]
        return job if gate and gate["status"] in ("promoted", "not_promoted") else None

    return wait_for(check, timeout=DECIDED_WITHIN, what=f"{job_id}'s promotion")


def test_a_hosted_donkey_is_distilled_into_smollm2_and_its_alias_moves_only_on_a_pass(
    api: httpx.Client,
    trainers: LocalTrainers,
    hosted_donkey: str,
    sandbox_url: str,
) -> None:
    # The prompts' own answers are not the teacher's: only the teacher's are learned.
    prompts = upload_dataset(api, donkey_lines("No sé."), name="donkey-prompts.jsonl")
    created = distil(api, prompts, min_similarity=PASS)
    assert created["provider"] == "local"
    job = decided(api, created["id"])
    d = job["distillation"]
    assert job["status"] == "succeeded"
    assert job["fine_tuned_model"] == f"ft:{STUDENT}:acme:donkey:{job['id']}"
    assert (d["phase"], d["prompts"], d["answered"], d["failed"]) == ("finished", 12, 12, 0)
    assert d["teacher_cost_usd"] > 0
    trained = api.get(f"/v1/datasets/{d['dataset']}/content").text.splitlines()
    answers = {json.loads(line)["messages"][-1]["content"] for line in trained}
    assert len(trained) == 10 and answers <= {a for _, a in PAIRS}
    with controls(sandbox_url) as sandbox:
        assert sum(chat_prompts(sandbox, hosted_donkey).values()) == 12

    gate = job["promotion"]
    evaluation = api.get(f"/v1/evaluations/{gate['evaluation']}").json()
    assert evaluation["dataset"] == d["holdout_dataset"]
    assert evaluation["summary"]["fine_tuned"]["answered"] == 2
    assert gate["status"] == "promoted", gate
    assert gate["reason"].endswith(f"≥ threshold {PASS:.3f}")
    alias = api.get("/v1/aliases/donkey").json()
    assert (alias["model"], alias["history"][0]["reason"]) == (
        job["fine_tuned_model"],
        gate["reason"],
    )
    # The caller's code talks to the alias, and the student answers.
    chat = api.post(
        "/v1/chat/completions",
        json={"model": "donkey", "messages": conversation(PAIRS[0][0]), "max_tokens": 8},
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"]

    # A bar no student reaches: the job succeeds, the alias stays on the first student.
    # The alias now names the student: the hosted model teaches by its own name.
    second = decided(api, distil(api, prompts, min_similarity=1.01, teacher=hosted_donkey)["id"])
    assert second["promotion"]["status"] == "not_promoted"
    alias = api.get("/v1/aliases/donkey").json()
    assert alias["model"] == job["fine_tuned_model"]
    assert alias["history"][0]["reason"] == second["promotion"]["reason"]
