"""Files and Uploads, through the official SDK."""

from __future__ import annotations

import hashlib

import openai
import pytest


def test_file_upload_retrieve_content_and_delete_round_trip(client: openai.OpenAI) -> None:
    content = b'{"messages": []}\n' * 3
    created = client.files.create(file=("donkey.jsonl", content), purpose="fine-tune")

    assert created.id.startswith("file-")
    assert (created.object, created.purpose, created.status) == ("file", "fine-tune", "processed")
    assert (created.filename, created.bytes) == ("donkey.jsonl", len(content))
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).content == content
    assert [f.id for f in client.files.list(purpose="fine-tune")] == [created.id]

    deleted = client.files.delete(created.id)

    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_files_are_listed_newest_first(client: openai.OpenAI) -> None:
    first = client.files.create(file=("a.jsonl", b"a"), purpose="fine-tune")
    second = client.files.create(file=("b.jsonl", b"b"), purpose="batch")

    assert [f.id for f in client.files.list()] == [second.id, first.id]


def test_unknown_purpose_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("a.jsonl", b"a"), purpose="donkeys")  # type: ignore[arg-type]

    assert caught.value.param == "purpose"


def test_upload_in_parts_assembles_a_file_with_the_bytes_in_order(client: openai.OpenAI) -> None:
    content = b"".join(f"line {i}\n".encode() for i in range(1000))
    upload = client.uploads.upload_file_chunked(
        file=content,
        filename="big.jsonl",
        bytes=len(content),
        mime_type="text/jsonl",
        purpose="fine-tune",
        part_size=1024,
        md5=hashlib.md5(content).hexdigest(),
    )

    assert upload.status == "completed"
    assert upload.file is not None
    assert (upload.file.filename, upload.file.bytes) == ("big.jsonl", len(content))
    assert client.files.content(upload.file.id).content == content


def test_completing_an_upload_with_the_wrong_size_is_refused(client: openai.OpenAI) -> None:
    upload = client.uploads.create(
        filename="a.jsonl", bytes=10, mime_type="text/jsonl", purpose="fine-tune"
    )
    part = client.uploads.parts.create(upload_id=upload.id, data=b"12345")

    with pytest.raises(openai.BadRequestError) as caught:
        client.uploads.complete(upload_id=upload.id, part_ids=[part.id])

    assert "does not match" in caught.value.message
    assert client.uploads.cancel(upload_id=upload.id).status == "cancelled"


def test_a_cancelled_upload_takes_no_more_parts(client: openai.OpenAI) -> None:
    upload = client.uploads.create(
        filename="a.jsonl", bytes=3, mime_type="text/jsonl", purpose="fine-tune"
    )
    client.uploads.cancel(upload_id=upload.id)

    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(upload_id=upload.id, data=b"abc")
