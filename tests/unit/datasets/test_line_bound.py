"""The longest line worth reading comes from the model table, and long texts are counted
exactly in pieces (the API's side of long lines: integration/datasets/test_dataset_long_lines)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from service.datasets.checks import _count_tokens
from service.datasets.line_bound import LONGEST_TOKEN_BYTES, longest_useful_line
from service.datasets.tokens import get_encoding
from service.models import ModelTable
from tests.support.data import SMALL_LIMIT_TABLE, SMALL_TOKEN_LIMIT


def test_the_bound_comes_from_the_largest_per_example_limit(tmp_path: Path) -> None:
    shipped = ModelTable.load()
    largest = max(m.max_tokens_per_example for m in shipped)
    assert longest_useful_line(shipped) == largest * LONGEST_TOKEN_BYTES * 2 == 16 * 1024 * 1024
    path = tmp_path / "models.toml"
    path.write_text(SMALL_LIMIT_TABLE)
    assert longest_useful_line(ModelTable.load(path)) == SMALL_TOKEN_LIMIT * LONGEST_TOKEN_BYTES * 2


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


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_long_texts_are_counted_exactly_in_pieces(name: str) -> None:
    encode = get_encoding(name).encode_ordinary
    words = ["the", "donkey", "12345", "  ", "héllo", "你好", "\n", "--", "ogre's", ",", "!"]
    rng = random.Random(7)
    for _ in range(3):
        text = " ".join(rng.choice(words) for _ in range(80_000))
        assert _count_tokens(encode, text) == len(encode(text))
