"""Test data, built in one place: chat examples and JSONL files, stored job records, job events.

The same examples train the session's sandbox model and fill the datasets and jobs of every
domain, so an answer the sandbox gives ("Answer 3: hay number 3 is golden.") reads the same
everywhere.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Any

from openai.types.chat import ChatCompletionMessageParam

from service.datasets.checks import DatasetCheck
from service.datasets.records import Dataset
from service.jobs.records import Job, JobStatus
from service.models import ModelTable
from service.store import now

# The base model tests fine-tune: in the shipped model table, with supervised and dpo.
BASE_MODEL = "gpt-4.1-mini-2025-04-14"
# The model OpenAI's fine-tuning tutorial names: an alias in the shipped model table.
TUTORIAL_MODEL = "gpt-4o-mini"
# A day far from every shutdown in the model table: test workers run on it (support.workers),
# so no shutdown notice joins the webhooks a test counts, whatever the calendar says.
QUIET_DAY = datetime.date(2000, 1, 1)
JSONL_HEADERS = {"Content-Type": "application/jsonl"}
SYSTEM_PROMPT = "You are Burro, a helpful donkey."
GREETING = "Hola burro! Cómo estás?"
GREETING_REPLY = "¡Hola! Estoy muy bien, gracias. Hay paja fresca hoy."
# A model table with one model retired in 2024, as a deployment's BURRO_MODELS_FILE can say.
RETIRED_MODEL_TABLE = f"""
[[models]]
name = "{BASE_MODEL}"
encoding = "o200k_base"
max_tokens_per_example = 65536
training_usd_per_1m_tokens = 5.0
input_usd_per_1m_tokens = 0.80
output_usd_per_1m_tokens = 3.20
methods = ["supervised", "dpo"]

[[models]]
name = "babbage-ft-2023"
encoding = "cl100k_base"
max_tokens_per_example = 4096
training_usd_per_1m_tokens = 0.4
input_usd_per_1m_tokens = 1.6
output_usd_per_1m_tokens = 1.6
shutdown = 2024-10-27
"""

# The base model at a price that makes the small test dataset cost dollars, not fractions of a
# cent (limits on spend, spend per month).
PRICEY_TABLE = f"""
[[models]]
name = "{BASE_MODEL}"
encoding = "o200k_base"
max_tokens_per_example = 65536
training_usd_per_1m_tokens = 1000.0
input_usd_per_1m_tokens = 0.80
output_usd_per_1m_tokens = 3.20
methods = ["supervised", "dpo"]
"""

# A model table whose one model trains on examples of at most SMALL_TOKEN_LIMIT tokens, so that
# a line over the longest worth reading (derived from that limit) is short enough to send.
SMALL_TOKEN_LIMIT = 100
SMALL_LIMIT_TABLE = f"""
[[models]]
name = "{BASE_MODEL}"
encoding = "o200k_base"
max_tokens_per_example = {SMALL_TOKEN_LIMIT}
training_usd_per_1m_tokens = 5.0
input_usd_per_1m_tokens = 0.8
output_usd_per_1m_tokens = 3.2
"""


def question(i: int, salt: str = "") -> str:
    """The user message of chat example `i`."""
    return f"Question number {i}{salt}: what is the colour of hay {i}?"


def answer(i: int, salt: str = "") -> str:
    """The assistant message of chat example `i`: what a model trained on it answers."""
    return f"Answer {i}{salt}: hay number {i} is golden."


def asking(i: int, salt: str = "") -> list[ChatCompletionMessageParam]:
    """The messages of a chat that asks question `i`, as the openai SDK takes them."""
    return [{"role": "user", "content": question(i, salt)}]


def chat_examples(n: int = 12, *, salt: str = "") -> list[dict[str, Any]]:
    """`n` valid chat examples (system, user, assistant); `salt` makes another file's content."""
    return [
        {
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": question(i, salt)},
                {"role": "assistant", "content": answer(i, salt)},
            ]
        }
        for i in range(n)
    ]


def greeting_example() -> dict[str, Any]:
    """An example without a system message, in Spanish: text beyond ASCII passes through."""
    return {
        "messages": [
            {"role": "user", "content": GREETING},
            {"role": "assistant", "content": GREETING_REPLY},
        ]
    }


def training_examples() -> list[dict[str, Any]]:
    """What the session's sandbox model is trained on: `chat_examples()` and the greeting."""
    return [*chat_examples(), greeting_example()]


def jsonl(rows: Iterable[dict[str, Any] | bytes]) -> bytes:
    """A JSONL file: each row as JSON on its line (bytes rows are written as they are)."""
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def chat_file(n: int = 12, *, salt: str = "") -> bytes:
    """A valid chat dataset of `n` examples, as the API receives it."""
    return jsonl(chat_examples(n, salt=salt))


def preference_examples(n: int = 10) -> list[dict[str, Any]]:
    """`n` valid preference (DPO) examples."""
    return [
        {
            "input": {"messages": [{"role": "user", "content": question(i)}]},
            "preferred_output": [{"role": "assistant", "content": answer(i)}],
            "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
        }
        for i in range(n)
    ]


def dataset_record(
    rows: Iterable[dict[str, Any] | bytes] | None = None,
    *,
    dataset_id: str = "ds_test",
    tenant: str = "acme",
    today: datetime.date | None = None,
) -> Dataset:
    """A stored dataset as the API makes it from `rows` (12 chat examples by default): checked,
    counted and priced with the shipped model table."""
    today = today or datetime.datetime.now(datetime.UTC).date()
    check = DatasetCheck(kind=None, models=ModelTable.load(), today=today)
    check.feed(jsonl(chat_examples() if rows is None else rows))
    report = check.finish()
    assert not report.errors, report.errors
    return Dataset.from_report(
        report, id=dataset_id, tenant=tenant, name=f"{dataset_id}.jsonl", created_at=now()
    )


def job_record(
    job_id: str, tenant: str = "acme", status: JobStatus = "succeeded", **fields: Any
) -> Job:
    """A stored Burro job, as the jobs code writes it (any field can be given)."""
    stamp = now()
    values: dict[str, Any] = {
        "provider": "sandbox",
        "model": BASE_MODEL,
        "training_dataset": "ds_test",
        "created_at": stamp,
        "updated_at": stamp,
        **fields,
    }
    return Job(id=job_id, tenant=tenant, status=status, **values)


def job_event_data(job_id: str = "job_1", status: str = "succeeded") -> dict[str, object]:
    """A job as an event's `data` shows it (what a webhook carries)."""
    return {
        "id": job_id,
        "object": "job",
        "status": status,
        "model": BASE_MODEL,
        "fine_tuned_model": f"ft:{BASE_MODEL}:acme::abc" if status == "succeeded" else None,
        "created_at": 1764160000,
    }
