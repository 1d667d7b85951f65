"""Files: what a caller uploads for training, and the result files jobs write."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery

from sandbox.errors import bad_request, not_found
from sandbox.records import StoredFile
from sandbox.state import SandboxState, new_id
from sandbox.wire import ListPage, Sandbox, page

PURPOSES = frozenset(
    {
        "assistants",
        "assistants_output",
        "batch",
        "batch_output",
        "fine-tune",
        "fine-tune-results",
        "vision",
        "user_data",
        "evals",
    }
)


class FileObject(msgspec.Struct, frozen=True):
    id: str
    object: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    expires_at: int | None
    status_details: str | None


class FileDeleted(msgspec.Struct, frozen=True):
    id: str
    object: str
    deleted: bool


def render_file(stored: StoredFile) -> FileObject:
    return FileObject(
        id=stored.id,
        object="file",
        bytes=len(stored.content),
        created_at=stored.created_at,
        filename=stored.filename,
        purpose=stored.purpose,
        status="processed",
        expires_at=None,
        status_details=None,
    )


def store_file(sandbox: SandboxState, *, filename: str, purpose: str, content: bytes) -> StoredFile:
    stored = StoredFile(
        id=new_id("file-"),
        created_at=sandbox.now_int(),
        filename=filename,
        purpose=purpose,
        content=content,
    )
    sandbox.files[stored.id] = stored
    return stored


def get_file(sandbox: SandboxState, file_id: str) -> StoredFile:
    stored = sandbox.files.get(file_id)
    if stored is None:
        raise not_found(f"No such File object: {file_id}", param="id")
    return stored


def check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise bad_request(
            f"'{purpose}' is not one of {sorted(PURPOSES)} - 'purpose'", param="purpose"
        )


@post("/", status_code=200)
async def create_file(request: Request[Any, Any, Any], sandbox: Sandbox) -> FileObject:
    form = await request.form()
    upload = form.get("file")
    purpose = form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise bad_request("Missing required parameter: 'file'.", param="file")
    if not isinstance(purpose, str):
        raise bad_request("Missing required parameter: 'purpose'.", param="purpose")
    check_purpose(purpose)
    content = await upload.read()
    await upload.close()
    stored = store_file(
        sandbox, filename=upload.filename or "upload", purpose=purpose, content=content
    )
    return render_file(stored)


@get("/")
async def list_files(
    sandbox: Sandbox,
    after: FromQuery[str | None] = None,
    limit: FromQuery[int] = 10000,
    order: FromQuery[str] = "desc",
    purpose: FromQuery[str | None] = None,
) -> ListPage:
    items = [f for f in sandbox.files.values() if purpose is None or f.purpose == purpose]
    if order != "asc":
        items.reverse()
    return page(items, key=lambda f: f.id, render=render_file, after=after, limit=limit)


@get("/{file_id:str}")
async def retrieve_file(file_id: FromPath[str], sandbox: Sandbox) -> FileObject:
    return render_file(get_file(sandbox, file_id))


@get("/{file_id:str}/content")
async def file_content(file_id: FromPath[str], sandbox: Sandbox) -> Response[bytes]:
    stored = get_file(sandbox, file_id)
    return Response(content=stored.content, media_type="application/octet-stream")


@delete("/{file_id:str}", status_code=200)
async def delete_file(file_id: FromPath[str], sandbox: Sandbox) -> FileDeleted:
    get_file(sandbox, file_id)
    del sandbox.files[file_id]
    return FileDeleted(id=file_id, object="file", deleted=True)


router = Router(
    path="/v1/files",
    route_handlers=[create_file, list_files, retrieve_file, file_content, delete_file],
)
