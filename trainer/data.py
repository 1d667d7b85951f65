"""Training data: Burro's stored dataset files turned into token ids and a loss mask.

Supervised examples (OpenAI's chat JSONL) are rendered with the model's own chat template, and
the loss covers the tokens of each assistant message only (its content and the template's
end-of-turn), except messages with `weight: 0`. The span of an assistant message is found by
rendering the conversation up to it: the text before it (with the template's generation
prompt) is the prompt, the text through it ends its span; templates without `{% generation %}`
markers (SmolLM2's) need nothing else. An example longer than the model's per-example limit is
cut at that limit, as OpenAI does; one left with no assistant token to learn is skipped.

Preference examples (OpenAI's DPO JSONL) become TRL's conversational prompt/chosen/rejected.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from service.datasets.stored_lines import CHAT_LINE, PREFERENCE_LINE, StoredMessage
from trainer.errors import InvalidTrainingData

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "ChatExample",
    "LabelledExample",
    "LabelledSet",
    "PreferenceExample",
    "label_example",
    "label_examples",
    "read_chat_file",
    "read_preference_file",
]

IGNORE_INDEX = -100  # the label torch's cross-entropy skips

Message = dict[str, Any]


class ChatExample(msgspec.Struct, frozen=True):
    """One conversation; `learned[i]` says whether message i is learned (an assistant's,
    without `weight: 0`)."""

    messages: list[Message]
    learned: list[bool]
    tools: list[Any] | None = None


class PreferenceExample(msgspec.Struct, frozen=True):
    """TRL's conversational preference row: the prompt, then the chosen and rejected turns."""

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]


class LabelledExample(msgspec.Struct, frozen=True):
    """Token ids and their labels (`IGNORE_INDEX` where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def n_labelled(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


class LabelledSet(msgspec.Struct, frozen=True):
    """A tokenized dataset and what was cut or left out to fit the model."""

    examples: list[LabelledExample]
    truncated: int  # examples cut at the per-example limit
    skipped: int  # examples with nothing left to learn after the cut


def read_chat_file(path: Path) -> list[ChatExample]:
    """Each conversation of a chat JSONL file."""
    rows = []
    for number, line in _lines(path):
        try:
            decoded = CHAT_LINE.decode(line)
        except msgspec.DecodeError as exc:
            raise InvalidTrainingData(f"{path.name} line {number}: {exc}") from exc
        messages = [_plain(m, path, number) for m in decoded.messages]
        learned = [m.role == "assistant" and m.weight != 0 for m in decoded.messages]
        rows.append(ChatExample(messages=messages, learned=learned, tools=decoded.tools))
    if not rows:
        raise InvalidTrainingData(f"{path.name} holds no examples")
    return rows


def read_preference_file(path: Path) -> list[PreferenceExample]:
    """Each example of a preference (DPO) JSONL file, as TRL's conversational rows."""
    rows = []
    for number, line in _lines(path):
        try:
            decoded = PREFERENCE_LINE.decode(line)
        except msgspec.DecodeError as exc:
            raise InvalidTrainingData(
                f"{path.name} line {number} is not a preference example: {exc}"
            ) from exc
        rows.append(
            PreferenceExample(
                prompt=[_plain(m, path, number) for m in decoded.input.messages],
                chosen=[_plain(m, path, number) for m in decoded.preferred_output],
                rejected=[_plain(m, path, number) for m in decoded.non_preferred_output],
            )
        )
    if not rows:
        raise InvalidTrainingData(f"{path.name} holds no examples")
    return rows


def label_examples(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[ChatExample],
    max_tokens: int,
) -> LabelledSet:
    """Tokenize and mask every row; `InvalidTrainingData` when none is left to learn from."""
    kept, truncated, skipped = [], 0, 0
    for example in rows:
        labelled = label_example(tokenizer, example, max_tokens)
        truncated += labelled.truncated
        if labelled.n_labelled == 0:
            skipped += 1
        else:
            kept.append(labelled)
    if not kept:
        raise InvalidTrainingData(
            "no example has an assistant message to learn from within "
            f"{max_tokens} tokens (messages with weight 0 are not learned)"
        )
    return LabelledSet(examples=kept, truncated=truncated, skipped=skipped)


def label_example(
    tokenizer: PreTrainedTokenizerBase,
    example: ChatExample,
    max_tokens: int,
) -> LabelledExample:
    """Token ids of the rendered conversation; labels on the learned assistant messages."""
    text = _render(tokenizer, example.messages, example.tools)
    spans = [
        _assistant_span(tokenizer, example, i, text)
        for i, is_learned in enumerate(example.learned)
        if is_learned
    ]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoded["input_ids"])
    offsets: list[tuple[int, int]] = list(encoded["offset_mapping"])
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORE_INDEX
        for token, (begin, _) in zip(ids, offsets, strict=True)
    ]
    cut = len(ids) > max_tokens
    return LabelledExample(input_ids=ids[:max_tokens], labels=labels[:max_tokens], truncated=cut)


def _assistant_span(
    tokenizer: PreTrainedTokenizerBase, example: ChatExample, index: int, text: str
) -> tuple[int, int]:
    """Where message `index` (an assistant's) lies in the rendered conversation `text`."""
    through = _render(tokenizer, example.messages[: index + 1], example.tools)
    if not text.startswith(through):
        raise InvalidTrainingData(
            "the model's chat template renders an earlier turn differently once later turns "
            "follow, so assistant turns cannot be masked: give the model a chat template "
            "without that (`chat_template` in the model table)"
        )
    if index > 0:
        prompt = _render(tokenizer, example.messages[:index], example.tools, generation=True)
        if through.startswith(prompt):
            return len(prompt), len(through)
    content = example.messages[index].get("content") or ""
    start = through.rfind(content) if content else -1
    if start < 0:
        raise InvalidTrainingData(
            f"cannot find assistant message {index + 1} in the chat template's rendering"
        )
    return start, len(through)


def _render(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[Message],
    tools: list[Any] | None,
    *,
    generation: bool = False,
) -> str:
    rendered = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=generation
    )
    assert isinstance(rendered, str)
    return rendered


def _plain(message: StoredMessage, path: Path, number: int) -> Message:
    """A message as chat templates expect it: text content, no Burro-only keys."""
    content = message.content
    if isinstance(content, list):
        parts = []
        for part in content:
            if part.get("type") != "text":
                raise InvalidTrainingData(
                    f"{path.name} line {number}: {part.get('type')!r} content is not supported "
                    "by the local trainer (text only)"
                )
            parts.append(str(part.get("text", "")))
        content = "".join(parts)
    return message.for_template(content or "")


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise InvalidTrainingData(f"cannot read {path.name}: {exc.strerror}") from exc
