"""When a body is not JSONL at all (a CSV file, a JSON array of examples), say what one line
must look like, instead of leaving the caller with a column of `invalid_json` errors."""

from __future__ import annotations

import msgspec

from service.datasets.checks import DatasetReport

# What the start of the body is kept for: enough to tell CSV and an array from JSONL.
HEAD_BYTES = 4096

CHAT_LINE = (
    '{"messages": [{"role": "system", "content": "You are Donkey."}, '
    '{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello, friend!"}]}'
)
PREFERENCE_LINE = (
    '{"input": {"messages": [{"role": "user", "content": "Hi!"}]}, '
    '"preferred_output": [{"role": "assistant", "content": "Hello, friend!"}], '
    '"non_preferred_output": [{"role": "assistant", "content": "What?"}]}'
)


def format_hint(head: bytes, report: DatasetReport) -> str | None:
    """What to tell the caller when the body looks like CSV or a JSON array, else None."""
    if report.valid or not report.errors:
        return None
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    example = PREFERENCE_LINE if report.kind == "preference" else CHAT_LINE
    one_line = f"JSONL is one JSON object per line, each line like: {example}"
    if text.startswith(b"["):
        return f"The body is a JSON array, not JSONL. {one_line}"
    first_line = text.split(b"\n", 1)[0]
    if not first_line.startswith(b"{") and (b"," in first_line or b"\t" in first_line):
        return f"The body looks like CSV or TSV, not JSONL. {one_line}"
    return None


def with_hint(report: DatasetReport, hint: str | None) -> DatasetReport:
    """`report` with `hint` added to its first error's message."""
    if hint is None:
        return report
    first, *rest = report.errors
    first = msgspec.structs.replace(first, message=f"{first.message}. {hint}")
    return msgspec.structs.replace(report, errors=[first, *rest])
