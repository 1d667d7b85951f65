"""Long lines through the API: a line longer than any model could train on is `line_too_long`
on its own line while the rest of the file is still checked; a shorter long one is read and
warned about."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec
import pytest

from service.datasets.line_bound import LONGEST_TOKEN_BYTES
from service.settings import Settings
from tests.support.data import (
    JSONL_HEADERS,
    SMALL_LIMIT_TABLE,
    SMALL_TOKEN_LIMIT,
    chat_examples,
    jsonl,
)
from tests.support.fixtures import MakeClient, ServeBurro


def asking_at_length(text: str) -> dict[str, object]:
    """A chat example whose question is `text`."""
    example = chat_examples(1)[0]
    example["messages"][1]["content"] = text
    return example


@pytest.fixture
def small_table_client(
    settings: Settings, tmp_path: Path, serve_burro: ServeBurro, make_client: MakeClient
) -> httpx.Client:
    """Acme's client of a Burro whose model table allows SMALL_TOKEN_LIMIT tokens per example."""
    path = tmp_path / "models.toml"
    path.write_text(SMALL_LIMIT_TABLE)
    small = msgspec.structs.replace(settings, models_file=path)
    return make_client("acme", base_url=serve_burro(small))


def test_a_line_longer_than_any_model_could_train_on_is_refused_on_its_own_line(
    small_table_client: httpx.Client,
) -> None:
    bound = SMALL_TOKEN_LIMIT * LONGEST_TOKEN_BYTES * 2
    rows: list[dict[str, object] | bytes] = list(chat_examples(12))
    rows[3] = asking_at_length("hay " * (bound // 4 + 10))  # just over the bound
    rows[7] = b"{not json"
    response = small_table_client.post("/v1/datasets", content=jsonl(rows), headers=JSONL_HEADERS)
    assert response.status_code == 422
    assert [(e["line"], e["code"]) for e in response.json()["errors"]] == [
        (4, "line_too_long"),
        (8, "invalid_json"),
    ]
    assert str(bound) in response.json()["errors"][0]["message"]


def test_a_line_under_the_bound_is_read_and_warned_about_not_refused(
    small_table_client: httpx.Client,
) -> None:
    rows = chat_examples(12)
    rows[3] = asking_at_length("hay " * 2000)  # far over the token limit, under the byte bound
    response = small_table_client.post(
        "/v1/datasets/validate", content=jsonl(rows), headers=JSONL_HEADERS
    )
    report = response.json()
    assert report["valid"] is True
    assert "example_too_long" in [w["code"] for w in report["warnings"]]
