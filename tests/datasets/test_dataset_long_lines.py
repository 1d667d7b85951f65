"""Long lines: the longest line worth reading comes from the model table; a longer one is
`line_too_long` on its own line while the rest of the file is still checked; long texts are
counted exactly in pieces."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from burro.testing import serve_in_thread
from service.app import create_app
from service.datasets.checks import _count_tokens
from service.datasets.line_bound import LONGEST_TOKEN_BYTES, longest_useful_line
from service.datasets.tokens import get_encoding
from service.models import ModelTable
from service.settings import Settings

SMALL_LIMIT = 100  # tokens per example in the test's model table
SMALL_TABLE = f"""
[[models]]
name = "gpt-4.1-mini-2025-04-14"
encoding = "o200k_base"
max_tokens_per_example = {SMALL_LIMIT}
training_usd_per_1m_tokens = 5.0
input_usd_per_1m_tokens = 0.8
output_usd_per_1m_tokens = 3.2
"""


def example(content: str) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": content},
                {"role": "assistant", "content": "Hee-haw!"},
            ]
        }
    )


def test_the_bound_comes_from_the_largest_per_example_limit(tmp_path: Path) -> None:
    shipped = ModelTable.load()
    largest = max(m.max_tokens_per_example for m in shipped)
    assert longest_useful_line(shipped) == largest * LONGEST_TOKEN_BYTES * 2 == 16 * 1024 * 1024
    path = tmp_path / "models.toml"
    path.write_text(SMALL_TABLE)
    assert longest_useful_line(ModelTable.load(path)) == SMALL_LIMIT * LONGEST_TOKEN_BYTES * 2


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_no_token_of_the_shipped_vocabularies_is_longer_than_the_bound_assumes(name: str) -> None:
    encoding = get_encoding(name)
    longest = 0
    for token in range(encoding.max_token_value + 1):
        try:
            longest = max(longest, len(encoding.decode_single_token_bytes(token)))
        except KeyError:  # holes in the vocabulary
            continue
    assert longest == LONGEST_TOKEN_BYTES


@pytest.fixture
def small_table_client(settings: Settings, tmp_path: Path) -> Iterator[httpx.Client]:
    path = tmp_path / "models.toml"
    path.write_text(SMALL_TABLE)
    small = msgspec.structs.replace(settings, models_file=path)
    with (
        serve_in_thread(create_app(small, configure_logs=False)) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer key-acme"}) as http,
    ):
        yield http


def test_a_line_longer_than_any_model_could_train_on_is_refused_on_its_own_line(
    small_table_client: httpx.Client,
) -> None:
    bound = SMALL_LIMIT * LONGEST_TOKEN_BYTES * 2
    lines = [example(f"question {i}") for i in range(12)]
    lines[3] = example("hay " * (bound // 4 + 10))  # just over the bound
    lines[7] = "{not json"
    body = ("\n".join(lines) + "\n").encode()
    response = small_table_client.post(
        "/v1/datasets", content=body, headers={"Content-Type": "application/jsonl"}
    )
    assert response.status_code == 422
    assert [(e["line"], e["code"]) for e in response.json()["errors"]] == [
        (4, "line_too_long"),
        (8, "invalid_json"),
    ]
    assert str(bound) in response.json()["errors"][0]["message"]


def test_a_line_under_the_bound_is_read_and_warned_about_not_refused(
    small_table_client: httpx.Client,
) -> None:
    lines = [example(f"question {i}") for i in range(12)]
    lines[3] = example("hay " * 2000)  # far over 100 tokens, well under the byte bound
    response = small_table_client.post(
        "/v1/datasets/validate",
        content=("\n".join(lines) + "\n").encode(),
        headers={"Content-Type": "application/jsonl"},
    )
    report = response.json()
    assert report["valid"] is True
    assert "example_too_long" in [w["code"] for w in report["warnings"]]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_long_texts_are_counted_exactly_in_pieces(name: str) -> None:
    encode = get_encoding(name).encode_ordinary
    words = ["the", "donkey", "12345", "  ", "héllo", "你好", "\n", "--", "ogre's", ",", "!"]
    rng = random.Random(7)
    for _ in range(3):
        text = " ".join(rng.choice(words) for _ in range(80_000))
        assert _count_tokens(encode, text) == len(encode(text))
