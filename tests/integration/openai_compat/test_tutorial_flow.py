"""The tutorial Burro grew from, run unchanged but for `base_url` and the key: the official SDK
uploads a file, fine-tunes, follows the job and chats with the model; LangChain chats too.
Burro is served over HTTP, the sandbox trains, a real worker runs the jobs."""

from __future__ import annotations

import base64

import httpx
import openai
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from tests.support.api import fine_tuning_job_status
from tests.support.clients import api_key
from tests.support.data import TUTORIAL_MODEL, answer, asking, chat_file, question
from tests.support.workers import BurroWorker
from workers.fine_tuning import parse_result_file


def test_the_tutorial_runs_end_to_end_against_burro(
    sdk: openai.OpenAI, burro_url: str, client: httpx.Client, running_worker: BurroWorker
) -> None:
    training = sdk.files.create(file=("donkey.jsonl", chat_file()), purpose="fine-tune")
    created = sdk.fine_tuning.jobs.create(
        training_file=training.id,
        model=TUTORIAL_MODEL,
        suffix="donkey",
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )

    job = fine_tuning_job_status(sdk, created.id)

    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model is not None and "donkey" in job.fine_tuned_model
    assert job.trained_tokens is not None and job.trained_tokens > 0
    assert job.finished_at is not None and job.estimated_finish is None
    # Resolved by the provider: numbers, where the request said "auto".
    assert job.hyperparameters.n_epochs == 2
    assert isinstance(job.hyperparameters.batch_size, int)
    assert isinstance(job.hyperparameters.learning_rate_multiplier, float)

    events = sdk.fine_tuning.jobs.list_events(job.id, limit=1000).data
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    assert any(e.type == "metrics" for e in events)
    assert events[0].message == f"Fine-tuned model {job.fine_tuned_model} is ready"

    checkpoints = sdk.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints, "the sandbox makes one checkpoint per epoch"
    steps = [c.step_number for c in checkpoints]
    assert steps == sorted(steps, reverse=True)
    assert all(c.fine_tuning_job_id == job.id for c in checkpoints)
    assert checkpoints[0].metrics.train_loss is not None

    # The result file: the training curve as OpenAI's base64 CSV, the same as Burro's metrics.
    [result_id] = job.result_files
    result = sdk.files.retrieve(result_id)
    assert result.purpose == "fine-tune-results"
    content = sdk.files.content(result_id).content
    assert result.bytes == len(content)
    assert base64.b64decode(content).startswith(b"step,train_loss,")
    curve = client.get(f"/v1/jobs/{job.id}/metrics").json()
    assert [r.step for r in parse_result_file(content)] == [r["step"] for r in curve["data"]]
    assert [f.id for f in sdk.files.list(purpose="fine-tune-results")] == [result_id]
    assert {f.id for f in sdk.files.list()} == {training.id, result_id}

    # The same job through Burro's own API.
    assert client.get(f"/v1/jobs/{job.id}").json()["status"] == "succeeded"

    reply = sdk.chat.completions.create(model=job.fine_tuned_model, messages=asking(3))
    assert reply.choices[0].message.content == answer(3)
    llm = ChatOpenAI(
        model=job.fine_tuned_model,
        base_url=f"{burro_url}/v1",
        api_key=SecretStr(api_key("acme")),
        max_retries=0,
    )
    assert llm.invoke(question(5)).content == answer(5)


def test_a_deleted_result_file_is_gone_from_the_job_and_the_file_list(
    sdk: openai.OpenAI, running_worker: BurroWorker, training_file: str
) -> None:
    job = fine_tuning_job_status(
        sdk, sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file).id
    )
    [result_id] = job.result_files

    assert sdk.files.delete(result_id).deleted is True

    assert sdk.fine_tuning.jobs.retrieve(job.id).result_files == []
    assert [f.id for f in sdk.files.list()] == [training_file]
    for call in (sdk.files.retrieve, sdk.files.content, sdk.files.delete):
        try:
            call(result_id)
        except openai.NotFoundError:
            continue
        raise AssertionError(f"{call.__name__} found a deleted result file")
