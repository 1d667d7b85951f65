"""Dataset names: control characters, path separators and overlong names are refused before
the upload is stored; downloads carry a safe `filename*`."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from service.settings import Settings

JSONL = {"Content-Type": "application/jsonl"}


def chat_file(n: int = 12) -> bytes:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Question {i}?"},
                    {"role": "assistant", "content": f"Answer {i}."},
                ]
            }
        )
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


def nothing_stored(client: httpx.Client, settings: Settings) -> None:
    assert client.get("/v1/datasets").json()["data"] == []
    folder: Path = settings.data_dir / "datasets"
    assert not folder.exists() or [p for p in folder.iterdir()] == []


@pytest.mark.parametrize(
    "name",
    [
        "nul\x00.jsonl",
        "two\r\nlines.jsonl",
        "tab\t.jsonl",
        "../../etc/passwd",
        "a\\b.jsonl",
        "..",
        "x" * 256,
        "evil\u202elsnoj.exe",
        " ",
    ],
)
def test_an_unsafe_name_is_a_422_and_nothing_is_stored(
    client: httpx.Client, settings: Settings, name: str
) -> None:
    raw = client.post("/v1/datasets", content=chat_file(), headers=JSONL, params={"name": name})
    assert raw.status_code == 422, raw.text
    assert raw.json()["param"] == "name"
    form = client.post(
        "/v1/datasets", files={"file": ("d.jsonl", chat_file())}, data={"name": name}
    )
    assert form.status_code == 422, form.text
    nothing_stored(client, settings)


def test_a_multipart_file_name_keeps_only_its_last_path_part(client: httpx.Client) -> None:
    response = client.post(
        "/v1/datasets", files={"file": ("C:\\Users\\me\\donkey.jsonl", chat_file())}
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "donkey.jsonl"


def test_a_long_unicode_name_is_kept_and_downloads_with_filename_star(
    client: httpx.Client,
) -> None:
    name = "burro 🫏 “donkey” ñ.jsonl"
    created = client.post("/v1/datasets", content=chat_file(), headers=JSONL, params={"name": name})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name
    download = client.get(f"/v1/datasets/{created.json()['id']}/content")
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    star = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(star) == name.replace('"', "_")
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback.isascii() and "/" not in fallback
    assert download.content == chat_file()


def test_a_name_stored_before_the_rules_downloads_safely() -> None:
    from service.datasets.names import content_disposition

    header = content_disposition("../../etc/pass\r\nwd\x00")
    assert "/" not in header.split(";", 1)[1] and "\r" not in header and "\n" not in header
    assert "\x00" not in header
    assert 'filename="_.._etc_pass__wd_"' in header
