"""What `POST /v1/jobs` refuses, without anything running: a body of the wrong shape (a 400
from decoding) and every rule of `service.jobs.rules` (a 422 naming the field)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from service.errors import Unprocessable
from service.jobs import rules
from service.jobs.records import JobCreate, MethodIn
from service.jobs.routes import check_webhook_url
from service.models import ModelTable
from service.settings import ProviderSettings, Settings
from tests.support.data import BASE_MODEL, RETIRED_MODEL_TABLE, dataset_record, preference_examples

TABLE = ModelTable.load()
TODAY = datetime.date(2026, 12, 2)
VALID = {"training_dataset": "ds_1", "model": BASE_MODEL}
SANDBOX = ProviderSettings(name="sandbox", base_url="http://127.0.0.1:9/v1", api_key="x")
LOCAL = ProviderSettings(name="local", kind="local", base_url="http://127.0.0.1:9/v1")
SETTINGS = Settings(providers=(SANDBOX, LOCAL), default_provider="sandbox")


def decode(**changes: Any) -> JobCreate:
    return msgspec.json.decode(msgspec.json.encode({**VALID, **changes}), type=JobCreate)


@contextlib.contextmanager
def refused(field: str) -> Iterator[pytest.ExceptionInfo[Unprocessable]]:
    """Expect a 422 that names `field`: its detail starts with it and its `param` is it."""
    with pytest.raises(Unprocessable, match=rf"^{re.escape(field)}: ") as caught:
        yield caught
    assert caught.value.extensions["param"] == field


# --- The body's shape ------------------------------------------------------------------------


def test_a_minimal_body_decodes_with_defaults() -> None:
    job = decode()
    assert (job.training_dataset, job.model) == ("ds_1", BASE_MODEL)
    assert job.method is None and job.webhook is None and job.metadata is None


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        pytest.param({"model": None}, "$.model", id="null-model"),
        pytest.param({"surprise": 1}, "surprise", id="unknown-field"),
        pytest.param({"seed": -1}, "$.seed", id="negative-seed"),
        pytest.param({"method": {"type": "reinforcement"}}, "$.method.type", id="method-type"),
        pytest.param({"suffix": "with space"}, "$.suffix", id="suffix"),
        pytest.param({"promote_to": "-donkey"}, "$.promote_to", id="alias-name"),
        pytest.param({"webhook": {"url": "http://x", "secret": "nope"}}, "$.webhook.secret"),
        pytest.param(
            {"method": {"hyperparameters": {"n_epochs": 0}}},
            "$.method.hyperparameters.n_epochs",
            id="zero-epochs",
        ),
        pytest.param({"metadata": {"k": "v" * 513}}, "$.metadata", id="long-metadata"),
        pytest.param(
            {"promotion": {"evaluation_dataset": "ds_2", "min_similarity": -1}},
            "$.promotion.min_similarity",
            id="negative-threshold",
        ),
        pytest.param({"promotion": {"evaluation_dataset": "ds_2", "typo": 1}}, "typo"),
    ],
)
def test_a_body_of_the_wrong_shape_is_refused_naming_where(
    changes: dict[str, Any], where: str
) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        decode(**changes)
    assert where in str(caught.value)


def test_a_body_without_a_model_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="missing required field `model`"):
        msgspec.json.decode(b'{"training_dataset": "ds_1"}', type=JobCreate)


# --- Provider and model ----------------------------------------------------------------------


def test_the_default_provider_is_used_when_none_is_named() -> None:
    assert rules.check_provider(SETTINGS, None) == "sandbox"


def test_an_unknown_provider_is_refused() -> None:
    with refused("provider"):
        rules.check_provider(SETTINGS, "nope")


def test_the_openai_provider_without_a_key_is_refused() -> None:
    keyless = msgspec.structs.replace(
        SETTINGS, providers=(SANDBOX, ProviderSettings(name="openai", api_key=None))
    )
    with pytest.raises(Unprocessable, match="OPENAI_API_KEY"):
        rules.check_provider(keyless, "openai")


def test_a_model_outside_the_table_cannot_be_fine_tuned() -> None:
    with refused("model") as caught:
        rules.check_model(TABLE, "dall-e-3", "sandbox", TODAY, SETTINGS)
    assert "cannot be fine-tuned" in str(caught.value)


def test_a_retired_model_is_refused_saying_since_when(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(RETIRED_MODEL_TABLE)
    table = ModelTable.load(path)
    for model in ("babbage-ft-2023", "ft:babbage-ft-2023:acme:x:abc"):  # `ft:` by its base
        with refused("model") as caught:
            rules.check_model(table, model, "sandbox", TODAY, SETTINGS)
        assert "retired on 2024-10-27" in str(caught.value)


def test_openai_refuses_a_model_after_its_training_ended_other_providers_do_not() -> None:
    after = datetime.date(2027, 1, 6)
    with pytest.raises(Unprocessable, match="OpenAI closed new fine-tuning jobs"):
        rules.check_model(TABLE, BASE_MODEL, "openai", after, SETTINGS)
    assert rules.check_model(TABLE, BASE_MODEL, "sandbox", after, SETTINGS).name == BASE_MODEL
    assert rules.check_model(TABLE, BASE_MODEL, "openai", TODAY, SETTINGS).name == BASE_MODEL


# --- Method and datasets ---------------------------------------------------------------------


def test_the_method_is_supervised_with_automatic_hyperparameters_by_default() -> None:
    info = TABLE.get(BASE_MODEL)
    assert info is not None
    method, hyperparameters = rules.check_method(info, None, dataset_record(), None)
    assert method == "supervised"
    assert (hyperparameters.n_epochs, hyperparameters.beta) == ("auto", None)


def test_dpo_needs_a_preference_set_and_a_model_that_offers_it() -> None:
    mini, gpt35 = TABLE.get(BASE_MODEL), TABLE.get("gpt-3.5-turbo-0125")
    assert mini is not None and gpt35 is not None
    dpo = MethodIn(type="dpo")
    chat, preference = dataset_record(), dataset_record(preference_examples())
    with pytest.raises(Unprocessable, match="needs a preference dataset"):
        rules.check_method(mini, dpo, chat, None)
    with pytest.raises(Unprocessable, match="cannot be fine-tuned with dpo"):
        rules.check_method(gpt35, dpo, preference, None)
    assert rules.check_method(mini, dpo, preference, None)[0] == "dpo"


def test_beta_is_only_for_dpo() -> None:
    info = TABLE.get(BASE_MODEL)
    assert info is not None
    method = msgspec.convert({"hyperparameters": {"beta": 0.5}}, MethodIn)
    with refused("method.hyperparameters.beta"):
        rules.check_method(info, method, dataset_record(), None)


def test_a_validation_set_of_another_kind_than_the_training_set_is_refused() -> None:
    info = TABLE.get(BASE_MODEL)
    assert info is not None
    with refused("validation_dataset"):
        rules.check_method(info, None, dataset_record(), dataset_record(preference_examples()))


def test_examples_longer_than_the_model_trains_on_are_refused() -> None:
    info = TABLE.get(BASE_MODEL)
    assert info is not None
    fits = dataset_record()
    rules.check_examples_fit(info, {"training_dataset": fits, "validation_dataset": None})
    over = [msgspec.structs.replace(e, examples_over_limit=2) for e in fits.estimates]
    too_long = msgspec.structs.replace(fits, id="ds_long", estimates=over)
    with refused("validation_dataset") as caught:
        rules.check_examples_fit(info, {"training_dataset": fits, "validation_dataset": too_long})
    assert "2 example(s) of ds_long" in str(caught.value)


# --- Metadata and webhook --------------------------------------------------------------------


def test_metadata_takes_fifteen_keys_and_never_burros_own() -> None:
    fifteen = {f"k{i}": "v" for i in range(15)}
    assert rules.check_metadata(fifteen) == fifteen
    assert rules.check_metadata(None) == {}
    with pytest.raises(Unprocessable, match="at most 15"):
        rules.check_metadata({**fifteen, "k15": "v"})
    with refused("metadata"):
        rules.check_metadata({"burro_job": "x"})


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "example.com"])
def test_a_webhook_url_that_is_not_http_is_refused(url: str) -> None:
    with refused("webhook.url"):
        asyncio.run(check_webhook_url(url, allow_private=True))


def test_a_private_webhook_address_is_refused_unless_allowed() -> None:
    with pytest.raises(Unprocessable, match="loopback"):
        asyncio.run(check_webhook_url("http://127.0.0.1/hook", allow_private=False))
    asyncio.run(check_webhook_url("http://127.0.0.1/hook", allow_private=True))


def test_a_model_the_table_says_trains_locally_goes_to_the_local_trainers() -> None:
    assert rules.check_provider(SETTINGS, None, TABLE, "SmolLM2-135M-Instruct") == "local"
    assert rules.check_provider(SETTINGS, None, TABLE, BASE_MODEL) == "sandbox"


def test_a_local_model_on_a_hosted_provider_is_refused_naming_the_right_one() -> None:
    with pytest.raises(Unprocessable, match=r"trained by Burro's own trainers.*'local'"):
        rules.check_model(TABLE, "SmolLM2-135M-Instruct", "sandbox", TODAY, SETTINGS)
    with pytest.raises(Unprocessable, match="trained by a hosted provider"):
        rules.check_model(TABLE, BASE_MODEL, "local", TODAY, SETTINGS)
