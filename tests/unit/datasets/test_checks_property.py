"""Property: whatever JSON value a line holds, the checker accepts it or reports it, never
neither; and a line that is not an object is always `data_type`."""

from __future__ import annotations

import datetime
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.datasets.checks import DatasetCheck
from service.models import ModelTable

TABLE = ModelTable.load()
TODAY = datetime.date(2025, 11, 26)
# Below the 100 errors a report lists, so every failing line can be seen.
MAX_LINES = 40

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "robot", ""])
messages = st.fixed_dictionaries(
    {"role": roles, "content": st.none() | st.text(max_size=20) | json_values}
)
# Shaped like chat examples, so that the accepting path is taken as well as the refusing one.
chat_like = st.fixed_dictionaries({"messages": st.lists(messages, max_size=4)}) | st.builds(
    lambda question, answer: {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    },
    st.text(max_size=30),
    st.text(max_size=30),
)


def _check(values: list[Any]) -> tuple[DatasetCheck, Any]:
    checker = DatasetCheck(kind=None, models=TABLE, today=TODAY)
    checker.feed(b"".join(json.dumps(v).encode() + b"\n" for v in values))
    return checker, checker.finish()


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values | chat_like, min_size=1, max_size=MAX_LINES))
def test_every_json_line_is_accepted_or_reported_once(values: list[Any]) -> None:
    checker, report = _check(values)

    reported = [e.line for e in report.errors if e.line > 0]
    accepted = [counts.examples for counts in checker.token_counts.values()]
    assert report.examples == len(values)
    assert len(reported) == len(set(reported)), "one error per failing line"
    assert all(n == len(values) - len(reported) for n in accepted), (accepted, report.errors)
    line_codes = {e.code for e in report.errors if e.line > 0}
    assert sum(report.error_counts.get(code, 0) for code in line_codes) == len(reported)
    for number, value in enumerate(values, 1):
        if not isinstance(value, dict):
            assert (number, "data_type") in {(e.line, e.code) for e in report.errors}, value


@given(st.sampled_from([None, 0, 1.5, "text", [], [{"messages": []}], True]), st.integers(1, 12))
def test_a_line_that_is_not_an_object_is_data_type_at_any_line(value: Any, at: int) -> None:
    valid = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hee"}]
    }
    values: list[Any] = [valid] * 12
    values.insert(at - 1, value)

    _, report = _check(values)

    assert [(e.line, e.code) for e in report.errors] == [(at, "data_type")]
    assert report.examples == 13
