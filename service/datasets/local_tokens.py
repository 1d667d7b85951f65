"""Token counting for local models: the model's own tokenizer and chat template, without torch.

The trainer (trainer/data.py) renders each example through the model's chat template and counts
the tokens of that text; this module counts the same way with the `tokenizers` library (Rust,
no torch, no transformers) and jinja2, so a dataset's counts, `examples_over_limit` and
estimates for a local model are the ones training will see.

Where the tokenizer comes from:
- a Hugging Face model directory: its `tokenizer.json`, and the chat template and special
  tokens of its `tokenizer_config.json` (or `chat_template.jinja`);
- a GGUF file: the vocabulary, merges and special tokens stored in its metadata, built into a
  byte-level BPE tokenizer as transformers builds it (`tokenizer.ggml.model = "gpt2"`: SmolLM2,
  Llama 3, Qwen 2 and most recent models). Only the metadata at the head of the file is read.
  Sentencepiece vocabularies in GGUF files are not rebuilt here: give such a model as a
  Hugging Face directory.

A tokenizer is loaded once per process, on first use, and kept; one that cannot be loaded
raises `TokenizerUnavailable`, which callers answer with a 422.

What is counted, per example (choices where the trainer has no count of its own):
- chat: the conversation rendered with the template (tools included), as the trainer trains it;
- preference: the prompt rendered with the preferred answer plus the prompt rendered with the
  non-preferred one, since DPO runs both sequences through the model.
"""

from __future__ import annotations

import datetime
import functools
import importlib.util
import json
import struct
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from service.datasets.stored_lines import CHAT_LINE, PREFERENCE_LINE, StoredMessage
from service.models import ModelInfo

__all__ = [
    "LocalTokenizer",
    "TokenizerUnavailable",
    "get_local_tokenizer",
    "locate_weights",
    "read_gguf_metadata",
]

Message = dict[str, Any]


class TokenizerUnavailable(ValueError):
    """A local model's tokenizer or chat template cannot be loaded; the message says why."""


# --- GGUF metadata ----------------------------------------------------------------------------

_GGUF_MAGIC = b"GGUF"
# Metadata value types of the GGUF format: fixed-size scalars by struct format; 8 is a string
# (u64 length + UTF-8), 9 an array (u32 element type, u64 count, elements).
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9
# A bound on counts read from the file, so a corrupt header fails fast instead of allocating.
_MAX_ITEMS = 1 << 24


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """The key/value metadata at the head of a GGUF file (tensors are never read).

    Raises `TokenizerUnavailable` when the file is not GGUF or is cut short.
    """
    try:
        with path.open("rb") as f:
            if f.read(4) != _GGUF_MAGIC:
                raise TokenizerUnavailable(f"{path.name} is not a GGUF file")
            version, _tensors, n_kv = struct.unpack("<IQQ", _exactly(f, 20))
            if version not in (2, 3):
                raise TokenizerUnavailable(f"{path.name}: GGUF version {version} is not supported")
            metadata = {}
            for _ in range(_bounded(n_kv)):
                key = _read_string(f)
                (kind,) = struct.unpack("<I", _exactly(f, 4))
                metadata[key] = _read_value(f, kind)
            return metadata
    except OSError as exc:
        raise TokenizerUnavailable(f"cannot read {path.name}: {exc.strerror}") from exc
    except (struct.error, UnicodeDecodeError) as exc:
        raise TokenizerUnavailable(f"{path.name}: unreadable GGUF metadata ({exc})") from exc


def _exactly(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise TokenizerUnavailable("the GGUF file ends inside its metadata")
    return data


def _bounded(n: int) -> int:
    if n > _MAX_ITEMS:
        raise TokenizerUnavailable(f"the GGUF metadata claims {n} items: corrupt")
    return n


def _read_string(f: IO[bytes]) -> str:
    (length,) = struct.unpack("<Q", _exactly(f, 8))
    return _exactly(f, _bounded(length)).decode()


def _read_value(f: IO[bytes], kind: int) -> Any:
    if kind == _STRING:
        return _read_string(f)
    if kind in _SCALARS:
        fmt = "<" + _SCALARS[kind]
        return struct.unpack(fmt, _exactly(f, struct.calcsize(fmt)))[0]
    if kind == _ARRAY:
        item_kind, count = struct.unpack("<IQ", _exactly(f, 12))
        count = _bounded(count)
        if item_kind in _SCALARS:  # one read for a whole array of numbers
            fmt = f"<{count}{_SCALARS[item_kind]}"
            return list(struct.unpack(fmt, _exactly(f, struct.calcsize(fmt))))
        return [_read_value(f, item_kind) for _ in range(count)]
    raise TokenizerUnavailable(f"unknown GGUF metadata type {kind}")


# --- Building the tokenizer -------------------------------------------------------------------

# GGUF token types (llama.cpp): control tokens are special, user-defined ones are added tokens.
_CONTROL, _USER_DEFINED = 3, 4

# The pre-tokenizer splits transformers uses for these `tokenizer.ggml.pre` values (its GGUF
# tokenizer mapping; a test compares the two); other values split as GPT-2 does.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN35_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT4O_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLITS = {
    **dict.fromkeys(
        (
            "llama3",
            "llama-v3",
            "llama-bpe",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
            "jina-v5-nano",
            "dbrx",
            "smaug-bpe",
        ),
        _LLAMA3_SPLIT,
    ),
    "tekken": _TEKKEN_SPLIT,
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"), _QWEN2_SPLIT),
    "qwen35": _QWEN35_SPLIT,
    **dict.fromkeys(("gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"), _GPT4O_SPLIT),
}
_SPECIAL_IDS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
}


@functools.cache
def _byte_alphabet() -> dict[int, str]:
    """GPT-2's printable spelling of each byte, which byte-level vocabularies are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    spelling = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in spelling:
            spelling[b] = chr(256 + extra)
            extra += 1
    return spelling


def _gguf_tokenizer(path: Path) -> tuple[Tokenizer, str | None, dict[str, str]]:
    """The tokenizer, chat template and special tokens a GGUF file's metadata describes."""
    meta = read_gguf_metadata(path)
    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise TokenizerUnavailable(
            f"{path.name} holds a {kind!r} tokenizer, which Burro cannot count with outside "
            "the trainer (byte-level BPE, 'gpt2', only): give the model as a Hugging Face "
            "directory with its tokenizer.json"
        )
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types: list[int] = meta.get("tokenizer.ggml.token_type") or []
    spelling = _byte_alphabet()
    alphabet = set(spelling.values())
    vocab = {
        t if set(t) <= alphabet else "".join(spelling[b] for b in t.encode()): i
        for i, t in enumerate(tokens)
    }
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    split = _SPLITS.get(meta.get("tokenizer.ggml.pre", ""))
    if split is None:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tokenizer.decoder = decoders.ByteLevel()
    special = {
        name: tokens[meta[key]]
        for name, key in _SPECIAL_IDS.items()
        if isinstance(meta.get(key), int) and 0 <= meta[key] < len(tokens)
    }
    # As transformers: control tokens (spelled in the byte alphabet) and the named special
    # tokens match whole in text; so do user-defined ones.
    control = [
        t for t, k in zip(tokens, types, strict=False) if k == _CONTROL and set(t) <= alphabet
    ]
    tokenizer.add_special_tokens(
        [
            AddedToken(t, normalized=False, special=True)
            for t in dict.fromkeys([*special.values(), *control])
        ]
    )
    user = [t for t, k in zip(tokens, types, strict=False) if k == _USER_DEFINED and t in vocab]
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in user])
    return tokenizer, meta.get("tokenizer.chat_template"), special


def _directory_tokenizer(path: Path) -> tuple[Tokenizer, str | None, dict[str, str]]:
    """The tokenizer, chat template and special tokens of a Hugging Face model directory."""
    file = path / "tokenizer.json"
    if not file.is_file():
        raise TokenizerUnavailable(f"{path.name} has no tokenizer.json")
    tokenizer = Tokenizer.from_file(str(file))
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    jinja_file = path / "chat_template.jinja"
    template = jinja_file.read_text() if jinja_file.is_file() else config.get("chat_template")
    special = {}
    for name in _SPECIAL_IDS:
        value = config.get(name)
        if isinstance(value, dict):  # AddedToken's saved form
            value = value.get("content")
        if isinstance(value, str):
            special[name] = value
    return tokenizer, template if isinstance(template, str) else None, special


# --- Rendering --------------------------------------------------------------------------------


class _Generation(jinja2.ext.Extension):
    """`{% generation %}…{% endgeneration %}` renders its body: templates that mark assistant
    turns for transformers' mask still render here."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 declares it a plain set

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Callable[[], str]) -> str:
        return caller()


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # transformers' filter: jinja's own escapes HTML characters, which a chat must not.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().astimezone().strftime(fmt)


def _compile(template: str) -> jinja2.Template:
    """The template in the environment transformers renders chat templates in."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(template)


# --- The counter ------------------------------------------------------------------------------


def _plain(message: StoredMessage) -> Message:
    """A message as the trainer hands it to the template (trainer/data.py `_plain`)."""
    content = message.content
    if isinstance(content, list):
        # Text parts joined; the trainer refuses other parts, which count nothing here.
        content = "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    return message.for_template(content or "")


# What rendering a template may raise on an example: its own `raise_exception`, the sandbox,
# and Python errors from expressions on values the template did not expect.
_TEMPLATE_FAILURES = (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError)


class LocalTokenizer:
    """One local model's tokenizer and chat template, ready to count examples."""

    def __init__(
        self, name: str, tokenizer: Tokenizer, template: str, special: Mapping[str, str]
    ) -> None:
        self.name = name
        self._tokenizer = tokenizer
        try:
            self._template = _compile(template)
        except jinja2.TemplateError as exc:
            raise TokenizerUnavailable(
                f"the chat template of {name} does not compile: {exc}"
            ) from exc
        self._special = dict(special)

    def render(self, messages: list[Message], tools: list[Any] | None = None) -> str:
        """The conversation as the trainer renders it, without a generation prompt."""
        return self._template.render(
            messages=messages,
            tools=tools,
            documents=None,
            add_generation_prompt=False,
            **self._special,
        )

    def count_texts(self, texts: list[str]) -> list[int]:
        """Tokens of each text, special tokens in it matched whole, none added."""
        encodings = self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        return [len(e) for e in encodings]

    def count_lines(self, lines: Sequence[bytes], *, preference: bool) -> list[int | str]:
        """Tokens of each valid JSONL example (chat, or preference when `preference`); for an
        example the chat template refuses to render, the template's error instead."""
        texts: list[str] = []
        per_line: list[int | str] = []
        render = self._renderings_preference if preference else self._rendering
        for line in lines:
            try:
                rendered = render(line)
            except _TEMPLATE_FAILURES as exc:  # templates raise on what they do not support
                per_line.append(str(exc) or type(exc).__name__)
                continue
            texts.extend(rendered)
            per_line.append(len(rendered))
        counts = iter(self.count_texts(texts))
        return [n if isinstance(n, str) else sum(next(counts) for _ in range(n)) for n in per_line]

    def _rendering(self, line: bytes) -> list[str]:
        chat = CHAT_LINE.decode(line)
        return [self.render([_plain(m) for m in chat.messages], chat.tools)]

    def _renderings_preference(self, line: bytes) -> list[str]:
        pref = PREFERENCE_LINE.decode(line)
        prompt = [_plain(m) for m in pref.input.messages]
        return [
            self.render(prompt + [_plain(m) for m in output], pref.input.tools)
            for output in (pref.preferred_output, pref.non_preferred_output)
        ]


def locate_weights(name: str, package: str | None, weights: str | None) -> Path:
    """The GGUF file or model directory `weights` names, inside the Python `package` if set."""
    if weights is None:
        raise TokenizerUnavailable(f"{name} names no `weights` in the model table")
    root = Path()
    if package is not None:
        found = importlib.util.find_spec(package)  # found, never imported
        if found is None or not found.submodule_search_locations:
            raise TokenizerUnavailable(
                f"{name}: the Python package {package!r} that holds its weights is "
                "not installed where the API runs (install Burro with its `trainer` extra, or "
                "that package)"
            )
        root = Path(next(iter(found.submodule_search_locations)))
    path = root / weights
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        return path
    raise TokenizerUnavailable(
        f"{name}: its weights {weights!r} are not a .gguf file or a model directory "
        "here; fix `weights` in the model table"
    )


def get_local_tokenizer(info: ModelInfo) -> LocalTokenizer:
    """`info`'s tokenizer, loaded on first use and kept for the process.

    Raises `TokenizerUnavailable` (saying why) when it cannot be loaded; a failure is not
    kept, so installing the weights later needs no restart.
    """
    return _load(info.name, info.package, info.weights, info.chat_template)


@functools.cache
def _load(
    name: str, package: str | None, weights: str | None, chat_template: str | None
) -> LocalTokenizer:
    path = locate_weights(name, package, weights)
    try:
        if path.is_dir():
            tokenizer, template, special = _directory_tokenizer(path)
        else:
            tokenizer, template, special = _gguf_tokenizer(path)
    except TokenizerUnavailable:
        raise
    except Exception as exc:  # tokenizers raises bare Exception; all of these mean bad files
        raise TokenizerUnavailable(
            f"{name}: cannot build its tokenizer from {path.name}: {exc}"
        ) from exc
    # The trainer pads with the end-of-sequence token when the model names no padding token.
    if "pad_token" not in special and "eos_token" in special:
        special["pad_token"] = special["eos_token"]
    template = chat_template or template
    if not template:
        raise TokenizerUnavailable(
            f"{name} has no chat template: set `chat_template` in the model table"
        )
    return LocalTokenizer(name, tokenizer, template, special)
