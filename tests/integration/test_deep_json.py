"""JSON nested deeper than the decoder follows is bad input: a 4xx everywhere, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.support.data import JSONL_HEADERS, chat_examples, jsonl

# Past the decoder's ~1,000 levels, and under every body limit (an alias body takes 4 kB).
DEPTH = 2_000
DEEP_ARRAY = "[" * DEPTH + "]" * DEPTH
DEEP_OBJECT = '{"a":' * DEPTH + "1" + "}" * DEPTH


def dataset_with_deep_line(deep: str) -> bytes:
    """Twelve chat examples, the fifth of which nests `deep` in its messages."""
    rows: list[dict[str, object] | bytes] = list(chat_examples(12))
    rows[4] = ('{"messages": ' + deep + "}").encode()
    return jsonl(rows)


@pytest.mark.parametrize("deep", [DEEP_ARRAY, DEEP_OBJECT], ids=["arrays", "objects"])
def test_a_deeply_nested_dataset_line_is_a_422_naming_its_line(
    client: httpx.Client, deep: str
) -> None:
    body = dataset_with_deep_line(deep)
    stored = client.post("/v1/datasets", content=body, headers=JSONL_HEADERS)
    assert stored.status_code == 422, stored.text[:500]
    assert [(e["line"], e["code"]) for e in stored.json()["errors"]] == [(5, "invalid_json")]
    assert "deep" in stored.json()["errors"][0]["message"]
    report = client.post("/v1/datasets/validate", content=body, headers=JSONL_HEADERS)
    assert report.status_code == 200
    assert report.json()["error_counts"] == {"invalid_json": 1}


@pytest.mark.parametrize(
    ("method", "path", "deep"),
    [
        ("POST", "/v1/jobs", DEEP_ARRAY),
        ("POST", "/v1/jobs", DEEP_OBJECT),
        ("POST", "/v1/evaluations", DEEP_ARRAY),
        ("POST", "/v1/evaluations", DEEP_OBJECT),
        ("POST", "/v1/webhook-endpoints", DEEP_ARRAY),
        ("POST", "/v1/webhook-endpoints", DEEP_OBJECT),
        ("PUT", "/v1/aliases/donkey", DEEP_ARRAY),
    ],
    ids=[
        "jobs",
        "jobs-objects",
        "evaluations",
        "evaluations-objects",
        "webhooks",
        "webhooks-objects",
        "aliases",
    ],
)
def test_a_deeply_nested_body_is_a_400_problem(
    client: httpx.Client, method: str, path: str, deep: str
) -> None:
    for body in (deep, '{"metadata": ' + deep + "}"):
        response = client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (path, response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "deep" in response.json()["detail"]


@pytest.mark.parametrize("deep", [DEEP_ARRAY, DEEP_OBJECT], ids=["arrays", "objects"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/fine_tuning/jobs"])
def test_a_deeply_nested_body_on_openais_paths_is_a_400_in_openais_shape(
    client: httpx.Client, path: str, deep: str
) -> None:
    # Raw, not through the openai SDK: its json.dumps cannot encode a body this deep.
    raw = client.post(
        path,
        content='{"model": "donkey", "messages": ' + deep + "}",
        headers={"Content-Type": "application/json"},
    )
    assert raw.status_code == 400, raw.text[:300]
    error = raw.json()["error"]
    assert error["type"] == "invalid_request_error" and "deep" in error["message"]
