"""Dataset checks: stream a JSONL body through, get back its errors, warnings, tokens and price.

The route feeds the body chunk by chunk (from a worker thread) and calls `finish()` at the end.
Each line is decoded once by a typed msgspec decoder (the fast path); only a line that fails it
is decoded again as plain JSON and diagnosed precisely (`_diagnose_chat`, `_diagnose_preference`),
so error messages come from one place. Token counting, the expensive part, runs on a small
shared thread pool (tiktoken releases the GIL) in bounded batches, so memory stays flat
whatever the size of the file.

Token counts are the cookbook's `num_tokens_from_messages`: 3 per message plus the tokens of
every text value of the message (role and name included, as the cookbook encodes each value),
1 more for a name, 3 per example. Extended where the cookbook would crash: content parts count
their text (an image a fixed number, see IMAGE_TOKENS_*), `tool_calls`, `function_call` and the
example's `tools` / `functions` count as their compact JSON, `weight` counts nothing, text that
looks like a special token is ordinary text. A preference (DPO) example counts its
`input.messages` (and `input.tools`) plus both the preferred and the non-preferred output, with
3 per example once: both outputs go through the model in training.

Choices where the SPEC is silent:
- `line_too_long`: a line over `max_line_bytes` (by default derived from the model table, see
  `service.datasets.line_bound`) is reported without being buffered or parsed; the rest of the
  stream is still checked. Long texts are tokenized in pieces (`_count_tokens`), so counting
  one never holds more than a small list of tokens.
- Unknown top-level keys are an error (`data_type`): OpenAI's fine-tuning file validation
  refuses them, and catching it here saves a job that would fail upstream.
- A key that exists in the chat format but not on that role (`weight`, `tool_calls`,
  `function_call` or `refusal` off an assistant message, `tool_call_id` off a tool message)
  is `message_unrecognized_key`; a `weight` other than 0 or 1 is `data_type`.
- Image parts are accepted in user messages only (as OpenAI's vision fine-tuning); elsewhere
  they are `data_type`.
- `examples` counts the non-blank lines; `too_few_examples` compares that count with 10.
  Token statistics cover the valid examples; estimates are given only for a valid file.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import hashlib
import math
import os
import threading
from array import array
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, TypeAlias

import msgspec
import tiktoken
from msgspec import UNSET, UnsetType

from service.datasets.line_bound import longest_useful_line
from service.datasets.local_tokens import LocalTokenizer, TokenizerUnavailable, get_local_tokenizer
from service.datasets.tokens import get_encoding
from service.models import ModelInfo, ModelTable

__all__ = [
    "MIN_EXAMPLES",
    "DatasetCheck",
    "DatasetReport",
    "DatasetWarning",
    "Estimate",
    "LineError",
    "TokenCounts",
    "TokenStats",
    "UnknownModel",
    "default_epochs",
    "estimate",
]

Kind: TypeAlias = Literal["chat", "preference"]

MIN_EXAMPLES = 10
MAX_WARNING_LINES = 100
NOTICE_DAYS = 90

# The cookbook's epoch rule ("Data preparation and analysis for chat model fine-tuning").
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

# The cookbook's counting: 3 tokens of framing per message, 1 more for a name, 3 per example.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_EXAMPLE = 3
# Images are never downloaded, so their size is unknown: a low-detail image costs a fixed 85
# tokens; a high or auto one is counted as a 1024x1024 image (85 + 4 tiles x 170 = 765).
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MESSAGE_KEYS = (
    "role",
    "content",
    "name",
    "weight",
    "tool_calls",
    "tool_call_id",
    "function_call",
    "refusal",
)
CHAT_KEYS = ("messages", "tools", "functions", "parallel_tool_calls")
PREFERENCE_KEYS = ("input", "preferred_output", "non_preferred_output")
PREFERENCE_INPUT_KEYS = ("messages", "tools", "functions", "parallel_tool_calls")
_ASSISTANT_ONLY = ("weight", "tool_calls", "function_call", "refusal")

_BOM = b"\xef\xbb\xbf"
TOO_DEEP_MESSAGE = "the line nests arrays or objects too deep to read (over about 1,000 levels)"
_BATCH_CHARS = 1 << 20  # text per tokenization batch
_ROLE_LIST = ", ".join(ROLES)


# --- The wire report -------------------------------------------------------------------------


class TokenStats(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts of the valid examples (zeros when there are none)."""

    total: int = 0
    min: int = 0
    max: int = 0
    mean: float = 0.0
    p50: int = 0
    p95: int = 0


class DatasetWarning(msgspec.Struct, frozen=True, kw_only=True):
    """Something that does not stop training but that the caller should know."""

    code: str
    count: int
    lines: list[int]
    message: str


class LineError(msgspec.Struct, frozen=True, kw_only=True):
    """The first problem found on one line (line 0: the file as a whole)."""

    line: int
    code: str
    message: str


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    """What training on the dataset would cost with one model."""

    model: str
    n_epochs: int
    billing_tokens: int
    trained_tokens: int
    cost_usd: float
    examples_over_limit: int
    # Local models: how long one trainer takes for `trained_tokens`, from the model table's
    # `trainer_tokens_per_second` (None for hosted models, or a local one without that figure).
    duration_seconds: int | None = None
    retired: bool = False
    shutdown: str | None = None  # ISO date: the base model retires, fine-tuned ones stop serving
    training_ends: str | None = None  # ISO date: no new fine-tuning job from this day on
    notice: str | None = None


class DatasetReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the checks found; field names as in the SPEC's Dataset."""

    kind: Kind
    bytes: int
    sha256: str
    examples: int
    tokens: TokenStats
    warnings: list[DatasetWarning]
    estimates: list[Estimate]
    errors: list[LineError]
    error_counts: dict[str, int]
    valid: bool


class TokenCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts of a dataset's valid examples in one encoding, as a histogram.

    Enough to price any model on that encoding with any number of epochs, and small: its size
    grows with the number of distinct lengths, not with the number of examples.
    """

    encoding: str  # a tiktoken encoding, or `local:MODEL` (`ModelInfo.counter`)
    histogram: dict[int, int]  # tokens per example -> number of examples

    @property
    def examples(self) -> int:
        return sum(self.histogram.values())


class UnknownModel(ValueError):
    """A model asked for is not in the model table."""


# --- Estimates --------------------------------------------------------------------------------


def default_epochs(n_examples: int) -> int:
    """Epochs OpenAI picks when the job does not set them (the cookbook's rule)."""
    if n_examples <= 0:
        raise ValueError("a dataset without examples has no epochs")
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def training_seconds(model: ModelInfo, trained_tokens: int) -> int | None:
    """How long one trainer takes to train `trained_tokens` of local `model` (None: unknown)."""
    if not model.is_local or model.trainer_tokens_per_second is None:
        return None
    return math.ceil(trained_tokens / model.trainer_tokens_per_second)


def training_cost(model: ModelInfo, trained_tokens: int, *, trainer_usd_per_hour: float) -> float:
    """What training `trained_tokens` of `model` costs, in dollars rounded to cents.

    Hosted models: the tokens at the model's training price. Local models: that (0 in the
    shipped table) plus their estimated duration at `trainer_usd_per_hour`.
    """
    usd = decimal.Decimal(trained_tokens) * decimal.Decimal(str(model.training_usd_per_1m_tokens))
    usd /= 1_000_000
    seconds = training_seconds(model, trained_tokens)
    if seconds is not None:
        usd += decimal.Decimal(seconds) * decimal.Decimal(str(trainer_usd_per_hour)) / 3600
    return float(usd.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP))


def _notice(model: ModelInfo, today: datetime.date) -> tuple[bool, str | None]:
    """Whether `model` is retired on `today`, and what the caller should be told about it."""
    notes = []
    retired = model.shutdown is not None and model.shutdown <= today
    if model.shutdown is not None and retired:
        notes.append(f"{model.name} retired on {model.shutdown.isoformat()}: no fine-tuning")
    else:
        if model.training_ends is not None:
            days = (model.training_ends - today).days
            if days <= 0:
                notes.append(f"new fine-tuning jobs closed on {model.training_ends.isoformat()}")
            elif days <= NOTICE_DAYS:
                notes.append(
                    f"new fine-tuning jobs close on {model.training_ends.isoformat()} "
                    f"(in {days} days)"
                )
        if model.shutdown is not None and (model.shutdown - today).days <= NOTICE_DAYS:
            days = (model.shutdown - today).days
            notes.append(
                f"{model.name} retires on {model.shutdown.isoformat()} (in {days} days): "
                "its fine-tuned models stop serving then"
            )
    return retired, "; ".join(notes) or None


def estimate(
    source: DatasetReport | TokenCounts,
    model: ModelInfo,
    *,
    today: datetime.date,
    n_epochs: int | None = None,
    trainer_usd_per_hour: float = 0.0,
) -> Estimate:
    """Price training `model` on a dataset, with `n_epochs` or else OpenAI's default.

    `source` is either the dataset's report (which must hold an estimate for `model`, as the
    default report does for every model not retired) or its `TokenCounts` in the model's
    encoding. Local models are priced by trainer time (see `training_cost`).
    """
    if isinstance(source, DatasetReport):
        known = next((e for e in source.estimates if e.model == model.name), None)
        if known is None:
            raise KeyError(f"the report has no estimate for {model.name}")
        examples, billing, over = source.examples, known.billing_tokens, known.examples_over_limit
    else:
        if source.encoding != model.counter:
            raise ValueError(f"{model.name} counts with {model.counter}, not {source.encoding}")
        limit = model.max_tokens_per_example
        examples = source.examples
        billing = sum(min(limit, t) * n for t, n in source.histogram.items())
        over = sum(n for t, n in source.histogram.items() if t > limit)
    epochs = n_epochs if n_epochs is not None else default_epochs(examples)
    trained = billing * epochs
    retired, notice = _notice(model, today)
    return Estimate(
        model=model.name,
        n_epochs=epochs,
        billing_tokens=billing,
        trained_tokens=trained,
        cost_usd=training_cost(model, trained, trainer_usd_per_hour=trainer_usd_per_hour),
        examples_over_limit=over,
        duration_seconds=training_seconds(model, trained),
        retired=retired,
        shutdown=model.shutdown.isoformat() if model.shutdown else None,
        training_ends=model.training_ends.isoformat() if model.training_ends else None,
        notice=notice,
    )


# --- The typed fast path ----------------------------------------------------------------------


class _FunctionCall(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    arguments: str


class _ToolCall(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    type: Literal["function"]
    function: _FunctionCall


class _FunctionDef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class _Tool(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["function"]
    function: _FunctionDef


class _TextPart(msgspec.Struct, tag_field="type", tag="text", forbid_unknown_fields=True):
    text: str


class _ImageUrl(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class _ImagePart(msgspec.Struct, tag_field="type", tag="image_url", forbid_unknown_fields=True):
    image_url: _ImageUrl


_Content: TypeAlias = str | list[_TextPart | _ImagePart] | None
_Role: TypeAlias = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Message(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    role: _Role
    content: _Content | UnsetType = UNSET
    name: str | UnsetType = UNSET
    weight: Literal[0, 1] | UnsetType = UNSET
    tool_calls: list[_ToolCall] | UnsetType = UNSET
    tool_call_id: str | UnsetType = UNSET
    function_call: _FunctionCall | UnsetType = UNSET
    refusal: str | UnsetType | None = UNSET


_Tools: TypeAlias = list[_Tool] | UnsetType
_Functions: TypeAlias = list[_FunctionDef] | UnsetType


class _ChatExample(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    messages: list[_Message]
    tools: _Tools = UNSET
    functions: _Functions = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET


class _PreferenceExample(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    input: _ChatExample
    preferred_output: list[_Message]
    non_preferred_output: list[_Message]


_CHAT_DECODER = msgspec.json.Decoder(_ChatExample)
_PREFERENCE_DECODER = msgspec.json.Decoder(_PreferenceExample)
_ANY_DECODER = msgspec.json.Decoder()
# What `_parse_any` answers for a line that is not JSON: never None, which is JSON's null.
_NOT_JSON = object()
_ENCODER = msgspec.json.Encoder()

_Problem: TypeAlias = tuple[str, str]  # (code, message)


def _message_problem(m: _Message, where: str) -> _Problem | None:
    """What is wrong with a well-typed message, beyond its types: the one place for these rules."""
    role = m.role
    if role != "assistant":
        for key in _ASSISTANT_ONLY:
            if getattr(m, key) is not UNSET:
                return (
                    "message_unrecognized_key",
                    f"{where} (role {role!r}) has {key!r}, which only assistant messages take",
                )
    if role != "tool" and m.tool_call_id is not UNSET:
        return (
            "message_unrecognized_key",
            f"{where} (role {role!r}) has 'tool_call_id', which only tool messages take",
        )
    calls = (m.tool_calls is not UNSET and len(m.tool_calls) > 0) or m.function_call is not UNSET
    if m.content is UNSET and not (role == "assistant" and calls):
        return "message_missing_key", f"{where} has no 'content'"
    if role == "tool" and m.tool_call_id is UNSET:
        return "message_missing_key", f"{where} (role 'tool') has no 'tool_call_id'"
    if role == "function" and m.name is UNSET:
        return "message_missing_key", f"{where} (role 'function') has no 'name'"
    content = m.content
    if isinstance(content, list) and role != "user" and any(type(p) is _ImagePart for p in content):
        return "data_type", f"{where} (role {role!r}) has an image; only user messages may"
    refused = role == "assistant" and isinstance(m.refusal, str) and m.refusal != ""
    if not content and not calls and not refused:
        return "missing_content", f"{where} (role {role!r}) has no content"
    return None


def _messages_problem(messages: list[_Message], where: str) -> _Problem | None:
    for i, m in enumerate(messages, 1):
        problem = _message_problem(m, f"{where}message {i}")
        if problem is not None:
            return problem
    return None


def _chat_problem(ex: _ChatExample) -> _Problem | None:
    if not ex.messages:
        return "missing_messages_list", "'messages' is empty"
    problem = _messages_problem(ex.messages, "")
    if problem is not None:
        return problem
    if not any(m.role == "assistant" for m in ex.messages):
        return "example_missing_assistant_message", "no message has role 'assistant'"
    return None


def _output_problem(output: list[_Message], field: str) -> _Problem | None:
    if len(output) != 1 or output[0].role != "assistant":
        return "invalid_preference_field", f"{field!r} must hold exactly one assistant message"
    problem = _message_problem(output[0], f"{field} message 1")
    if problem is not None:
        return "invalid_preference_field", problem[1]
    return None


def _preference_problem(ex: _PreferenceExample) -> _Problem | None:
    if not ex.input.messages:
        return "missing_messages_list", "'input.messages' is empty"
    return (
        _messages_problem(ex.input.messages, "input ")
        or _output_problem(ex.preferred_output, "preferred_output")
        or _output_problem(ex.non_preferred_output, "non_preferred_output")
    )


# --- The precise slow path --------------------------------------------------------------------


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _convert_problem(
    value: object, type_: Any, where: str, code: str
) -> tuple[Any, _Problem | None]:
    try:
        return msgspec.convert(value, type_), None
    except msgspec.ValidationError as e:
        detail = str(e).replace(" - at `$`", "").replace("`$.", "`")
        return None, (code, f"{where}: {detail}")


def _diagnose_message(m: object, where: str) -> tuple[_Message | None, _Problem | None]:
    if not isinstance(m, dict):
        return None, ("data_type", f"{where} is {_json_type(m)}, expected an object")
    if "role" not in m:
        return None, ("message_missing_key", f"{where} has no 'role'")
    # The cookbook's order: a missing key before an unrecognized key or role.
    calls = m.get("tool_calls") or m.get("function_call")
    if "content" not in m and not (m["role"] == "assistant" and calls):
        return None, ("message_missing_key", f"{where} has no 'content'")
    unknown = [k for k in m if k not in MESSAGE_KEYS]
    if unknown:
        return None, (
            "message_unrecognized_key",
            f"{where} has unrecognized key {unknown[0]!r}; expected some of "
            + ", ".join(MESSAGE_KEYS),
        )
    role = m["role"]
    if not isinstance(role, str):
        return None, ("data_type", f"{where} has role {_json_type(role)}, expected a string")
    if role not in ROLES:
        return None, (
            "unrecognized_role",
            f"{where} has role {role!r}; expected one of {_ROLE_LIST}",
        )
    msg, problem = _convert_problem(m, _Message, where, "data_type")
    if problem is not None:
        return None, problem
    return msg, _message_problem(msg, where)


def _diagnose_messages(messages: object, where: str) -> _Problem | None:
    if messages is None or messages == []:
        return "missing_messages_list", f"'{where}messages' is missing or empty"
    if not isinstance(messages, list):
        return "data_type", f"'{where}messages' is {_json_type(messages)}, expected an array"
    has_assistant = False
    for i, m in enumerate(messages, 1):
        msg, problem = _diagnose_message(m, f"{where}message {i}")
        if problem is not None:
            return problem
        has_assistant = has_assistant or (msg is not None and msg.role == "assistant")
    if not has_assistant and not where:
        return "example_missing_assistant_message", "no message has role 'assistant'"
    return None


def _diagnose_extras(obj: dict[str, Any], where: str, code: str) -> _Problem | None:
    for key, type_ in (("tools", _Tools), ("functions", _Functions)):
        if key in obj:
            _, problem = _convert_problem(obj[key], type_, where + key, code)
            if problem is not None:
                return problem
    if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
        return code, f"'{where}parallel_tool_calls' must be true or false"
    return None


def _diagnose_chat(obj: object) -> _Problem:
    """The first problem of a chat line that the fast path refused."""
    if not isinstance(obj, dict):
        return "data_type", f"the line is {_json_type(obj)}, expected an object"
    problem = _diagnose_messages(obj.get("messages"), "")
    if problem is not None:
        return problem
    unknown = [k for k in obj if k not in CHAT_KEYS]
    if unknown:
        return (
            "data_type",
            f"unrecognized top-level key {unknown[0]!r}; expected some of {', '.join(CHAT_KEYS)}",
        )
    problem = _diagnose_extras(obj, "", "data_type")
    if problem is not None:
        return problem
    return _fallback(obj, _ChatExample, _chat_problem)


def _diagnose_output(value: object, field: str) -> _Problem | None:
    if not isinstance(value, list) or len(value) != 1:
        return "invalid_preference_field", f"{field!r} must be an array of one assistant message"
    msg, problem = _diagnose_message(value[0], f"{field} message 1")
    if problem is not None:
        return "invalid_preference_field", problem[1]
    if msg is not None and msg.role != "assistant":
        return "invalid_preference_field", f"{field!r} holds a {msg.role!r} message, not assistant"
    return None


def _diagnose_preference(obj: object) -> _Problem:
    """The first problem of a preference line that the fast path refused."""
    if not isinstance(obj, dict):
        return "data_type", f"the line is {_json_type(obj)}, expected an object"
    for key in PREFERENCE_KEYS:
        if key not in obj:
            return "missing_preference_field", f"no {key!r}"
    unknown = [k for k in obj if k not in PREFERENCE_KEYS]
    if unknown:
        return (
            "data_type",
            f"unrecognized top-level key {unknown[0]!r}; expected {', '.join(PREFERENCE_KEYS)}",
        )
    input_ = obj["input"]
    if not isinstance(input_, dict):
        return "invalid_preference_field", f"'input' is {_json_type(input_)}, expected an object"
    unknown = [k for k in input_ if k not in PREFERENCE_INPUT_KEYS]
    if unknown:
        return "invalid_preference_field", f"'input' has unrecognized key {unknown[0]!r}"
    problem = (
        _diagnose_messages(input_.get("messages"), "input ")
        or _diagnose_extras(input_, "input.", "invalid_preference_field")
        or _diagnose_output(obj["preferred_output"], "preferred_output")
        or _diagnose_output(obj["non_preferred_output"], "non_preferred_output")
    )
    if problem is not None:
        return problem
    return _fallback(obj, _PreferenceExample, _preference_problem)


def _fallback(obj: dict[str, Any], type_: Any, check: Any) -> _Problem:
    # Reached only if the diagnosis above missed what the typed decoder refused: still report
    # the line, with msgspec's own words, rather than let it pass.
    ex, problem = _convert_problem(obj, type_, "the line", "data_type")
    if problem is not None:
        return problem
    found: _Problem | None = check(ex)
    return found or ("data_type", "the line does not match the expected format")


# --- Counting ---------------------------------------------------------------------------------


def _count_batch(
    encoding: tiktoken.Encoding, texts: list[str], spans: array[int], base: array[int]
) -> array[int]:
    """Tokens of each example of a batch: its fixed part plus the tokens of its texts."""
    encode = encoding.encode_ordinary
    out = array("I")
    i = 0
    for n, total in zip(spans, base, strict=True):
        for s in texts[i : i + n]:
            total += len(encode(s)) if len(s) <= _PIECE_CHARS else _count_tokens(encode, s)
        i += n
        out.append(total)
    return out


# Texts longer than this are tokenized piece by piece: a list of a million token ids costs tens
# of MB, and tiktoken's merge slows down more than linearly on one long run without spaces.
_PIECE_CHARS = 1 << 16


def _count_tokens(encode: Any, text: str) -> int:
    """The tokens of a long `text`, counted in pieces of at most `_PIECE_CHARS` characters.

    A piece ends before a single space between two non-space characters: both vocabularies'
    pre-tokenizers always split there, so the sum is exact. A run with no such space for a
    whole piece (a long word, text without spaces) is cut where it must; the count may then
    be off by a token or two at each cut, which only such text pays.
    """
    total = 0
    start = 0
    end_of_text = len(text)
    while end_of_text - start > _PIECE_CHARS:
        end = start + _PIECE_CHARS
        cut = text.rfind(" ", start + _PIECE_CHARS // 2, end)
        while cut > start and (text[cut - 1].isspace() or text[cut + 1].isspace()):
            cut = text.rfind(" ", start + _PIECE_CHARS // 2, cut)
        if cut <= start:
            cut = end
        total += len(encode(text[start:cut]))
        start = cut
    return total + len(encode(text[start:]))


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One pool for the process: concurrent checks share the cores instead of fighting."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="burro-tokens")
        return _pool


class _Tally:
    """Running token statistics of one encoding."""

    def __init__(self, encoding: str, warn_limit: int | None) -> None:
        self.encoding = encoding
        self.histogram: dict[int, int] = {}
        self.warn_limit = warn_limit
        self.too_long = 0
        self.too_long_lines: list[int] = []
        self.refused = _Flag()  # examples a local model's chat template would not render
        self.refusal: str | None = None  # the template's words on the first of them

    def add(self, counts: Iterable[int | str], lines: Iterable[int]) -> None:
        hist = self.histogram
        limit = self.warn_limit
        for t, line in zip(counts, lines, strict=True):
            if isinstance(t, str):
                self.refused.add(line)
                self.refusal = self.refusal or t
                continue
            hist[t] = hist.get(t, 0) + 1
            if limit is not None and t > limit:
                self.too_long += 1
                if len(self.too_long_lines) < MAX_WARNING_LINES:
                    self.too_long_lines.append(line)

    def stats(self) -> TokenStats:
        n = sum(self.histogram.values())
        if n == 0:
            return TokenStats()
        total = sum(t * c for t, c in self.histogram.items())
        ordered = sorted(self.histogram.items())

        def percentile(p: int) -> int:
            # nearest rank: the smallest count with at least p% of examples at or below it
            rank = max(1, -(-p * n // 100))
            seen = 0
            for t, c in ordered:
                seen += c
                if seen >= rank:
                    return t
            return ordered[-1][0]

        return TokenStats(
            total=total,
            min=ordered[0][0],
            max=ordered[-1][0],
            mean=round(total / n, 1),
            p50=percentile(50),
            p95=percentile(95),
        )


class _Flag:
    """Lines that raise one warning: how many, and the first ones."""

    def __init__(self) -> None:
        self.count = 0
        self.lines: list[int] = []

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < MAX_WARNING_LINES:
            self.lines.append(line)


def _chosen_models(
    models: ModelTable, names: Sequence[str] | None, today: datetime.date
) -> list[ModelInfo]:
    """The models named (`UnknownModel` for one not in the table), or every one still open."""
    if names is None:
        return [
            m
            for m in models
            if not models.is_retired(m.name, today) and not models.training_closed(m.name, today)
        ]
    chosen: list[ModelInfo] = []
    for name in names:
        info = models.get(name)
        if info is None:
            raise UnknownModel(f"unknown model {name!r}")
        if info not in chosen:
            chosen.append(info)
    return chosen


class DatasetCheck:
    """Check one dataset as it streams in: `feed()` each chunk, then `finish()` once.

    Not thread-safe: feed it from one thread at a time. `feed` blocks only when token
    counting falls behind by more than a few batches, which bounds memory.
    """

    def __init__(
        self,
        *,
        kind: Kind | None,
        models: ModelTable,
        estimate_models: Sequence[str] | None = None,
        today: datetime.date,
        max_errors: int = 100,
        max_line_bytes: int | None = None,
        trainer_usd_per_hour: float = 0.0,
    ) -> None:
        """Raises `UnknownModel` when `estimate_models` names a model not in `models`, and
        `TokenizerUnavailable` when it names a local model whose tokenizer cannot be loaded.

        `estimate_models=None` prices every model of the table that is neither retired nor
        closed for training on `today`, but for local models whose tokenizer cannot be loaded
        here (a warning says so); an explicit list may name those too (flagged). Loading a local
        tokenizer the first time reads its model's files: build this off the event loop.
        """
        self._kind: Kind | None = kind
        self._today = today
        self._max_errors = max_errors
        self._max_line_bytes = max_line_bytes or longest_useful_line(models)
        chosen = _chosen_models(models, estimate_models, today)
        self._trainer_usd_per_hour = trainer_usd_per_hour
        self._unavailable: list[str] = []  # why local models were left out of the estimates
        local: dict[str, LocalTokenizer] = {}
        for info in [m for m in chosen if m.is_local]:
            try:
                local[info.counter] = get_local_tokenizer(info)
            except TokenizerUnavailable as exc:
                if estimate_models is not None:
                    raise
                chosen.remove(info)
                self._unavailable.append(str(exc))
        self._estimate_models = chosen
        primary = chosen[0].counter if estimate_models else "o200k_base"
        names = [primary] + [m.counter for m in chosen if m.counter != primary]
        self._counter_names = list(dict.fromkeys(names))
        self._counters = [local.get(n) or get_encoding(n) for n in self._counter_names]
        # Roles are counted as their tokens, as the cookbook does (every value of a message).
        # Local models count whole renderings and need none of this (zeros when only they count).
        self._role_tokens = [
            {r: len(c.encode_ordinary(r)) for r in ROLES}
            for c in self._counters
            if isinstance(c, tiktoken.Encoding)
        ] or [dict.fromkeys(ROLES, 0)]
        # Every role is one token in both vocabularies, so one fixed part serves all encodings.
        if any(t != self._role_tokens[0] for t in self._role_tokens):
            raise RuntimeError("role strings count differently across encodings")
        # Local models render each example from its line, in the counting threads.
        self._keep_lines = bool(local)
        self._raw: list[bytes] = []
        # example_too_long: against the smallest per-example limit among the priced models.
        self._warn_model = min(chosen, key=lambda m: m.max_tokens_per_example, default=None)
        self._tallies = [
            _Tally(
                n,
                self._warn_model.max_tokens_per_example
                if self._warn_model is not None and self._warn_model.counter == n
                else None,
            )
            for n in self._counter_names
        ]

        self._sha = hashlib.sha256()
        self._bytes = 0
        self._tail = bytearray()
        self._skipping = False  # inside a line over max_line_bytes, already reported
        self._line = 1  # number of the line being assembled
        self._examples = 0
        self._errors: list[LineError] = []
        self._error_counts: collections.Counter[str] = collections.Counter()
        self._seen: set[int] = set()
        self._duplicates = _Flag()
        self._no_system = _Flag()
        self._no_user = _Flag()

        self._texts: list[str] = []
        self._chars = 0
        self._spans = array("I")
        self._base = array("I")
        self._lines = array("I")
        self._pending: collections.deque[tuple[int, array[int], Future[Sequence[int | str]]]]
        self._pending = collections.deque()
        self._max_pending = 2 * (os.cpu_count() or 2)
        self._finished = False

    # -- streaming --

    def feed(self, chunk: bytes) -> None:
        """Check the next piece of the body; lines may span chunks."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if not chunk:
            return
        self._sha.update(chunk)
        self._bytes += len(chunk)
        start = 0
        if self._skipping or self._tail:
            nl = chunk.find(b"\n")
            if nl < 0:
                if not self._skipping:
                    self._tail += chunk
                    if len(self._tail) > self._max_line_bytes:
                        self._start_skipping()
                return
            if self._skipping:
                self._skipping = False
                self._line += 1
            else:
                self._tail += chunk[:nl]
                line = bytes(self._tail)
                self._tail.clear()
                self._line_done(line)
            start = nl + 1
        find = chunk.find
        while (nl := find(b"\n", start)) >= 0:
            self._line_done(chunk[start:nl])
            start = nl + 1
        rest = len(chunk) - start
        if rest > self._max_line_bytes:
            self._start_skipping()
        elif rest:
            self._tail += chunk[start:]

    def finish(self) -> DatasetReport:
        """The report on everything fed so far; call once, after the last chunk."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        if self._skipping:
            self._skipping = False
        elif self._tail:
            line = bytes(self._tail)
            self._tail.clear()
            self._line_done(line)
        self._finished = True
        self._flush()
        while self._pending:
            self._collect()
        return self._report()

    # -- lines --

    def _start_skipping(self) -> None:
        self._tail.clear()
        self._skipping = True
        self._examples += 1
        self._error(
            "line_too_long",
            f"the line is longer than {self._max_line_bytes} bytes, more than any model's "
            "per-example limit can hold; it was not read",
        )

    def _error(self, code: str, message: str) -> None:
        self._error_counts[code] += 1
        if len(self._errors) < self._max_errors:
            self._errors.append(LineError(line=self._line, code=code, message=message))

    def _line_done(self, line: bytes) -> None:
        try:
            self._check_line(line)
        except RecursionError:
            self._error("invalid_json", TOO_DEEP_MESSAGE)
        finally:
            self._line += 1

    def _check_line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if self._line == 1 and line.startswith(_BOM):
            line = line[3:]
        if not line or line.isspace():
            return
        self._examples += 1
        if len(line) > self._max_line_bytes:
            self._error(
                "line_too_long",
                f"the line is longer than {self._max_line_bytes} bytes, more than any model's "
                "per-example limit can hold; it was not read",
            )
            return
        if self._kind is None:
            obj = self._parse_any(line)
            if obj is _NOT_JSON:
                return
            if not isinstance(obj, dict):
                self._error("data_type", f"the line is {_json_type(obj)}, expected an object")
                return
            self._kind = "preference" if "input" in obj and "preferred_output" in obj else "chat"
        if self._kind == "chat":
            try:
                chat = _CHAT_DECODER.decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError):
                self._slow(line)
                return
            problem = _chat_problem(chat)
            if problem is not None:
                self._error(*problem)
                return
            self._accept(line, chat.messages, chat.tools, chat.functions, chat.messages)
        else:
            try:
                pref = _PREFERENCE_DECODER.decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError):
                self._slow(line)
                return
            problem = _preference_problem(pref)
            if problem is not None:
                self._error(*problem)
                return
            messages = pref.input.messages + pref.preferred_output + pref.non_preferred_output
            self._accept(
                line, messages, pref.input.tools, pref.input.functions, pref.input.messages
            )

    def _parse_any(self, line: bytes) -> Any:
        """The line as plain JSON, or `_NOT_JSON` after reporting why it is not JSON."""
        try:
            return _ANY_DECODER.decode(line)
        except UnicodeDecodeError as e:
            self._error("invalid_utf8", f"the line is not valid UTF-8 (byte {e.start + 1})")
        except msgspec.DecodeError as e:
            try:
                line.decode()
            except UnicodeDecodeError as u:
                self._error("invalid_utf8", f"the line is not valid UTF-8 (byte {u.start + 1})")
            else:
                self._error("invalid_json", f"the line is not valid JSON: {e}")
        return _NOT_JSON

    def _slow(self, line: bytes) -> None:
        obj = self._parse_any(line)
        if obj is _NOT_JSON:
            return
        diagnose = _diagnose_chat if self._kind == "chat" else _diagnose_preference
        self._error(*diagnose(obj))

    # -- valid examples --

    def _accept(
        self,
        line_bytes: bytes,
        messages: list[_Message],
        tools: _Tools,
        functions: _Functions,
        prompt: list[_Message],
    ) -> None:
        self._flag(line_bytes, prompt)
        line = self._line

        texts = self._texts
        append = texts.append
        n_texts = len(texts)
        chars = 0
        fixed = TOKENS_PER_EXAMPLE + TOKENS_PER_MESSAGE * len(messages)
        role_tokens = self._role_tokens[0]
        for m in messages:
            fixed += role_tokens[m.role]
            content = m.content
            if content.__class__ is str:
                append(content)
                chars += len(content)
            elif isinstance(content, list):
                for part in content:
                    if type(part) is _TextPart:
                        append(part.text)
                        chars += len(part.text)
                    elif type(part) is _ImagePart:
                        low = part.image_url.detail == "low"
                        fixed += IMAGE_TOKENS_LOW if low else IMAGE_TOKENS_HIGH
            if m.name is not UNSET:
                append(m.name)
                fixed += TOKENS_PER_NAME
            if m.tool_calls is not UNSET:
                append(_ENCODER.encode(m.tool_calls).decode())
            if m.function_call is not UNSET:
                append(_ENCODER.encode(m.function_call).decode())
            if m.tool_call_id is not UNSET:
                append(m.tool_call_id)
            if m.refusal.__class__ is str:
                append(m.refusal)
        if tools is not UNSET:
            append(_ENCODER.encode(tools).decode())
        if functions is not UNSET:
            append(_ENCODER.encode(functions).decode())
        self._base.append(fixed)
        self._spans.append(len(texts) - n_texts)
        self._lines.append(line)
        self._chars += chars + 64 * (len(texts) - n_texts)
        if self._chars >= _BATCH_CHARS:
            self._flush()

    def _flag(self, line_bytes: bytes, prompt: list[_Message]) -> None:
        """Note what the warnings need of a valid example (and keep it for local counting)."""
        line = self._line
        # Duplicates are byte-identical lines. hash() is 64 bits, salted per process: a false
        # duplicate is as likely as a hardware fault, and it is only a warning.
        digest = hash(line_bytes)
        if digest in self._seen:
            self._duplicates.add(line)
        else:
            self._seen.add(digest)
        roles = {m.role for m in prompt}
        if "system" not in roles and "developer" not in roles:
            self._no_system.add(line)
        if "user" not in roles:
            self._no_user.add(line)
        if self._keep_lines:
            self._raw.append(line_bytes)

    def _flush(self) -> None:
        if not self._lines:
            return
        texts, spans, lines, raw = self._texts, self._spans, self._lines, self._raw
        preference = self._kind == "preference"
        for k, counter in enumerate(self._counters):
            while len(self._pending) >= self._max_pending:
                self._collect()
            future: Future[Sequence[int | str]]
            if isinstance(counter, LocalTokenizer):
                future = _executor().submit(counter.count_lines, raw, preference=preference)
            else:
                future = _executor().submit(_count_batch, counter, texts, spans, self._base)
            self._pending.append((k, lines, future))
        self._texts, self._chars, self._spans, self._lines = [], 0, array("I"), array("I")
        self._base, self._raw = array("I"), []

    def _collect(self) -> None:
        k, lines, future = self._pending.popleft()
        self._tallies[k].add(future.result(), lines)

    # -- the report --

    def _report(self) -> DatasetReport:
        kind: Kind = self._kind or "chat"
        file_errors = []
        if self._examples == 0:
            file_errors.append(
                LineError(line=0, code="empty_file", message="the file has no examples")
            )
        elif self._examples < MIN_EXAMPLES:
            file_errors.append(
                LineError(
                    line=0,
                    code="too_few_examples",
                    message=f"the file has {self._examples} examples; "
                    f"fine-tuning needs at least {MIN_EXAMPLES}",
                )
            )
        error_counts = dict(self._error_counts)
        for e in file_errors:
            error_counts[e.code] = error_counts.get(e.code, 0) + 1
        errors = (file_errors + self._errors)[: self._max_errors]
        valid = not error_counts

        estimates = []
        if valid:
            counts = self.token_counts
            for model in self._estimate_models:
                estimates.append(
                    estimate(
                        counts[model.counter],
                        model,
                        today=self._today,
                        trainer_usd_per_hour=self._trainer_usd_per_hour,
                    )
                )
        return DatasetReport(
            kind=kind,
            bytes=self._bytes,
            sha256=self._sha.hexdigest(),
            examples=self._examples,
            tokens=self._tallies[0].stats(),
            warnings=self._warnings(),
            estimates=estimates,
            errors=errors,
            error_counts=dict(sorted(error_counts.items())),
            valid=valid,
        )

    @property
    def token_counts(self) -> dict[str, TokenCounts]:
        """Per encoding, the token counts of the valid examples (complete after `finish()`)."""
        return {
            t.encoding: TokenCounts(
                encoding=t.encoding, histogram=dict(sorted(t.histogram.items()))
            )
            for t in self._tallies
        }

    def _warnings(self) -> list[DatasetWarning]:
        warnings = []
        model = self._warn_model
        tally = next((t for t in self._tallies if t.warn_limit is not None), None)
        if model is not None and tally is not None and tally.too_long:
            warnings.append(
                DatasetWarning(
                    code="example_too_long",
                    count=tally.too_long,
                    lines=tally.too_long_lines,
                    message=f"{tally.too_long} examples are longer than "
                    f"{model.max_tokens_per_example} tokens, the per-example limit of "
                    f"{model.name}; training cuts them there (see examples_over_limit "
                    "for each model)",
                )
            )
        for tally in self._tallies:
            if tally.refused.count:
                name = tally.encoding.removeprefix("local:")
                warnings.append(
                    DatasetWarning(
                        code="chat_template_error",
                        count=tally.refused.count,
                        lines=tally.refused.lines,
                        message=f"{tally.refused.count} examples cannot be rendered with the chat "
                        f"template of {name} ({tally.refusal}); training {name} on them fails, "
                        "and they are not counted in its estimate",
                    )
                )
        for reason in self._unavailable:
            warnings.append(
                DatasetWarning(
                    code="tokenizer_unavailable",
                    count=0,
                    lines=[],
                    message=f"no estimate: {reason}",
                )
            )
        for code, flag, message in (
            ("missing_system_message", self._no_system, "have no system or developer message"),
            ("missing_user_message", self._no_user, "have no user message"),
            ("duplicate_example", self._duplicates, "repeat an earlier example exactly"),
        ):
            if flag.count:
                warnings.append(
                    DatasetWarning(
                        code=code,
                        count=flag.count,
                        lines=flag.lines,
                        message=f"{flag.count} examples {message}",
                    )
                )
        return warnings
