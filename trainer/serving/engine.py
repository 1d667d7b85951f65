"""Text generation for the model server: one base model, LoRA adapters switched per request.

The base model is loaded once. Adapters are loaded into it with PEFT (multi-adapter) on first
use and kept in an LRU of `max_adapters`; the least recently used one is dropped when another
is needed. Generation is serialized (the adapters share the base's weights), so the engine is
called from one thread at a time; the HTTP app queues requests in front of it.

Speed, on a CPU: the adapter in use is merged into the base weights (PEFT `merge_adapter`), so a
token costs what a token of the plain base model costs, with no LoRA matmuls; switching to
another adapter unmerges it (a few milliseconds for a small model). Tokens come from a plain
decoding loop with a KV cache, under `torch.inference_mode`, argmax at temperature 0 and
sampling otherwise; the prompt is one forward pass.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import torch
from peft import PeftModel
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from trainer.base_models import BaseModelSpec, load_model, load_tokenizer
from trainer.serving.adapters import AdapterResolver

__all__ = ["Engine", "Generation", "SamplingParams", "UnknownModel"]

DEFAULT_MAX_TOKENS = 512


class UnknownModel(LookupError):
    """No base model or adapter has this id."""


class SamplingParams(msgspec.Struct, frozen=True, kw_only=True):
    """What a chat request says about decoding (OpenAI's names and defaults)."""

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


class Generation(msgspec.Struct, kw_only=True):
    """A finished answer: its text, token counts and why it ended ("stop" or "length")."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class Engine:
    """The base model and its adapters in one process; not thread-safe (see the module doc)."""

    def __init__(
        self,
        spec: BaseModelSpec,
        model_dir: Path,
        resolver: AdapterResolver,
        *,
        max_adapters: int = 8,
    ) -> None:
        self.spec = spec
        self.resolver = resolver
        self.max_adapters = max_adapters
        self.tokenizer: PreTrainedTokenizerBase = load_tokenizer(spec, model_dir)
        self.base: PreTrainedModel = load_model(spec, model_dir)
        self.model: Any = self.base  # becomes a PeftModel with the first adapter
        self.context_tokens = int(getattr(self.base.config, "max_position_embeddings", 2048))
        self._adapters: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._paths: dict[str, Path] = {}
        self._merged: str | None = None
        self._adapters_on = True  # PEFT's LoRA layers take part in forward passes
        self._counter = 0
        self._lock = threading.Lock()
        self._stop_ids = self._end_of_turn_ids()

    @property
    def base_model(self) -> str:
        return self.spec.name

    @property
    def loaded_adapters(self) -> list[str]:
        """Model ids whose adapters are loaded, least recently used first."""
        return list(self._adapters)

    def knows(self, model: str) -> bool:
        return model == self.spec.name or model in self._adapters or self._resolve(model)

    def _resolve(self, model: str) -> bool:
        return self.resolver.resolve(model) is not None

    def count_prompt(self, messages: Sequence[dict[str, Any]]) -> int:
        return len(self._prompt_ids(messages))

    def generate(
        self, model: str, messages: Sequence[dict[str, Any]], params: SamplingParams
    ) -> Generation:
        """The whole answer of `model` to `messages`."""
        pieces = list(self.stream(model, messages, params))
        final = pieces[-1]
        assert isinstance(final, Generation)
        return final

    def stream(
        self, model: str, messages: Sequence[dict[str, Any]], params: SamplingParams
    ) -> Iterator[str | Generation]:
        """Pieces of text as they are decoded, then the `Generation` with the whole answer.

        Raises `UnknownModel` before decoding anything when `model` is neither the base model
        nor a resolvable adapter.
        """
        with self._lock:
            self._activate(model)
            prompt = self._prompt_ids(messages)
            yield from self._decode(prompt, params)

    # --- adapters ------------------------------------------------------------------------

    def _activate(self, model: str) -> None:
        if model == self.spec.name:
            self._unmerge()
            if self._adapters and self._adapters_on:
                self.model.base_model.disable_adapter_layers()
                self._adapters_on = False
            return
        name = self._adapters.get(model)
        if name is None:
            name = self._load(model)
        self._adapters.move_to_end(model)
        if self._merged == name:
            return
        self._unmerge()
        if not self._adapters_on:
            self.model.base_model.enable_adapter_layers()
            self._adapters_on = True
        self.model.set_adapter(name)
        self.model.merge_adapter([name])
        self._merged = name

    def _load(self, model: str) -> str:
        path = self.resolver.resolve(model)
        if path is None:
            raise UnknownModel(model)
        self._counter += 1
        name = f"a{self._counter}"  # PEFT adapter names are module attribute names
        self._unmerge()  # PEFT loads adapters into unmerged layers
        while len(self._adapters) >= self.max_adapters:
            _, evicted = self._adapters.popitem(last=False)
            if self._merged == evicted:
                self._unmerge()
            self.model.delete_adapter(evicted)
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(
                self.base, str(path), adapter_name=name, is_trainable=False
            )
            self.model.eval()
        self._adapters[model] = name
        self._paths[model] = path
        return name

    def _unmerge(self) -> None:
        if self._merged is not None:
            self.model.unmerge_adapter()
            self._merged = None

    # --- decoding ------------------------------------------------------------------------

    def _prompt_ids(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        rendered = self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )
        assert isinstance(rendered, str)
        ids: list[int] = self.tokenizer(rendered, add_special_tokens=False)["input_ids"]
        return ids

    def _end_of_turn_ids(self) -> set[int]:
        ids = set()
        eos = self.base.generation_config.eos_token_id
        for token in eos if isinstance(eos, list) else [eos]:
            if token is not None:
                ids.add(int(token))
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return ids

    @torch.inference_mode()
    def _decode(self, prompt: list[int], params: SamplingParams) -> Iterator[str | Generation]:
        budget = self.context_tokens - len(prompt)
        if budget <= 0:
            raise ValueError(
                f"the prompt has {len(prompt)} tokens; this model reads at most "
                f"{self.context_tokens}"
            )
        limit = min(budget, params.max_tokens or DEFAULT_MAX_TOKENS)
        generator = None
        if params.temperature > 0 and params.seed is not None:
            generator = torch.Generator().manual_seed(params.seed)
        cache = DynamicCache()
        logits = self._forward(prompt, cache)
        generated: list[int] = []
        sent = ""
        finish = "length"
        for _ in range(limit):
            token = self._pick(logits, params, generator)
            if token in self._stop_ids:
                finish = "stop"
                break
            generated.append(token)
            text = self._text(generated)
            cut = _first_stop(text, params.stop)
            if cut is not None:
                text, finish = text[:cut], "stop"
            # Hold back a partial UTF-8 character, and text that may begin a stop sequence.
            safe = len(text) if finish == "stop" else _safe_length(text, params.stop)
            if safe > len(sent):
                yield text[len(sent) : safe]
                sent = text[:safe]
            if finish == "stop":
                break
            if len(generated) < limit:
                logits = self._forward([token], cache)
        text = self._text(generated)
        cut = _first_stop(text, params.stop)
        if cut is not None:
            text = text[:cut]
        if len(text) > len(sent) and text.startswith(sent):
            yield text[len(sent) :]
        yield Generation(
            text=text,
            prompt_tokens=len(prompt),
            completion_tokens=len(generated) + (finish == "stop" and len(generated) < limit),
            finish_reason=finish,
        )

    def _text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _forward(self, ids: list[int], cache: DynamicCache) -> torch.Tensor:
        out = self.model(
            input_ids=torch.tensor([ids]),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits: torch.Tensor = out.logits[0, -1]
        return logits

    @staticmethod
    def _pick(
        logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None
    ) -> int:
        if params.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / params.temperature, dim=-1)
        if params.top_p < 1.0:
            ordered, order = probs.sort(descending=True)
            keep = ordered.cumsum(0) - ordered < params.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
        return int(torch.multinomial(probs, 1, generator=generator))


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


def _safe_length(text: str, stops: Sequence[str]) -> int:
    """How much of `text` can be sent: not a trailing replacement character (half a UTF-8
    character) and not a tail that could be the start of a stop sequence."""
    end = len(text.rstrip("\ufffd"))
    for stop in stops:
        for k in range(min(len(stop) - 1, end), 0, -1):
            if text[:end].endswith(stop[:k]):
                end = min(end, len(text[:end]) - k)
                break
    return end
