"""OpenAI's files API on Burro: a fine-tune file is a dataset, checked as it streams in."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.openai_compat.conftest import MODEL, sdk, training_jsonl


def test_a_fine_tune_file_is_stored_as_a_dataset_seen_from_both_apis(
    acme: openai.OpenAI, acme_http: httpx.Client
) -> None:
    content = training_jsonl()
    uploaded = acme.files.create(file=("donkey.jsonl", content), purpose="fine-tune")

    assert uploaded.object == "file"
    assert uploaded.purpose == "fine-tune"
    assert uploaded.status == "processed"
    assert uploaded.filename == "donkey.jsonl"
    assert uploaded.bytes == len(content)
    dataset = acme_http.get(f"/v1/datasets/{uploaded.id}").json()
    assert dataset["examples"] == 12
    assert dataset["created_at"] == uploaded.created_at
    assert acme.files.retrieve(uploaded.id) == uploaded
    assert acme.files.content(uploaded.id).content == content


def test_the_same_bytes_uploaded_twice_are_one_file(acme: openai.OpenAI) -> None:
    first = acme.files.create(file=("a.jsonl", training_jsonl()), purpose="fine-tune")
    second = acme.files.create(file=("b.jsonl", training_jsonl()), purpose="fine-tune")

    assert second.id == first.id
    assert [f.id for f in acme.files.list()] == [first.id]


def test_an_invalid_file_is_a_400_naming_its_first_failing_lines_and_nothing_is_stored(
    acme: openai.OpenAI, acme_http: httpx.Client
) -> None:
    lines = training_jsonl().decode().splitlines()
    lines[1] = "{not json"
    lines[4] = json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
    body = ("\n".join(lines) + "\n").encode()

    with pytest.raises(openai.BadRequestError) as caught:
        acme.files.create(file=("broken.jsonl", body), purpose="fine-tune")

    error = caught.value
    assert error.param == "file"
    assert error.code == "invalid_file"
    assert "line 2: invalid_json" in error.message
    assert "line 5: example_missing_assistant_message" in error.message
    assert "was not stored" in error.message
    assert acme.files.list().data == []
    assert acme_http.get("/v1/datasets").json()["data"] == []


def test_a_file_for_another_purpose_is_a_400_saying_which_purposes_burro_keeps(
    acme: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        acme.files.create(file=("batch.jsonl", training_jsonl()), purpose="batch")

    assert caught.value.param == "purpose"
    assert "'fine-tune'" in caught.value.message
    assert "'batch'" in caught.value.message
    assert acme.files.list().data == []


def test_an_upload_without_a_purpose_is_a_400_naming_it(burro: str) -> None:
    response = httpx.post(
        f"{burro}/v1/files",
        headers={"Authorization": "Bearer key-acme"},
        files={"file": ("donkey.jsonl", training_jsonl())},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "purpose"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_files_list_newest_first_by_pages_with_after_in_either_order(
    acme: openai.OpenAI,
) -> None:
    ids = [
        acme.files.create(file=(f"{i}.jsonl", training_jsonl(salt=str(i))), purpose="fine-tune").id
        for i in range(5)
    ]

    first = acme.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2]
    assert first.has_more is True
    assert [f.id for f in acme.files.list(limit=2)] == ids[::-1]  # the SDK pages on its own
    assert [f.id for f in acme.files.list(limit=3, order="asc")] == ids
    after = acme.files.list(limit=2, after=ids[3])
    assert [f.id for f in after.data] == [ids[2], ids[1]]
    assert acme.files.list(purpose="fine-tune-results").data == []
    assert acme.files.list(purpose="assistants").data == []


def test_a_deleted_file_is_gone_and_a_used_one_cannot_be_deleted(
    acme: openai.OpenAI, training_file: str
) -> None:
    other = acme.files.create(file=("other.jsonl", training_jsonl(salt="x")), purpose="fine-tune")
    acme.fine_tuning.jobs.create(model=MODEL, training_file=training_file)

    deleted = acme.files.delete(other.id)
    assert (deleted.id, deleted.deleted) == (other.id, True)
    with pytest.raises(openai.NotFoundError):
        acme.files.retrieve(other.id)
    with pytest.raises(openai.ConflictError) as caught:
        acme.files.delete(training_file)
    assert "unfinished fine-tuning job" in caught.value.message


def test_another_tenants_file_is_not_found(
    acme: openai.OpenAI, globex: openai.OpenAI, training_file: str
) -> None:
    for call in (
        globex.files.retrieve,
        globex.files.content,
        globex.files.delete,
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call(training_file)
        assert caught.value.param == "id"
        assert caught.value.code == "not_found"
    assert globex.files.list().data == []
    assert acme.files.retrieve(training_file).id == training_file


def test_an_unknown_key_is_an_authentication_error(burro: str) -> None:
    with sdk(burro, "key-nobody") as stranger, pytest.raises(openai.AuthenticationError):
        stranger.files.list()
