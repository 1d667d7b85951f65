"""The streaming dataset checker: error codes on the right lines, warnings, tokens, estimates."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest

from service.datasets.checks import (
    DatasetCheck,
    DatasetReport,
    LineError,
    TokenCounts,
    UnknownModel,
    default_epochs,
    estimate,
)
from service.datasets.tokens import get_encoding
from service.models import ModelTable
from tests.support.data import jsonl

TODAY = datetime.date(2025, 11, 26)
MINI = "gpt-4.1-mini-2025-04-14"
TABLE = ModelTable.load()


def example(i: int = 0, *, system: bool = True, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"What is {i} + {i}?"}]
    if system:
        messages.insert(0, {"role": "system", "content": "You are a donkey."})
    messages.append({"role": "assistant", "content": f"{2 * i}, obviously."})
    return {"messages": messages, **extra}


def good(n: int = 10) -> list[Any]:
    return [example(i) for i in range(n)]


def check(
    data: bytes,
    *,
    kind: Any = None,
    chunk: int | None = None,
    models: list[str] | None = None,
    today: datetime.date = TODAY,
    **kwargs: Any,
) -> DatasetReport:
    c = DatasetCheck(kind=kind, models=TABLE, estimate_models=models, today=today, **kwargs)
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        c.feed(data[i : i + step])
    return c.finish()


def codes(report: DatasetReport) -> list[tuple[int, str]]:
    return [(e.line, e.code) for e in report.errors]


def cookbook_tokens(messages: list[dict[str, Any]], encoding: str = "o200k_base") -> int:
    """The cookbook's num_tokens_from_messages, for string-valued messages."""
    enc = get_encoding(encoding)
    n = 3
    for m in messages:
        n += 3
        for key, value in m.items():
            n += len(enc.encode_ordinary(value))
            if key == "name":
                n += 1
    return n


# --- a valid file ---


def test_valid_file_reports_counts_hash_and_no_errors() -> None:
    data = jsonl(good(12))
    report = check(data)
    assert report.valid and report.errors == [] and report.error_counts == {}
    assert report.kind == "chat" and report.examples == 12 and report.bytes == len(data)
    import hashlib

    assert report.sha256 == hashlib.sha256(data).hexdigest()


def test_token_counts_follow_the_cookbook_formula() -> None:
    rows = good(12)
    rows[3]["messages"][1]["name"] = "Shrek"
    report = check(jsonl(rows))
    counts = sorted(cookbook_tokens(r["messages"]) for r in rows)
    assert report.tokens.total == sum(counts)
    assert report.tokens.min == counts[0] and report.tokens.max == counts[-1]
    assert report.tokens.mean == round(sum(counts) / len(counts), 1)


def test_cl100k_counts_for_gpt35() -> None:
    rows = good(12)
    report = check(jsonl(rows), models=["gpt-3.5-turbo-0125"])
    assert report.tokens.total == sum(cookbook_tokens(r["messages"], "cl100k_base") for r in rows)


def test_percentiles_are_nearest_rank() -> None:
    c = DatasetCheck(kind=None, models=TABLE, today=TODAY)
    rows = [
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y " * i}]}
        for i in range(1, 21)
    ]
    c.feed(jsonl(rows))
    report = c.finish()
    counts = sorted(
        TokenCounts(
            encoding="o200k_base", histogram=c.token_counts["o200k_base"].histogram
        ).histogram
    )
    assert report.tokens.p50 == counts[9] and report.tokens.p95 == counts[18]


def test_tools_tool_calls_weight_and_images_are_accepted_and_counted_as_json() -> None:
    tools = [{"type": "function", "function": {"name": "bray", "parameters": {"type": "object"}}}]
    call = [{"id": "call_1", "type": "function", "function": {"name": "bray", "arguments": "{}"}}]
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}}
    row = {
        "messages": [
            {"role": "developer", "content": "Be a donkey."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]},
            {"role": "assistant", "content": None, "tool_calls": call, "weight": 0},
            {"role": "tool", "tool_call_id": "call_1", "content": "hee-haw"},
            {"role": "assistant", "content": "A donkey.", "weight": 1},
        ],
        "tools": tools,
        "parallel_tool_calls": False,
    }
    report = check(jsonl([row] * 1 + good(10)))
    assert report.error_counts == {}, report.errors
    enc = get_encoding("o200k_base")

    def n(s: str) -> int:
        return len(enc.encode_ordinary(s))

    expected = (
        3
        + 5 * 3
        + sum(n(r) for r in ("developer", "user", "assistant", "tool", "assistant"))
        + n("Be a donkey.")
        + n("What is this?")
        + 85
        + n(msgspec.json.encode(call).decode())
        + n("call_1")
        + n("hee-haw")
        + n("A donkey.")
        + n(msgspec.json.encode(tools).decode())
    )
    rest = sum(cookbook_tokens(r["messages"]) for r in good(10))
    assert report.tokens.total == expected + rest


def test_special_token_text_is_counted_not_refused() -> None:
    rows = good(10)
    rows[0]["messages"][1]["content"] = "say <|endoftext|> now"
    assert check(jsonl(rows)).valid


# --- errors, each on its line ---


ERROR_CASES: list[tuple[str, Any]] = [
    ("invalid_json", b'{"messages": [}'),
    ("invalid_utf8", b'{"messages": "\xff\xfe"}'),
    ("data_type", [example(1)]),
    ("data_type", b'"just a string"'),
    ("data_type", {"messages": "hello"}),
    (
        "data_type",
        {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]},
    ),
    ("data_type", {"messages": [{"role": 1, "content": "x"}]}),
    ("data_type", {**example(1), "prompt": "legacy"}),
    ("data_type", {**example(1), "tools": [{"type": "function"}]}),
    (
        "data_type",
        {
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "y", "weight": 2},
            ]
        },
    ),
    (
        "data_type",
        {
            "messages": [
                {"role": "user", "content": [{"type": "audio", "x": 1}]},
                {"role": "assistant", "content": "y"},
            ]
        },
    ),
    (
        "data_type",
        {
            "messages": [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": [{"type": "image_url", "image_url": {"url": "u"}}],
                },
            ]
        },
    ),
    ("missing_messages_list", {"prompt": "a", "completion": "b"}),
    ("missing_messages_list", {"messages": []}),
    (
        "message_missing_key",
        {"messages": [{"content": "x"}, {"role": "assistant", "content": "y"}]},
    ),
    (
        "message_missing_key",
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]},
    ),
    (
        "message_missing_key",
        {
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "y"},
                {"role": "tool", "content": "z"},
            ]
        },
    ),
    (
        "message_unrecognized_key",
        {
            "messages": [
                {"role": "user", "content": "x", "mood": "grumpy"},
                {"role": "assistant", "content": "y"},
            ]
        },
    ),
    (
        "message_unrecognized_key",
        {
            "messages": [
                {"role": "user", "content": "x", "weight": 1},
                {"role": "assistant", "content": "y"},
            ]
        },
    ),
    (
        "message_unrecognized_key",
        {
            "messages": [
                {"role": "user", "content": "x", "tool_call_id": "c"},
                {"role": "assistant", "content": "y"},
            ]
        },
    ),
    (
        "unrecognized_role",
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
    ),
    (
        "missing_content",
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]},
    ),
    (
        "missing_content",
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": None}]},
    ),
    (
        "missing_content",
        {"messages": [{"role": "user", "content": []}, {"role": "assistant", "content": "y"}]},
    ),
    (
        "example_missing_assistant_message",
        {"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]},
    ),
]


@pytest.mark.parametrize(
    ("code", "bad"), ERROR_CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(ERROR_CASES)]
)
def test_each_error_code_is_reported_on_its_line(code: str, bad: Any) -> None:
    rows = good(12)
    rows.insert(6, bad)
    report = check(jsonl(rows), kind="chat")
    assert codes(report) == [(7, code)], report.errors
    assert report.error_counts == {code: 1} and not report.valid
    assert report.errors[0].message


def test_messages_name_the_message_and_the_expected_roles() -> None:
    rows = good(13)
    rows[13 - 1] = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "y"},
            {"role": "robot", "content": "z"},
        ]
    }
    rows.append(example(99))
    report = check(jsonl(rows))
    (error,) = report.errors
    assert error.line == 13
    assert error.message.startswith("message 3 has role 'robot'; expected one of system,")


def test_first_problem_of_a_line_wins_and_counts_cover_the_whole_file() -> None:
    bad = {"messages": [{"role": "robot"}, {"role": "user", "content": ""}]}
    rows = good(10) + [bad] * 150
    report = check(jsonl(rows))
    assert len(report.errors) == 100
    assert report.errors[0] == LineError(
        line=11, code="message_missing_key", message="message 1 has no 'content'"
    )
    assert sum(report.error_counts.values()) == 150
    assert [e.line for e in report.errors] == list(range(11, 111))


def test_max_errors_caps_the_list_not_the_counts() -> None:
    report = check(jsonl(good(10) + [b"nope"] * 20), max_errors=5)
    assert len(report.errors) == 5 and report.error_counts == {"invalid_json": 20}


# --- input robustness ---


def test_utf8_bom_at_start_is_accepted() -> None:
    assert check(b"\xef\xbb\xbf" + jsonl(good(10))).valid


def test_crlf_line_endings_are_accepted() -> None:
    assert check(jsonl(good(10)).replace(b"\n", b"\r\n")).valid


def test_blank_lines_are_skipped_but_keep_line_numbers() -> None:
    data = b"\n  \n" + jsonl(good(10)) + b"\n\n" + jsonl([b"oops"])
    report = check(data)
    assert report.examples == 11
    assert codes(report) == [(15, "invalid_json")]


def test_missing_trailing_newline_is_fine() -> None:
    report = check(jsonl(good(10)).rstrip(b"\n"))
    assert report.valid and report.examples == 10


def test_binary_garbage_is_invalid_utf8_or_json_per_line() -> None:
    garbage = bytes(range(256)).replace(b"\n", b"")
    report = check(jsonl([*good(10), garbage, b"\x00\x01\x02", b"\x89PNG\r"]))
    assert [line for line, _ in codes(report)] == [11, 12, 13]
    assert {c for _, c in codes(report)} <= {"invalid_utf8", "invalid_json"}
    assert codes(report)[0] == (11, "invalid_utf8")


def test_huge_line_is_reported_and_not_buffered() -> None:
    data = jsonl(good(5)) + b'{"messages": "' + b"x" * 5000 + b'"}\n' + jsonl(good(5))
    for chunk in (7, 100, 1000, None):
        report = check(data, chunk=chunk, max_line_bytes=1000)
        assert codes(report) == [(6, "line_too_long")], chunk
        assert report.examples == 11


def test_huge_last_line_without_newline() -> None:
    data = jsonl(good(10)) + b"y" * 5000
    report = check(data, chunk=64, max_line_bytes=1000)
    assert codes(report) == [(11, "line_too_long")]
    c = DatasetCheck(kind=None, models=TABLE, today=TODAY, max_line_bytes=1000)
    for i in range(0, len(data), 64):
        c.feed(data[i : i + 64])
        assert len(c._tail) <= 1000 + 64  # the partial line is dropped once over the cap


def test_empty_file() -> None:
    for data in (b"", b"\n\n  \r\n", b"\xef\xbb\xbf"):
        report = check(data)
        assert codes(report) == [(0, "empty_file")] and report.examples == 0


def test_too_few_examples() -> None:
    report = check(jsonl(good(9)))
    assert codes(report) == [(0, "too_few_examples")] and report.estimates == []


def test_file_level_error_comes_first() -> None:
    report = check(jsonl([*good(3), b"{"]))
    assert codes(report) == [(0, "too_few_examples"), (4, "invalid_json")]


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_chunk_size_does_not_change_the_report(size: int) -> None:
    rows: list[Any] = [*good(10), b"\xef\xbb\xbfbad", [1], example(3), b"", b'{"messages": [']
    data = b"\xef\xbb\xbf" + jsonl(rows).replace(b"\n", b"\r\n", 3)
    assert check(data, chunk=size) == check(data)


# --- warnings ---


def warning(report: DatasetReport, code: str) -> tuple[int, list[int]]:
    (w,) = [w for w in report.warnings if w.code == code]
    assert w.message
    return w.count, w.lines


def test_missing_system_and_user_messages_are_warned() -> None:
    rows = good(10)
    rows[2] = example(2, system=False)
    rows[5] = {
        "messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]
    }
    report = check(jsonl(rows))
    assert report.valid
    assert warning(report, "missing_system_message") == (1, [3])
    assert warning(report, "missing_user_message") == (1, [6])


def test_developer_message_counts_as_system() -> None:
    rows = good(10)
    rows[0]["messages"][0]["role"] = "developer"
    assert all(w.code != "missing_system_message" for w in check(jsonl(rows)).warnings)


def test_duplicates_are_warned_on_the_repeating_lines() -> None:
    rows: list[Any] = [*good(10), example(4), example(7), example(4)]
    report = check(jsonl(rows).replace(b"\n", b"\r\n", 11))
    assert warning(report, "duplicate_example") == (3, [11, 12, 13])


def test_example_too_long_is_warned_against_the_smallest_limit() -> None:
    rows = good(10)
    rows[4]["messages"][1]["content"] = "hee haw " * 17000  # > 16,385 tokens, < 65,536
    report = check(jsonl(rows))
    assert warning(report, "example_too_long") == (1, [5])
    over = {e.model: e.examples_over_limit for e in report.estimates}
    assert over["gpt-3.5-turbo-0125"] == 1 and over[MINI] == 0
    assert all(w.code != "example_too_long" for w in check(jsonl(rows), models=[MINI]).warnings)


# --- preference (DPO) ---


def pref(i: int = 0, **override: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "input": {"messages": [{"role": "user", "content": f"Say hi {i}"}]},
        "preferred_output": [{"role": "assistant", "content": "Hee-haw!"}],
        "non_preferred_output": [{"role": "assistant", "content": "Hello."}],
    }
    row.update(override)
    return row


def test_preference_set_is_detected_and_counted() -> None:
    rows = [pref(i) for i in range(10)]
    report = check(jsonl(rows))
    assert report.kind == "preference" and report.valid
    expected = sum(
        cookbook_tokens(r["input"]["messages"] + r["preferred_output"] + r["non_preferred_output"])
        for r in rows
    )
    assert report.tokens.total == expected


PREFERENCE_CASES: list[tuple[str, Any]] = [
    ("missing_preference_field", {k: v for k, v in pref().items() if k != "non_preferred_output"}),
    ("invalid_preference_field", pref(preferred_output={"role": "assistant", "content": "x"})),
    ("invalid_preference_field", pref(preferred_output=[{"role": "user", "content": "x"}])),
    ("invalid_preference_field", pref(non_preferred_output=[])),
    ("invalid_preference_field", pref(input="hi")),
    ("invalid_preference_field", pref(preferred_output=[{"role": "assistant", "content": ""}])),
    ("missing_messages_list", pref(input={"messages": []})),
    ("unrecognized_role", pref(input={"messages": [{"role": "ogre", "content": "x"}]})),
    ("data_type", [pref()]),
]


@pytest.mark.parametrize(
    ("code", "bad"), PREFERENCE_CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(PREFERENCE_CASES)]
)
def test_preference_errors(code: str, bad: Any) -> None:
    rows: list[Any] = [pref(i) for i in range(11)]
    rows.insert(3, bad)
    report = check(jsonl(rows), kind="preference")
    assert codes(report) == [(4, code)], report.errors


def test_chat_line_in_a_preference_set_is_missing_preference_fields() -> None:
    report = check(jsonl([pref(i) for i in range(10)] + [example()]))
    assert codes(report) == [(11, "missing_preference_field")]


# --- estimates ---


@pytest.mark.parametrize(
    ("n", "epochs"),
    [
        (1, 25),
        (3, 25),
        (4, 25),
        (5, 20),
        (20, 5),
        (33, 3),
        (34, 3),
        (8333, 3),
        (8334, 2),
        (10_000, 2),
        (12_500, 2),
        (12_501, 1),
        (20_000, 1),
        (100_000, 1),
    ],
)
def test_default_epochs_follow_the_cookbook_rule(n: int, epochs: int) -> None:
    assert default_epochs(n) == epochs


def test_estimate_arithmetic() -> None:
    rows = good(20)
    report = check(jsonl(rows), models=[MINI])
    (est,) = report.estimates
    billing = sum(cookbook_tokens(r["messages"]) for r in rows)
    assert (est.model, est.n_epochs, est.billing_tokens) == (MINI, 5, billing)
    assert est.trained_tokens == billing * 5
    assert est.cost_usd == round(billing * 5 * 5 / 1_000_000 + 1e-9, 2)
    assert est.examples_over_limit == 0 and not est.retired and est.notice is None


def test_estimate_with_explicit_epochs_from_report_or_counts() -> None:
    c = DatasetCheck(kind=None, models=TABLE, today=TODAY)
    c.feed(jsonl(good(20)))
    report = c.finish()
    info = TABLE.get(MINI)
    assert info is not None
    from_report = estimate(report, info, today=TODAY, n_epochs=7)
    from_counts = estimate(c.token_counts["o200k_base"], info, today=TODAY, n_epochs=7)
    assert from_report == from_counts
    assert from_report.trained_tokens == 7 * report.tokens.total


def test_billing_caps_each_example_at_the_limit() -> None:
    counts = TokenCounts(encoding="cl100k_base", histogram={100: 9, 20_000: 1})
    info = TABLE.get("gpt-3.5-turbo-0125")
    assert info is not None
    est = estimate(counts, info, today=TODAY)
    assert est.billing_tokens == 900 + 16385 and est.examples_over_limit == 1
    assert est.n_epochs == 10 and est.cost_usd == round(est.trained_tokens * 8 / 1e6, 2)


def test_cost_rounds_half_up_to_cents() -> None:
    info = TABLE.get(MINI)
    assert info is not None
    counts = TokenCounts(encoding="o200k_base", histogram={39102 // 3: 3})  # 39,102 tokens
    assert estimate(counts, info, today=TODAY, n_epochs=3).cost_usd == 0.59


def test_default_estimates_cover_models_not_retired() -> None:
    names = {e.model for e in check(jsonl(good(10))).estimates}
    assert names == {m.name for m in TABLE}
    later = {e.model for e in check(jsonl(good(10)), today=datetime.date(2026, 11, 1)).estimates}
    assert later == names - {"gpt-3.5-turbo-0125", "gpt-4.1-nano-2025-04-14"}


def test_retired_model_asked_for_is_flagged() -> None:
    report = check(jsonl(good(10)), models=["gpt-3.5-turbo"], today=datetime.date(2026, 11, 1))
    (est,) = report.estimates
    assert est.retired and est.shutdown == "2026-10-23"
    assert est.notice is not None and "retired on 2026-10-23" in est.notice


def test_closing_soon_is_noticed() -> None:
    report = check(jsonl(good(10)), models=[MINI], today=datetime.date(2026, 12, 1))
    (est,) = report.estimates
    assert not est.retired and est.notice is not None
    assert "2027-01-06 (in 36 days)" in est.notice and "2027-01-14" in est.notice


def test_unknown_model_is_refused_up_front() -> None:
    with pytest.raises(UnknownModel):
        DatasetCheck(kind=None, models=TABLE, estimate_models=["gpt-9"], today=TODAY)


def test_fine_tuned_model_is_priced_as_its_base() -> None:
    report = check(jsonl(good(10)), models=["ft:gpt-4.1-mini-2025-04-14:acme:shrek:abc"])
    assert [e.model for e in report.estimates] == [MINI]


def test_report_encodes_with_spec_field_names() -> None:
    wire = msgspec.json.decode(msgspec.json.encode(check(jsonl(good(10)), models=[MINI])))
    assert {
        "kind",
        "bytes",
        "sha256",
        "examples",
        "tokens",
        "warnings",
        "estimates",
        "errors",
        "error_counts",
        "valid",
    } <= set(wire)
    assert set(wire["tokens"]) == {"total", "min", "max", "mean", "p50", "p95"}
    assert {
        "model",
        "n_epochs",
        "billing_tokens",
        "trained_tokens",
        "cost_usd",
        "examples_over_limit",
    } <= set(wire["estimates"][0])
