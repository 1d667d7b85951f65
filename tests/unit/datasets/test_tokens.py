"""The shipped vocabularies load offline, match tiktoken's own, and refuse a tampered file."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiktoken_ext import openai_public  # type: ignore[import-untyped]

from service.datasets.tokens import EncodingError, get_encoding, load_encoding
from tests.support import ROOT

VOCAB_DIR = ROOT / "service" / "tiktoken"


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_hello_world_is_two_tokens_in_both_encodings(name: str) -> None:
    assert len(get_encoding(name).encode_ordinary("hello world")) == 2


def test_known_token_ids() -> None:
    assert get_encoding("cl100k_base").encode_ordinary("hello world") == [15339, 1917]
    assert get_encoding("o200k_base").encode_ordinary("hello world") == [24912, 2375]


def test_encodings_are_cached() -> None:
    assert get_encoding("o200k_base") is get_encoding("o200k_base")


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_patterns_and_special_tokens_match_tiktokens_constructors(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tiktoken's constructor would download the vocabulary; only its other arguments matter."""
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: {})
    expected = getattr(openai_public, name)()
    encoding = get_encoding(name)
    assert encoding._pat_str == expected["pat_str"]
    assert encoding._special_tokens == expected["special_tokens"]


def test_tampered_vocabulary_fails_the_hash_check(tmp_path: Path) -> None:
    data = (VOCAB_DIR / "cl100k_base.tiktoken").read_bytes()
    tampered = tmp_path / "cl100k_base.tiktoken"
    tampered.write_bytes(data.replace(b" 100\n", b" 101\n", 1))
    with pytest.raises(EncodingError, match="sha256"):
        load_encoding("cl100k_base", tampered)


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(EncodingError, match="unknown encoding"):
        get_encoding("p50k_base")
