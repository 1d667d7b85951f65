"""Files and Uploads, through the official SDK."""

from __future__ import annotations

import hashlib

import openai
import pytest


def test_file_upload_retrieve_content_and_delete_round_trip(upstream: openai.OpenAI) -> None:
    content = b'{"messages": []}\n' * 3
    created = upstream.files.create(file=("donkey.jsonl", content), purpose="fine-tune")

    assert created.id.startswith("file-")
    assert (created.object, created.purpose, created.status) == ("file", "fine-tune", "processed")
    assert (created.filename, created.bytes) == ("donkey.jsonl", len(content))
    assert upstream.files.retrieve(created.id) == created
    assert upstream.files.content(created.id).content == content
    assert [f.id for f in upstream.files.list(purpose="fine-tune")] == [created.id]

    deleted = upstream.files.delete(created.id)

    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError):
        upstream.files.retrieve(created.id)


def test_files_are_listed_newest_first(upstream: openai.OpenAI) -> None:
    first = upstream.files.create(file=("a.jsonl", b"a"), purpose="fine-tune")
    second = upstream.files.create(file=("b.jsonl", b"b"), purpose="batch")

    assert [f.id for f in upstream.files.list()] == [second.id, first.id]


def test_unknown_purpose_is_a_400(upstream: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        upstream.files.create(file=("a.jsonl", b"a"), purpose="donkeys")  # type: ignore[arg-type]

    assert caught.value.param == "purpose"


def test_upload_in_parts_assembles_a_file_with_the_bytes_in_order(upstream: openai.OpenAI) -> None:
    content = b"".join(f"line {i}\n".encode() for i in range(1000))
    upload = upstream.uploads.upload_file_chunked(
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
    assert upstream.files.content(upload.file.id).content == content


def test_completing_an_upload_with_the_wrong_size_is_refused(upstream: openai.OpenAI) -> None:
    upload = upstream.uploads.create(
        filename="a.jsonl", bytes=10, mime_type="text/jsonl", purpose="fine-tune"
    )
    part = upstream.uploads.parts.create(upload_id=upload.id, data=b"12345")

    with pytest.raises(openai.BadRequestError) as caught:
        upstream.uploads.complete(upload_id=upload.id, part_ids=[part.id])

    assert "does not match" in caught.value.message
    assert upstream.uploads.cancel(upload_id=upload.id).status == "cancelled"


def test_a_cancelled_upload_takes_no_more_parts(upstream: openai.OpenAI) -> None:
    upload = upstream.uploads.create(
        filename="a.jsonl", bytes=3, mime_type="text/jsonl", purpose="fine-tune"
    )
    upstream.uploads.cancel(upload_id=upload.id)

    with pytest.raises(openai.BadRequestError):
        upstream.uploads.parts.create(upload_id=upload.id, data=b"abc")
