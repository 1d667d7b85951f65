"""`/v1/datasets` over HTTP: streamed upload, dedupe, 422 reports, limits, tenants."""

from __future__ import annotations

import hashlib
import json
import socket

import httpx
import msgspec
import pytest

from service.settings import Settings
from tests.support.api import stored_files
from tests.support.data import JSONL_HEADERS, chat_file
from tests.support.fixtures import MakeClient, ServeBurro
from tests.support.waiting import wait_for


def test_a_raw_upload_is_stored_counted_and_priced(client: httpx.Client) -> None:
    body = chat_file()
    response = client.post(
        "/v1/datasets", content=body, headers=JSONL_HEADERS, params={"name": "d.jsonl"}
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["id"].startswith("ds_")
    assert dataset["object"] == "dataset"
    assert dataset["name"] == "d.jsonl"
    assert dataset["kind"] == "chat"
    assert dataset["examples"] == 12
    assert dataset["bytes"] == len(body)
    assert dataset["sha256"] == hashlib.sha256(body).hexdigest()
    assert dataset["tokens"]["total"] > 0
    models = {e["model"] for e in dataset["estimates"]}
    assert "gpt-4.1-mini-2025-04-14" in models
    assert client.get(f"/v1/datasets/{dataset['id']}").json() == dataset
    content = client.get(f"/v1/datasets/{dataset['id']}/content")
    assert content.content == body


def test_a_multipart_upload_takes_its_name_from_the_form(client: httpx.Client) -> None:
    response = client.post(
        "/v1/datasets",
        files={"file": ("donkey.jsonl", chat_file(), "application/jsonl")},
        data={"kind": "chat"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "donkey.jsonl"
    assert response.json()["examples"] == 12


def test_the_same_content_again_answers_200_with_the_same_dataset(client: httpx.Client) -> None:
    first = client.post("/v1/datasets", content=chat_file(), headers=JSONL_HEADERS)
    again = client.post("/v1/datasets", content=chat_file(), headers=JSONL_HEADERS)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


def test_an_invalid_file_is_a_422_with_line_exact_errors_and_nothing_is_stored(
    client: httpx.Client, settings: Settings
) -> None:
    lines = chat_file().decode().splitlines()
    lines[2] = "{not json"
    lines[5] = json.dumps({"messages": [{"role": "robot", "content": "beep"}]})
    response = client.post("/v1/datasets", content="\n".join(lines).encode(), headers=JSONL_HEADERS)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [(e["line"], e["code"]) for e in problem["errors"]] == [
        (3, "invalid_json"),
        (6, "unrecognized_role"),
    ]
    assert problem["error_counts"] == {"invalid_json": 1, "unrecognized_role": 1}
    assert client.get("/v1/datasets").json()["data"] == []
    assert stored_files(settings) == []


def test_validate_reports_without_storing(client: httpx.Client, settings: Settings) -> None:
    good = client.post("/v1/datasets/validate", content=chat_file(), headers=JSONL_HEADERS)
    assert good.status_code == 200
    assert good.json()["valid"] is True
    assert good.json()["errors"] == []
    bad = client.post("/v1/datasets/validate", content=b"\xff\xfe garbage\n", headers=JSONL_HEADERS)
    assert bad.status_code == 200
    assert bad.json()["valid"] is False
    assert bad.json()["error_counts"]
    assert client.get("/v1/datasets").json()["data"] == []
    assert stored_files(settings) == []


def test_a_body_over_the_limit_is_a_413_and_nothing_is_stored(
    settings: Settings, serve_burro: ServeBurro, make_client: MakeClient
) -> None:
    small = msgspec.structs.replace(settings, max_dataset_bytes=1000)
    http = make_client("acme", base_url=serve_burro(small))
    raw = http.post("/v1/datasets", content=chat_file(50), headers=JSONL_HEADERS)
    assert raw.status_code == 413
    chunked = http.post("/v1/datasets", content=iter([chat_file(50)]), headers=JSONL_HEADERS)
    assert chunked.status_code == 413
    form = http.post("/v1/datasets", files={"file": ("f.jsonl", chat_file(50))})
    assert form.status_code == 413
    assert stored_files(small) == []


def test_an_unsupported_media_type_is_a_415(client: httpx.Client) -> None:
    response = client.post(
        "/v1/datasets", content=chat_file(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 415


@pytest.mark.parametrize("path", ["/v1/datasets", "/v1/datasets/validate"])
def test_an_unknown_estimate_model_is_a_422_not_a_500(
    client: httpx.Client, settings: Settings, path: str
) -> None:
    """Found by the fuzzer: `?model=` naming no model in the price table was a 500."""
    response = client.post(
        path, content=chat_file(), headers=JSONL_HEADERS, params={"model": "nope"}
    )
    assert response.status_code == 422
    assert response.json()["param"] == "model"
    assert stored_files(settings) == []


def test_a_form_without_a_file_is_a_400(client: httpx.Client) -> None:
    response = client.post("/v1/datasets", files={"other": ("x", b"y")})
    assert response.status_code == 400


def test_another_tenants_dataset_is_a_404(client: httpx.Client, other_client: httpx.Client) -> None:
    dataset = client.post("/v1/datasets", content=chat_file(), headers=JSONL_HEADERS).json()
    for path in (f"/v1/datasets/{dataset['id']}", f"/v1/datasets/{dataset['id']}/content"):
        assert other_client.get(path).status_code == 404
    assert other_client.delete(f"/v1/datasets/{dataset['id']}").status_code == 404
    assert other_client.get("/v1/datasets").json()["data"] == []


def test_delete_removes_the_dataset_and_its_bytes(client: httpx.Client, settings: Settings) -> None:
    dataset = client.post("/v1/datasets", content=chat_file(), headers=JSONL_HEADERS).json()
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    assert stored_files(settings) == []


def test_lists_page_newest_first(client: httpx.Client) -> None:
    ids = [
        client.post("/v1/datasets", content=chat_file(salt=str(i)), headers=JSONL_HEADERS).json()[
            "id"
        ]
        for i in range(3)
    ]
    first = client.get("/v1/datasets", params={"limit": 2}).json()
    assert [d["id"] for d in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = client.get("/v1/datasets", params={"limit": 2, "after": first["data"][-1]["id"]}).json()
    assert [d["id"] for d in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False


def test_an_idempotency_key_replays_the_first_answer(client: httpx.Client) -> None:
    headers = {**JSONL_HEADERS, "Idempotency-Key": "upload-1"}
    first = client.post("/v1/datasets", content=chat_file(), headers=headers)
    again = client.post("/v1/datasets", content=chat_file(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    other = client.post("/v1/datasets", content=chat_file(salt="x"), headers=headers)
    assert other.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xef\xbb\xbf" + chat_file(), id="byte-order-mark"),
        pytest.param(chat_file().replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(chat_file().replace(b"\n", b"\n\n"), id="blank-lines"),
        pytest.param(chat_file().rstrip(b"\n"), id="no-trailing-newline"),
    ],
)
def test_harmless_file_quirks_are_accepted(client: httpx.Client, body: bytes) -> None:
    response = client.post("/v1/datasets", content=body, headers=JSONL_HEADERS)
    assert response.status_code == 201, response.text
    assert response.json()["examples"] == 12


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"", "empty_file", id="empty"),
        pytest.param(b"[" + chat_file().replace(b"\n", b",")[:-1] + b"]", "data_type", id="array"),
        pytest.param(bytes(range(256)) * 40, "invalid_utf8", id="binary"),
        pytest.param(chat_file(3), "too_few_examples", id="three-examples"),
    ],
)
def test_malformed_files_get_a_422_never_a_5xx(
    client: httpx.Client, body: bytes, code: str
) -> None:
    response = client.post("/v1/datasets", content=body, headers=JSONL_HEADERS)
    assert response.status_code == 422, response.text
    assert code in response.json()["error_counts"]


def test_one_100_mb_line_is_a_422_not_a_crash(client: httpx.Client, settings: Settings) -> None:
    huge = b'{"messages": [{"role": "user", "content": "' + b"a" * (100 * 1024 * 1024) + b'"}]}\n'
    response = client.post("/v1/datasets", content=huge + chat_file(), headers=JSONL_HEADERS)
    assert response.status_code == 422
    assert response.json()["errors"][0]["line"] == 1
    assert stored_files(settings) == []


def test_a_body_cut_off_mid_upload_stores_nothing(
    burro_url: str, settings: Settings, client: httpx.Client
) -> None:
    host, port = burro_url.removeprefix("http://").split(":")
    body = chat_file(2000)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/datasets HTTP/1.1\r\nHost: burro\r\nAuthorization: Bearer key-acme\r\n"
            b"Content-Type: application/jsonl\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        # The upload is being spooled: now hang up in the middle of it.
        wait_for(lambda: stored_files(settings), what="the upload to be spooled")
    wait_for(lambda: not stored_files(settings), what="the spooled bytes to be removed")
    assert client.get("/v1/datasets").json()["data"] == []
    assert client.post("/v1/datasets", content=body, headers=JSONL_HEADERS).status_code == 201
