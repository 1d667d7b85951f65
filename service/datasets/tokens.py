"""Token counting for datasets, offline: the vocabularies ship inside the `service` package."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
from importlib import resources
from pathlib import Path

import tiktoken
from tiktoken_ext import openai_public  # type: ignore[import-untyped]

__all__ = ["ENCODINGS", "EncodingError", "get_encoding", "load_encoding"]

# tiktoken's own expected hashes for these files (tiktoken_ext.openai_public), so a vocabulary
# that was truncated or swapped in a deployment fails loudly instead of miscounting quietly.
_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# The split patterns and special tokens are those of tiktoken_ext.openai_public, whose
# constructors would fetch the vocabulary from a URL; tests compare them to tiktoken's.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_PATTERNS = {"cl100k_base": _CL100K_PAT, "o200k_base": _O200K_PAT}
_SPECIAL_TOKENS = {
    "cl100k_base": {
        openai_public.ENDOFTEXT: 100257,
        openai_public.FIM_PREFIX: 100258,
        openai_public.FIM_MIDDLE: 100259,
        openai_public.FIM_SUFFIX: 100260,
        openai_public.ENDOFPROMPT: 100276,
    },
    "o200k_base": {openai_public.ENDOFTEXT: 199999, openai_public.ENDOFPROMPT: 200018},
}

ENCODINGS = frozenset(_SHA256)


class EncodingError(ValueError):
    """A vocabulary file is unknown, unreadable, or not the one tiktoken expects."""


def load_encoding(name: str, path: Path, expected_sha256: str | None = None) -> tiktoken.Encoding:
    """Build the encoding `name` from the vocabulary at `path`, checking its sha256 first."""
    if name not in _SHA256:
        raise EncodingError(f"unknown encoding {name!r}; known: {', '.join(sorted(_SHA256))}")
    data = path.read_bytes()
    expected = expected_sha256 or _SHA256[name]
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise EncodingError(
            f"vocabulary {path.name} has sha256 {actual}, expected {expected}: "
            "corrupted or replaced"
        )
    # The same parsing as tiktoken.load.load_tiktoken_bpe, which would also copy a local file
    # into a cache directory under the system temp dir: a side effect a server does not want.
    ranks: dict[bytes, int] = {}
    for line in io.BytesIO(data):  # line by line: no list of 200,000 lines at load time
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    del data
    return tiktoken.Encoding(
        name=name,
        pat_str=_PATTERNS[name],
        mergeable_ranks=ranks,
        special_tokens=_SPECIAL_TOKENS[name],
    )


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The shipped encoding `name` (`o200k_base` or `cl100k_base`), loaded once per process."""
    if name not in _SHA256:
        raise EncodingError(f"unknown encoding {name!r}; known: {', '.join(sorted(_SHA256))}")
    with resources.as_file(resources.files("service") / "tiktoken" / f"{name}.tiktoken") as path:
        return load_encoding(name, path)
