"""Dataset names: control characters, path separators and overlong names are refused before
the upload is stored; downloads carry a safe `filename*`."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pytest

from service.settings import Settings
from tests.support.api import stored_files
from tests.support.data import JSONL_HEADERS, chat_file


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
    raw = client.post(
        "/v1/datasets", content=chat_file(), headers=JSONL_HEADERS, params={"name": name}
    )
    assert raw.status_code == 422, raw.text
    assert raw.json()["param"] == "name"
    form = client.post(
        "/v1/datasets", files={"file": ("d.jsonl", chat_file())}, data={"name": name}
    )
    assert form.status_code == 422, form.text
    assert client.get("/v1/datasets").json()["data"] == []
    assert stored_files(settings) == []


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
    created = client.post(
        "/v1/datasets", content=chat_file(), headers=JSONL_HEADERS, params={"name": name}
    )
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
