"""Uploads: a large file sent in parts, assembled into a File when completed."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath

from sandbox.errors import bad_request, not_found
from sandbox.files import FileObject, check_purpose, render_file, store_file
from sandbox.records import StoredPart, StoredUpload
from sandbox.state import SandboxState, new_id
from sandbox.wire import Sandbox, decode_body

MAX_UPLOAD_BYTES = 8 * 1024**3
MAX_PART_BYTES = 64 * 1024**2
UPLOAD_LIFETIME = 3600


class CreateUpload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    filename: str
    purpose: str
    bytes: Annotated[int, msgspec.Meta(ge=0)]
    mime_type: str
    expires_after: dict[str, Any] | None = None


class CompleteUpload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    part_ids: list[str]
    md5: str | None = None


_CREATE = msgspec.json.Decoder(CreateUpload)
_COMPLETE = msgspec.json.Decoder(CompleteUpload)


class UploadObject(msgspec.Struct, frozen=True):
    id: str
    object: str
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: str
    file: FileObject | None


class PartObject(msgspec.Struct, frozen=True):
    id: str
    object: str
    created_at: int
    upload_id: str


def _render(sandbox: SandboxState, upload: StoredUpload) -> UploadObject:
    stored = sandbox.files.get(upload.file_id) if upload.file_id else None
    return UploadObject(
        id=upload.id,
        object="upload",
        bytes=upload.bytes,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
        filename=upload.filename,
        purpose=upload.purpose,
        status=upload.status,
        file=render_file(stored) if stored else None,
    )


def _pending(sandbox: SandboxState, upload_id: str) -> StoredUpload:
    upload = sandbox.uploads.get(upload_id)
    if upload is None:
        raise not_found(f"No such Upload object: {upload_id}", param="upload_id")
    if upload.status == "pending" and upload.expires_at <= sandbox.now_int():
        upload = msgspec.structs.replace(upload, status="expired")
        sandbox.uploads[upload.id] = upload
    if upload.status != "pending":
        raise bad_request(
            f"Upload {upload_id} is {upload.status}; only pending uploads can be changed.",
            param="upload_id",
        )
    return upload


@post("/", status_code=200)
async def create_upload(request: Request[Any, Any, Any], sandbox: Sandbox) -> UploadObject:
    body = await decode_body(request, _CREATE)
    check_purpose(body.purpose)
    if body.bytes > MAX_UPLOAD_BYTES:
        raise bad_request(
            f"Upload size {body.bytes} exceeds the maximum of {MAX_UPLOAD_BYTES} bytes.",
            param="bytes",
        )
    now = sandbox.now_int()
    upload = StoredUpload(
        id=new_id("upload_"),
        created_at=now,
        expires_at=now + UPLOAD_LIFETIME,
        filename=body.filename,
        purpose=body.purpose,
        bytes=body.bytes,
        mime_type=body.mime_type,
    )
    sandbox.uploads[upload.id] = upload
    return _render(sandbox, upload)


@post("/{upload_id:str}/parts", status_code=200)
async def add_part(
    upload_id: FromPath[str], request: Request[Any, Any, Any], sandbox: Sandbox
) -> PartObject:
    _pending(sandbox, upload_id)
    form = await request.form()
    data = form.get("data")
    if isinstance(data, UploadFile):
        content = await data.read()
        await data.close()
    elif isinstance(data, str):
        content = data.encode()
    else:
        raise bad_request("Missing required parameter: 'data'.", param="data")
    if len(content) > MAX_PART_BYTES:
        raise bad_request(
            f"Part size {len(content)} exceeds the maximum of {MAX_PART_BYTES} bytes.",
            param="data",
        )
    part = StoredPart(
        id=new_id("part_"), upload_id=upload_id, created_at=sandbox.now_int(), data=content
    )
    sandbox.parts[part.id] = part
    return PartObject(
        id=part.id, object="upload.part", created_at=part.created_at, upload_id=upload_id
    )


@post("/{upload_id:str}/complete", status_code=200)
async def complete_upload(
    upload_id: FromPath[str], request: Request[Any, Any, Any], sandbox: Sandbox
) -> UploadObject:
    upload = _pending(sandbox, upload_id)
    body = await decode_body(request, _COMPLETE)
    chunks: list[bytes] = []
    for part_id in body.part_ids:
        part = sandbox.parts.get(part_id)
        if part is None or part.upload_id != upload_id:
            raise bad_request(
                f"Part {part_id} does not belong to upload {upload_id}.", param="part_ids"
            )
        chunks.append(part.data)
    content = b"".join(chunks)
    if len(content) != upload.bytes:
        raise bad_request(
            f"The number of bytes uploaded ({len(content)}) does not match the number of bytes "
            f"specified ({upload.bytes}) when creating the Upload.",
            param="part_ids",
        )
    if body.md5 is not None and hashlib.md5(content, usedforsecurity=False).hexdigest() != (
        body.md5.lower()
    ):
        raise bad_request(
            "The md5 checksum of the uploaded bytes does not match the one given.", param="md5"
        )
    stored = store_file(sandbox, filename=upload.filename, purpose=upload.purpose, content=content)
    for part_id in [p.id for p in sandbox.parts.values() if p.upload_id == upload_id]:
        del sandbox.parts[part_id]
    upload = msgspec.structs.replace(upload, status="completed", file_id=stored.id)
    sandbox.uploads[upload_id] = upload
    return _render(sandbox, upload)


@post("/{upload_id:str}/cancel", status_code=200)
async def cancel_upload(upload_id: FromPath[str], sandbox: Sandbox) -> UploadObject:
    upload = msgspec.structs.replace(_pending(sandbox, upload_id), status="cancelled")
    sandbox.uploads[upload_id] = upload
    for part_id in [p.id for p in sandbox.parts.values() if p.upload_id == upload_id]:
        del sandbox.parts[part_id]
    return _render(sandbox, upload)


router = Router(
    path="/v1/uploads",
    route_handlers=[create_upload, add_part, complete_upload, cancel_upload],
)
