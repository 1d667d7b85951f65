"""The OpenAI cookbook's "Data preparation and analysis for chat model fine-tuning", as a script.

Faithful to the notebook: the whole file is loaded with json.loads per line into a list, then
the format-error checks, the token counting, the warnings and the epoch/billing estimate run
over it. Two substitutions only: the cl100k_base vocabulary is Burro's shipped copy (the
notebook's tiktoken.get_encoding would download it), and numpy's distribution helpers are
replaced by the standard library (numpy is not a Burro dependency).

    uv run python bench/cookbook_checks.py FILE.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from service.datasets.tokens import get_encoding

encoding = get_encoding("cl100k_base")

# The notebook's pricing and default n_epochs constants.
MAX_TOKENS_PER_EXAMPLE = 16385
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

Messages = list[dict[str, Any]]


def num_tokens_from_messages(
    messages: Messages, tokens_per_message: int = 3, tokens_per_name: int = 1
) -> int:
    num_tokens = 0
    for message in messages:
        num_tokens += tokens_per_message
        for key, value in message.items():
            num_tokens += len(encoding.encode(value))
            if key == "name":
                num_tokens += tokens_per_name
    num_tokens += 3
    return num_tokens


def num_assistant_tokens_from_messages(messages: Messages) -> int:
    num_tokens = 0
    for message in messages:
        if message["role"] == "assistant":
            num_tokens += len(encoding.encode(message["content"]))
    return num_tokens


def print_distribution(values: list[int], name: str) -> None:
    ordered = sorted(values)
    print(f"\n#### Distribution of {name}:")
    print(f"min / max: {min(values)}, {max(values)}")
    print(f"mean / median: {statistics.mean(values)}, {statistics.median(values)}")
    q = statistics.quantiles(ordered, n=10, method="inclusive")
    print(f"p5 / p95: {ordered[int(0.05 * (len(ordered) - 1))]}, {q[-1]}")


def check_format(dataset: list[Any]) -> None:
    """The notebook's "Format validation" cell."""
    format_errors: defaultdict[str, int] = defaultdict(int)

    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue

        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue

        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1

            if any(
                k not in ("role", "content", "name", "function_call", "weight") for k in message
            ):
                format_errors["message_unrecognized_key"] += 1

            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1

            content = message.get("content", None)
            function_call = message.get("function_call", None)

            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1

        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1

    if format_errors:
        print("Found errors:")
        for k, v in format_errors.items():
            print(f"{k}: {v}")
    else:
        print("No errors found")


def count_tokens(dataset: list[Any]) -> list[int]:
    """The notebook's "Data warnings and token counts" cell; each example's token count."""
    n_missing_system = 0
    n_missing_user = 0
    n_messages = []
    convo_lens = []
    assistant_message_lens = []

    for ex in dataset:
        messages = ex["messages"]
        if not any(message["role"] == "system" for message in messages):
            n_missing_system += 1
        if not any(message["role"] == "user" for message in messages):
            n_missing_user += 1
        n_messages.append(len(messages))
        convo_lens.append(num_tokens_from_messages(messages))
        assistant_message_lens.append(num_assistant_tokens_from_messages(messages))

    print("Num examples missing system message:", n_missing_system)
    print("Num examples missing user message:", n_missing_user)
    print_distribution(n_messages, "num_messages_per_example")
    print_distribution(convo_lens, "num_total_tokens_per_example")
    print_distribution(assistant_message_lens, "num_assistant_tokens_per_example")
    n_too_long = sum(length > MAX_TOKENS_PER_EXAMPLE for length in convo_lens)
    print(
        f"\n{n_too_long} examples may be over the 16,385 token limit, "
        "they will be truncated during fine-tuning"
    )
    return convo_lens


def estimate_cost(n_train_examples: int, convo_lens: list[int]) -> None:
    """The notebook's "Cost estimation" cell."""
    n_epochs = TARGET_EPOCHS
    if n_train_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train_examples)
    elif n_train_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train_examples)

    n_billing_tokens_in_dataset = sum(min(MAX_TOKENS_PER_EXAMPLE, length) for length in convo_lens)
    print(
        f"Dataset has ~{n_billing_tokens_in_dataset} tokens that will be charged for during "
        "training"
    )
    print(f"By default, you'll train for {n_epochs} epochs on this dataset")
    print(f"By default, you'll be charged for ~{n_epochs * n_billing_tokens_in_dataset} tokens")


def main(data_path: str) -> None:
    # Load the dataset
    with Path(data_path).open(encoding="utf-8") as f:
        dataset = [json.loads(line) for line in f]

    # Initial dataset stats
    print("Num examples:", len(dataset))
    check_format(dataset)
    convo_lens = count_tokens(dataset)
    estimate_cost(len(dataset), convo_lens)


if __name__ == "__main__":
    main(sys.argv[1])
