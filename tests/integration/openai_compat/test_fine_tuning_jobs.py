"""OpenAI's fine-tuning jobs API on Burro, without a worker: what a request becomes, how jobs
list and page, what is refused and how, and that each tenant sees only its own."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.data import TUTORIAL_MODEL


def test_a_job_made_here_is_a_burro_job_with_openais_fields(
    sdk: openai.OpenAI, client: httpx.Client, training_file: str
) -> None:
    job = sdk.fine_tuning.jobs.create(
        model=TUTORIAL_MODEL,
        training_file=training_file,
        suffix="donkey",
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
        metadata={"commit": "3f2a9c1"},
    )

    assert job.object == "fine_tuning.job"
    assert job.status == "validating_files"
    assert job.training_file == training_file
    assert job.organization_id == "acme"
    assert job.user_provided_suffix == "donkey"  # type: ignore[attr-defined]
    assert isinstance(job.seed, int)  # OpenAI picks a seed when none is given, so does Burro
    assert job.hyperparameters.n_epochs == 3
    assert job.method is not None and job.method.type == "supervised"
    assert job.method.supervised is not None and job.method.supervised.hyperparameters is not None
    assert job.method.supervised.hyperparameters.n_epochs == 3
    assert job.metadata == {"commit": "3f2a9c1"}
    assert (job.fine_tuned_model, job.trained_tokens, job.result_files) == (None, None, [])
    burro_job = client.get(f"/v1/jobs/{job.id}").json()
    assert burro_job["training_dataset"] == training_file
    assert burro_job["suffix"] == "donkey"
    assert burro_job["seed"] == job.seed
    assert burro_job["provider"] == "sandbox"
    assert burro_job["method"]["hyperparameters"]["n_epochs"] == 3


def test_a_job_made_through_burros_own_api_reads_back_as_a_fine_tuning_job(
    sdk: openai.OpenAI, client: httpx.Client, training_file: str
) -> None:
    created = client.post(
        "/v1/jobs",
        json={
            "training_dataset": training_file,
            "model": TUTORIAL_MODEL,
            "method": {"type": "supervised", "hyperparameters": {"batch_size": 2}},
        },
    )
    assert created.status_code == 202, created.text

    job = sdk.fine_tuning.jobs.retrieve(created.json()["id"])
    assert job.status == "validating_files"  # Burro's `pending`
    assert job.hyperparameters.batch_size == 2
    assert job.hyperparameters.n_epochs == "auto"
    assert job.seed is None  # Burro's own API leaves it to the provider
    assert [j.id for j in sdk.fine_tuning.jobs.list()] == [job.id]


def test_the_legacy_hyperparameters_train_the_supervised_method(
    sdk: openai.OpenAI, training_file: str
) -> None:
    job = sdk.fine_tuning.jobs.create(
        model=TUTORIAL_MODEL, training_file=training_file, hyperparameters={"n_epochs": 2}, seed=7
    )

    assert job.seed == 7
    assert job.method is not None and job.method.supervised is not None
    assert job.method.supervised.hyperparameters is not None
    assert job.method.supervised.hyperparameters.n_epochs == 2


@pytest.mark.parametrize(
    ("request_fields", "param", "words"),
    [
        ({"training_file": "ds_missing"}, "training_file", "no file 'ds_missing'"),
        ({"model": "davinci-003"}, "model", "cannot be fine-tuned"),
        ({"suffix": "no spaces please"}, "suffix", "Invalid suffix"),
        (
            {"method": {"type": "reinforcement"}},
            "method.type",
            "'reinforcement' is not one of them",
        ),
        (
            {"method": {"type": "supervised"}, "hyperparameters": {"n_epochs": 2}},
            "hyperparameters",
            "not both",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 99}}}},
            "method.supervised.hyperparameters.n_epochs",
            "n_epochs",
        ),
        ({"metadata": {"burro_provider": "mars"}}, "metadata.burro_provider", "'mars'"),
        ({"validation_file": "ds_missing"}, "validation_file", "no file"),
    ],
)
def test_a_request_burro_will_not_take_is_a_400_naming_openais_field(
    sdk: openai.OpenAI,
    training_file: str,
    request_fields: dict[str, object],
    param: str,
    words: str,
) -> None:
    body: dict[str, object] = {
        "model": TUTORIAL_MODEL,
        "training_file": training_file,
        **request_fields,
    }

    with pytest.raises(openai.BadRequestError) as caught:
        sdk.fine_tuning.jobs.create(**body)  # type: ignore[arg-type]

    assert caught.value.param == param
    assert words in caught.value.message
    assert sdk.fine_tuning.jobs.list().data == []


def test_an_unknown_field_is_a_400_that_names_it(client: httpx.Client, training_file: str) -> None:
    response = client.post(
        "/v1/fine_tuning/jobs",
        json={"model": TUTORIAL_MODEL, "training_file": training_file, "epochs": 3},
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "epochs" in error["message"]


def test_integrations_are_accepted_and_ignored_with_a_warning_event(
    sdk: openai.OpenAI, training_file: str
) -> None:
    job = sdk.fine_tuning.jobs.create(
        model=TUTORIAL_MODEL,
        training_file=training_file,
        integrations=[{"type": "wandb", "wandb": {"project": "donkey"}}],
    )

    events = sdk.fine_tuning.jobs.list_events(job.id).data
    assert events[0].level == "warn"
    assert "wandb" in events[0].message
    assert job.integrations is None


def test_jobs_page_with_after_over_150_jobs_and_filter_by_metadata(
    sdk: openai.OpenAI, training_file: str
) -> None:
    made = [
        sdk.fine_tuning.jobs.create(
            model=TUTORIAL_MODEL,
            training_file=training_file,
            metadata={"batch": "even" if i % 2 else "odd"},
        ).id
        for i in range(150)
    ]
    newest_first = made[::-1]

    first = sdk.fine_tuning.jobs.list(limit=100)
    assert [j.id for j in first.data] == newest_first[:100]
    assert first.has_more is True
    rest = sdk.fine_tuning.jobs.list(limit=100, after=first.data[-1].id)
    assert [j.id for j in rest.data] == newest_first[100:]
    assert rest.has_more is False
    assert [j.id for j in sdk.fine_tuning.jobs.list(limit=7)] == newest_first  # SDK pages
    evens = [j.id for j in sdk.fine_tuning.jobs.list(limit=40, metadata={"batch": "even"})]
    assert evens == newest_first[::2]


def test_a_page_after_an_unknown_job_is_a_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.fine_tuning.jobs.list(after="job_nothing")
    assert caught.value.param == "after"


def test_cancel_before_any_upstream_job_cancels_at_once_and_twice_is_a_400(
    sdk: openai.OpenAI, client: httpx.Client, training_file: str
) -> None:
    job = sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file)

    cancelled = sdk.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    assert client.get(f"/v1/jobs/{job.id}").json()["status"] == "cancelled"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.fine_tuning.jobs.cancel(job.id)
    assert "already cancelled" in caught.value.message


def test_pausing_a_job_that_is_not_running_is_a_400_that_says_why(
    sdk: openai.OpenAI, training_file: str
) -> None:
    job = sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file)

    with pytest.raises(openai.BadRequestError) as paused:
        sdk.fine_tuning.jobs.pause(job.id)
    with pytest.raises(openai.BadRequestError) as resumed:
        sdk.fine_tuning.jobs.resume(job.id)

    assert "is validating_files; only running jobs can be paused" in paused.value.message
    assert "only paused jobs can be resumed" in resumed.value.message


def test_another_tenants_job_is_not_found_on_every_path(
    sdk: openai.OpenAI, other_sdk: openai.OpenAI, training_file: str
) -> None:
    job = sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file)

    calls = (
        other_sdk.fine_tuning.jobs.retrieve,
        other_sdk.fine_tuning.jobs.cancel,
        other_sdk.fine_tuning.jobs.pause,
        other_sdk.fine_tuning.jobs.resume,
        other_sdk.fine_tuning.jobs.list_events,
        other_sdk.fine_tuning.jobs.checkpoints.list,
    )
    for call in calls:
        with pytest.raises(openai.NotFoundError) as caught:
            call(job.id)
        assert caught.value.code == "not_found"
    assert other_sdk.fine_tuning.jobs.list().data == []
    with pytest.raises(openai.BadRequestError):  # her file is no file of his
        other_sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file)
    assert sdk.fine_tuning.jobs.retrieve(job.id).status == "validating_files"
