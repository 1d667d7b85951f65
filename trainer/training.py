"""The training core: one LoRA run on a base model, reported step by step through hooks.

`train(request, hooks)` is synchronous and meant to run in a thread of whatever drives it (an
arq worker). It reads Burro's stored dataset files, prepares the base model (see
`trainer.base_models`), resolves the hyperparameters, and trains a LoRA adapter with
transformers' Trainer (supervised) or TRL's DPOTrainer (`dpo`). Along the way the hooks get the
metrics of every step, each epoch's checkpoint, and are asked after every step whether to stop.

Everything a run writes lives in `request.output_dir`:
- `run.json`: the resolved hyperparameters (a resumed run keeps them, its seed included);
- `step_metrics.csv`: one row per step, in OpenAI's result-file columns;
- `checkpoint-N/`: the adapter after each epoch (N is the step), servable on its own; the
  latest also holds the optimizer, scheduler and RNG state to resume from;
- `adapter/`: the final adapter.

A run whose `output_dir` holds a complete checkpoint resumes from the latest one: same data
order, same RNG state, so it ends where an uninterrupted run would.
"""

from __future__ import annotations

import csv
import math
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import msgspec
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as transformers_logging

from service.openai_shapes import RESULT_CSV_COLUMNS
from trainer.base_models import load_model, load_tokenizer, prepare
from trainer.data import (
    IGNORE_INDEX,
    LabelledExample,
    LabelledSet,
    PreferenceExample,
    label_examples,
    read_chat_file,
    read_preference_file,
)
from trainer.errors import OutOfMemory, TrainingError
from trainer.hyperparameters import ResolvedHyperparameters, resolve
from trainer.runs import (
    Checkpoint,
    LoraSettings,
    StepMetrics,
    TrainingHooks,
    TrainingPlan,
    TrainingRequest,
    TrainingResult,
)

__all__ = ["latest_checkpoint", "train"]

RESULTS_FILE = "step_metrics.csv"
RUN_FILE = "run.json"
ADAPTER_DIR = "adapter"
CHECKPOINT_PREFIX = "checkpoint-"
# What a checkpoint needs to resume from (beside the adapter); kept in the latest one only.
_RESUME_STATE = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt")
_TRAINER_STATE = "trainer_state.json"  # written last: its presence marks a complete checkpoint
# Micro-batches larger than this are split (gradient accumulation): same result, less memory.
MAX_MICRO_BATCH = 8
# Weight of the latest step in the moving average of step time (estimated_finish).
STEP_TIME_SMOOTHING = 0.3


class _RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    hyperparameters: ResolvedHyperparameters
    method: str
    base_model: str


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint with its resume state in `output_dir`, if any."""
    complete = [
        p
        for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*")
        if (p / _TRAINER_STATE).is_file()
        and (p / "optimizer.pt").is_file()
        and p.name.removeprefix(CHECKPOINT_PREFIX).isdigit()
    ]
    return max(complete, key=_checkpoint_step, default=None)


def train(request: TrainingRequest, hooks: TrainingHooks | None = None) -> TrainingResult:
    """Train one LoRA adapter as `request` says, resuming from its latest checkpoint if any.

    Raises a `TrainingError` (its `code` says why) for data that cannot be trained on, a base
    model that cannot be loaded, or memory running out.
    """
    started = time.monotonic()
    hooks = hooks or TrainingHooks()
    try:
        return _train(request, hooks, started)
    except MemoryError as exc:
        raise _out_of_memory(exc) from exc
    except RuntimeError as exc:
        if _is_out_of_memory(exc):
            raise _out_of_memory(exc) from exc
        raise


def _train(request: TrainingRequest, hooks: TrainingHooks, started: float) -> TrainingResult:
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    request.output_dir.mkdir(parents=True, exist_ok=True)
    if request.method == "dpo":
        preference_rows = read_preference_file(request.training_file)
        n_examples = len(preference_rows)
    else:
        chat_rows = read_chat_file(request.training_file)
        n_examples = len(chat_rows)

    resume_from = latest_checkpoint(request.output_dir)
    record = _run_record(request, n_examples, resume=resume_from is not None)
    hp = record.hyperparameters

    model_dir = prepare(request.base_model, request.cache_dir)
    tokenizer = load_tokenizer(request.base_model, model_dir)
    limit = request.base_model.max_tokens_per_example

    if request.method == "dpo":
        labelled = None
        billing = 0
    else:
        labelled = label_examples(tokenizer, chat_rows, limit)
        billing = sum(len(e.input_ids) for e in labelled.examples)
        n_examples = len(labelled.examples)
    validation = _validation_set(request, tokenizer, limit)

    micro, accumulation = _micro_batches(hp.batch_size)
    steps_per_epoch = math.ceil(math.ceil(n_examples / micro) / accumulation)
    plan = TrainingPlan(
        hyperparameters=hp,
        n_examples=n_examples,
        truncated=labelled.truncated if labelled else 0,
        skipped=labelled.skipped if labelled else 0,
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * hp.n_epochs,
        trained_tokens=billing * hp.n_epochs,
        resumed_from_step=_checkpoint_step(resume_from) if resume_from else None,
    )
    results = _ResultsFile(request.output_dir / RESULTS_FILE, keep_through=plan.resumed_from_step)
    if hooks.should_stop():
        return _ended(
            "cancelled", plan, plan.resumed_from_step or 0, None, request, results, started
        )

    model = load_model(request.base_model, model_dir)
    transformers.set_seed(hp.seed)
    model = _with_lora(model, request.lora)
    reporter = _Reporter(hooks, plan, results, validation, tokenizer, model)
    args = _training_arguments(request, hp, micro, accumulation)
    if request.method == "dpo":
        trainer = _dpo_trainer(model, tokenizer, args, preference_rows, reporter)
    else:
        assert labelled is not None
        trainer = _SupervisedTrainer(
            model=model,
            args=args,
            train_dataset=_as_rows(labelled.examples),
            data_collator=_Collator(tokenizer.pad_token_id),
            processing_class=tokenizer,
            callbacks=[reporter],
        )
        reporter.trainer = trainer  # supervised steps report the trainer's own figures
    trainer.remove_callback(PrinterCallback)  # the hooks report progress, not stdout
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if reporter.cancelled:
        return _ended("cancelled", plan, reporter.last_step, None, request, results, started)
    adapter = request.output_dir / ADAPTER_DIR
    shutil.rmtree(adapter, ignore_errors=True)
    model.save_pretrained(str(adapter))
    return _ended("succeeded", plan, reporter.last_step, adapter, request, results, started)


def _ended(
    status: Literal["succeeded", "cancelled"],
    plan: TrainingPlan,
    steps: int,
    adapter: Path | None,
    request: TrainingRequest,
    results: _ResultsFile,
    started: float,
) -> TrainingResult:
    checkpoints = tuple(
        Checkpoint(
            step=_checkpoint_step(p),
            epoch=math.ceil(_checkpoint_step(p) / plan.steps_per_epoch),
            path=p,
        )
        for p in sorted(request.output_dir.glob(f"{CHECKPOINT_PREFIX}*"), key=_checkpoint_step)
        if (p / _TRAINER_STATE).is_file()
    )
    return TrainingResult(
        status=status,
        plan=plan,
        steps=steps,
        adapter_dir=adapter,
        checkpoints=checkpoints,
        results_file=results.path,
        seconds=time.monotonic() - started,
    )


def _run_record(request: TrainingRequest, n_examples: int, *, resume: bool) -> _RunRecord:
    """The resolved hyperparameters: from `run.json` when resuming, else resolved and saved."""
    path = request.output_dir / RUN_FILE
    if resume and path.is_file():
        return msgspec.json.decode(path.read_bytes(), type=_RunRecord)
    record = _RunRecord(
        hyperparameters=resolve(
            request.hyperparameters,
            n_examples=n_examples,
            seed=request.seed,
            method=request.method,
        ),
        method=request.method,
        base_model=request.base_model.name,
    )
    path.write_bytes(msgspec.json.format(msgspec.json.encode(record)))
    return record


def _validation_set(
    request: TrainingRequest, tokenizer: PreTrainedTokenizerBase, limit: int
) -> LabelledSet | None:
    if request.validation_file is None or request.method == "dpo":
        return None
    return label_examples(tokenizer, read_chat_file(request.validation_file), limit)


def _micro_batches(batch_size: int) -> tuple[int, int]:
    """(examples per forward pass, passes per optimizer step) for an effective `batch_size`."""
    accumulation = math.ceil(batch_size / MAX_MICRO_BATCH)
    return math.ceil(batch_size / accumulation), accumulation


def _with_lora(model: PreTrainedModel, lora: LoraSettings) -> Any:
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules
        if isinstance(lora.target_modules, str)
        else list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _training_arguments(
    request: TrainingRequest, hp: ResolvedHyperparameters, micro: int, accumulation: int
) -> Any:
    common: dict[str, Any] = {
        "output_dir": str(request.output_dir),
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": accumulation,
        "num_train_epochs": hp.n_epochs,
        "learning_rate": hp.learning_rate,
        "lr_scheduler_type": "linear",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "seed": hp.seed,
        "data_seed": hp.seed,
        "logging_strategy": "steps",
        "logging_steps": 1,
        "save_strategy": "epoch",
        "report_to": "none",
        "disable_tqdm": True,
        "remove_unused_columns": False,
        "dataloader_pin_memory": False,
        # Recomputing activations saves memory on large models and costs time; TRL turns it on
        # by default, which the small adapters trained here do not need.
        "activation_checkpointing": False,
        "use_cpu": not torch.cuda.is_available(),
        "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    }
    if request.method == "dpo":
        from trl import DPOConfig  # TRL is loaded only for DPO runs

        return DPOConfig(
            **common,
            beta=hp.beta or 0.1,
            max_length=request.base_model.max_tokens_per_example,
        )
    return TrainingArguments(**common)


def _dpo_trainer(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    args: Any,
    rows: list[PreferenceExample],
    reporter: TrainerCallback,
) -> Any:
    from datasets import Dataset
    from trl import DPOTrainer  # TRL is loaded only for DPO runs

    dataset = Dataset.from_list([msgspec.structs.asdict(r) for r in rows])
    return DPOTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[reporter],
    )


def _as_rows(examples: list[LabelledExample]) -> list[dict[str, list[int]]]:
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]


class _Collator:
    """Pads a batch on the right: pad tokens for inputs, ignored labels, a zero attention mask."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids, labels, mask = [], [], []
        for r in rows:
            pad = width - len(r["input_ids"])
            ids.append(r["input_ids"] + [self.pad_token_id] * pad)
            labels.append(r["labels"] + [IGNORE_INDEX] * pad)
            mask.append([1] * len(r["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }


def _token_counts(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(tokens learned, tokens predicted right) of a batch, with the causal shift."""
    target = labels[:, 1:]
    learned = target != IGNORE_INDEX
    right = (logits[:, :-1].argmax(-1) == target) & learned
    return int(learned.sum()), int(right.sum())


class _SupervisedTrainer(Trainer):
    """Trainer that also keeps each step's token-weighted loss and token accuracy."""

    step_loss_sum = 0.0
    step_tokens = 0
    step_right = 0

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        tokens, right = _token_counts(outputs.logits.detach(), inputs["labels"])
        # With num_items_in_batch the loss is already a sum over the whole step's tokens.
        scale = float(num_items_in_batch) if num_items_in_batch is not None else tokens
        self.step_loss_sum += float(loss.detach()) * scale
        self.step_tokens += tokens
        self.step_right += right
        return (loss, outputs) if return_outputs else loss

    def take_step_metrics(self) -> tuple[float, float]:
        loss = self.step_loss_sum / max(1, self.step_tokens)
        accuracy = self.step_right / max(1, self.step_tokens)
        self.step_loss_sum, self.step_tokens, self.step_right = 0.0, 0, 0
        return loss, accuracy


class _ResultsFile:
    """`step_metrics.csv`, one row per step, kept in step with resumption."""

    def __init__(self, path: Path, keep_through: int | None) -> None:
        self.path = path
        kept: list[list[str]] = []
        if keep_through is not None and path.is_file():
            with path.open(newline="") as f:
                kept = [r for r in list(csv.reader(f))[1:] if int(r[0]) <= keep_through]
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(RESULT_CSV_COLUMNS)
            writer.writerows(kept)

    def append(self, m: StepMetrics) -> None:
        def cell(value: float | None) -> str:
            return "" if value is None else f"{value:.5f}"

        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow(
                [
                    m.step,
                    cell(m.train_loss),
                    cell(m.train_mean_token_accuracy),
                    cell(m.valid_loss),
                    cell(m.valid_mean_token_accuracy),
                    cell(m.train_mean_token_accuracy),
                    cell(m.full_valid_loss),
                    cell(m.full_valid_mean_token_accuracy),
                ]
            )


class _Reporter(TrainerCallback):
    """The Trainer callback that feeds the hooks, the results file and the cancel check."""

    def __init__(
        self,
        hooks: TrainingHooks,
        plan: TrainingPlan,
        results: _ResultsFile,
        validation: LabelledSet | None,
        tokenizer: PreTrainedTokenizerBase,
        model: Any,
    ) -> None:
        self.hooks = hooks
        self.plan = plan
        self.results = results
        self.validation = validation
        self.collate = _Collator(tokenizer.pad_token_id)
        self.model = model
        self.trainer: Any = None
        self.cancelled = False
        self.last_step = plan.resumed_from_step or 0
        self.step_started = time.monotonic()
        self.step_seconds: float | None = None
        self.smoothed: float | None = None
        self.last_metrics: StepMetrics | None = None
        self.valid_cursor = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.hooks.on_start(self.plan)
        self.step_started = time.monotonic()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.last_step = state.global_step
        if self.trainer is not None:  # supervised: our own per-step figures
            self._report(state.global_step, *self.trainer.take_step_metrics())
        if self.hooks.should_stop():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = False

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.cancelled:  # a cancelled run ends its epoch early: that is no checkpoint
            control.should_save = False

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any
    ) -> None:
        if self.trainer is None and logs and "loss" in logs:  # DPO: TRL's own figures
            self._report(state.global_step, logs["loss"], logs.get("rewards/accuracies"))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        path = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
        if not (path / _TRAINER_STATE).is_file():
            return
        for older in Path(args.output_dir).glob(f"{CHECKPOINT_PREFIX}*"):
            if older != path:
                for name in _RESUME_STATE:
                    (older / name).unlink(missing_ok=True)
        self.hooks.on_checkpoint(
            Checkpoint(
                step=state.global_step,
                epoch=math.ceil(state.global_step / self.plan.steps_per_epoch),
                path=path,
                metrics=self.last_metrics,
            )
        )

    def _report(self, step: int, loss: float, accuracy: float | None) -> None:
        seconds = time.monotonic() - self.step_started
        valid_loss = valid_accuracy = full_loss = full_accuracy = None
        if self.validation is not None:
            valid_loss, valid_accuracy = self._validate(full=False)
            if step % self.plan.steps_per_epoch == 0 or step == self.plan.total_steps:
                full_loss, full_accuracy = self._validate(full=True)
            seconds = time.monotonic() - self.step_started
        self.smoothed = (
            seconds
            if self.smoothed is None
            else STEP_TIME_SMOOTHING * seconds + (1 - STEP_TIME_SMOOTHING) * self.smoothed
        )
        metrics = StepMetrics(
            step=step,
            total_steps=self.plan.total_steps,
            epoch=math.ceil(step / self.plan.steps_per_epoch),
            train_loss=loss,
            train_mean_token_accuracy=accuracy,
            valid_loss=valid_loss,
            valid_mean_token_accuracy=valid_accuracy,
            full_valid_loss=full_loss,
            full_valid_mean_token_accuracy=full_accuracy,
            step_seconds=seconds,
            remaining_seconds=self.smoothed * (self.plan.total_steps - step),
        )
        self.last_metrics = metrics
        self.results.append(metrics)
        self.hooks.on_step(metrics)

    def _validate(self, *, full: bool) -> tuple[float, float]:
        """Loss and token accuracy on the next validation batch, or on the whole set."""
        assert self.validation is not None
        examples = self.validation.examples
        size = self.plan.hyperparameters.batch_size
        if full:
            batches = [examples[i : i + size] for i in range(0, len(examples), size)]
        else:
            start = self.valid_cursor % len(examples)
            batch = (examples + examples)[start : start + min(size, len(examples))]
            self.valid_cursor += len(batch)
            batches = [batch]
        loss_sum, tokens, right = 0.0, 0, 0
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for batch in batches:
                    inputs = self.collate(_as_rows(batch))
                    outputs = self.model(**inputs)
                    n, ok = _token_counts(outputs.logits, inputs["labels"])
                    loss_sum += float(outputs.loss) * n
                    tokens += n
                    right += ok
        finally:
            self.model.train(was_training)
        return loss_sum / max(1, tokens), right / max(1, tokens)


def _checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix(CHECKPOINT_PREFIX))


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def _out_of_memory(exc: BaseException) -> TrainingError:
    return OutOfMemory(
        "the trainer ran out of memory: use a smaller batch_size, shorter examples (a lower "
        "max_tokens_per_example for the model), a smaller base model, or a machine with more "
        f"memory ({type(exc).__name__}: {str(exc)[:200]})"
    )
