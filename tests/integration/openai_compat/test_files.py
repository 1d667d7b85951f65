"""OpenAI's files API on Burro: a fine-tune file is a dataset, checked as it streams in."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.support.clients import tenant_sdk
from tests.support.data import TUTORIAL_MODEL, chat_file


def test_a_fine_tune_file_is_stored_as_a_dataset_seen_from_both_apis(
    sdk: openai.OpenAI, client: httpx.Client
) -> None:
    content = chat_file()
    uploaded = sdk.files.create(file=("donkey.jsonl", content), purpose="fine-tune")

    assert uploaded.object == "file"
    assert uploaded.purpose == "fine-tune"
    assert uploaded.status == "processed"
    assert uploaded.filename == "donkey.jsonl"
    assert uploaded.bytes == len(content)
    dataset = client.get(f"/v1/datasets/{uploaded.id}").json()
    assert dataset["examples"] == 12
    assert dataset["created_at"] == uploaded.created_at
    assert sdk.files.retrieve(uploaded.id) == uploaded
    assert sdk.files.content(uploaded.id).content == content


def test_the_same_bytes_uploaded_twice_are_one_file(sdk: openai.OpenAI) -> None:
    first = sdk.files.create(file=("a.jsonl", chat_file()), purpose="fine-tune")
    second = sdk.files.create(file=("b.jsonl", chat_file()), purpose="fine-tune")

    assert second.id == first.id
    assert [f.id for f in sdk.files.list()] == [first.id]


def test_an_invalid_file_is_a_400_naming_its_first_failing_lines_and_nothing_is_stored(
    sdk: openai.OpenAI, client: httpx.Client
) -> None:
    lines = chat_file().decode().splitlines()
    lines[1] = "{not json"
    lines[4] = json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
    body = ("\n".join(lines) + "\n").encode()

    with pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=("broken.jsonl", body), purpose="fine-tune")

    error = caught.value
    assert error.param == "file"
    assert error.code == "invalid_file"
    assert "line 2: invalid_json" in error.message
    assert "line 5: example_missing_assistant_message" in error.message
    assert "was not stored" in error.message
    assert sdk.files.list().data == []
    assert client.get("/v1/datasets").json()["data"] == []


def test_a_file_for_another_purpose_is_a_400_saying_which_purposes_burro_keeps(
    sdk: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=("batch.jsonl", chat_file()), purpose="batch")

    assert caught.value.param == "purpose"
    assert "'fine-tune'" in caught.value.message
    assert "'batch'" in caught.value.message
    assert sdk.files.list().data == []


def test_an_upload_without_a_purpose_is_a_400_naming_it(client: httpx.Client) -> None:
    response = client.post(
        "/v1/files",
        files={"file": ("donkey.jsonl", chat_file())},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "purpose"
    assert response.json()["error"]["type"] == "invalid_request_error"


# (Control characters cannot be tried here: httpx percent-encodes them in a part's file name.)
@pytest.mark.parametrize("name", ["x" * 256, "evil\u202elsnoj.exe", ".."])
def test_a_file_name_the_datasets_refuse_is_a_400_on_file_and_nothing_is_stored(
    sdk: openai.OpenAI, name: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=(name, chat_file()), purpose="fine-tune")

    assert caught.value.param == "file"
    assert caught.value.code == "invalid_file_name"
    assert sdk.files.list().data == []


def test_a_file_sent_with_a_path_keeps_its_last_part_and_downloads_with_a_safe_name(
    sdk: openai.OpenAI, client: httpx.Client
) -> None:
    uploaded = sdk.files.create(
        file=("C:\\Users\\me\\burro “donkey”.jsonl", chat_file()), purpose="fine-tune"
    )

    assert uploaded.filename == "burro “donkey”.jsonl"
    download = client.get(f"/v1/files/{uploaded.id}/content")
    disposition = download.headers["content-disposition"]
    assert "filename*=UTF-8''burro%20%E2%80%9Cdonkey%E2%80%9D.jsonl" in disposition
    assert 'filename="burro _donkey_.jsonl"' in disposition


def test_files_list_newest_first_by_pages_with_after_in_either_order(
    sdk: openai.OpenAI,
) -> None:
    ids = [
        sdk.files.create(file=(f"{i}.jsonl", chat_file(salt=str(i))), purpose="fine-tune").id
        for i in range(5)
    ]

    first = sdk.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2]
    assert first.has_more is True
    assert [f.id for f in sdk.files.list(limit=2)] == ids[::-1]  # the SDK pages on its own
    assert [f.id for f in sdk.files.list(limit=3, order="asc")] == ids
    after = sdk.files.list(limit=2, after=ids[3])
    assert [f.id for f in after.data] == [ids[2], ids[1]]
    assert sdk.files.list(purpose="fine-tune-results").data == []
    assert sdk.files.list(purpose="assistants").data == []


def test_a_deleted_file_is_gone_and_a_used_one_cannot_be_deleted(
    sdk: openai.OpenAI, training_file: str
) -> None:
    other = sdk.files.create(file=("other.jsonl", chat_file(salt="x")), purpose="fine-tune")
    sdk.fine_tuning.jobs.create(model=TUTORIAL_MODEL, training_file=training_file)

    deleted = sdk.files.delete(other.id)
    assert (deleted.id, deleted.deleted) == (other.id, True)
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(other.id)
    with pytest.raises(openai.ConflictError) as caught:
        sdk.files.delete(training_file)
    assert "unfinished fine-tuning job" in caught.value.message


def test_another_tenants_file_is_not_found(
    sdk: openai.OpenAI, other_sdk: openai.OpenAI, training_file: str
) -> None:
    for call in (
        other_sdk.files.retrieve,
        other_sdk.files.content,
        other_sdk.files.delete,
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call(training_file)
        assert caught.value.param == "id"
        assert caught.value.code == "not_found"
    assert other_sdk.files.list().data == []
    assert sdk.files.retrieve(training_file).id == training_file


def test_an_unknown_key_is_an_authentication_error(burro_url: str) -> None:
    with (
        tenant_sdk(burro_url, key="key-nobody") as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.files.list()
