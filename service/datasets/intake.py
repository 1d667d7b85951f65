"""Reading an upload as it streams in: raw JSONL or a multipart form, size-capped, to disk."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from service.datasets.checks import DatasetCheck, DatasetReport
from service.datasets.format_hints import HEAD_BYTES
from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

RAW_TYPES = frozenset({"application/jsonl", "application/x-ndjson", "application/octet-stream"})
# Chunks are gathered to this size before a hop to the checking thread.
FEED_BYTES = 1024 * 1024
_MAX_FIELD_BYTES = 1024


class Intake:
    """The sink of one upload: checks every byte and (optionally) spools it to a file."""

    def __init__(self, check: DatasetCheck, spool_dir: Path | None, max_bytes: int) -> None:
        self.check = check
        self.max_bytes = max_bytes
        self.size = 0
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.head = bytearray()  # the body's first bytes, to tell CSV or an array from JSONL
        self._file: Any = None
        if spool_dir is not None:
            spool_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=spool_dir, prefix=".upload-", suffix=".part")
            self._file = os.fdopen(fd, "wb")
            self.path = Path(name)

    def feed(self, data: bytes) -> None:
        """Check and spool `data`; raises PayloadTooLarge past the limit. Runs in a thread."""
        self.size += len(data)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(
                f"The dataset is larger than the limit of {self.max_bytes} bytes.",
                limit_bytes=self.max_bytes,
            )
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.check.feed(data)
        if self._file is not None:
            self._file.write(data)

    def finish(self) -> DatasetReport:
        if self._file is not None:
            self._file.close()
            self._file = None
        return self.check.finish()

    def discard(self) -> None:
        """Forget everything: nothing of a rejected upload stays on disk."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


async def read_upload(
    content_type: str | None,
    content_length: int | None,
    chunks: AsyncIterator[bytes],
    intake: Intake,
) -> None:
    """Stream the body into `intake`, raw or as the `file` field of a multipart form."""
    media_type, options = parse_options_header(content_type or "")
    media = media_type.decode().lower()
    if content_length is not None and media in RAW_TYPES and content_length > intake.max_bytes:
        raise PayloadTooLarge(
            f"The dataset is larger than the limit of {intake.max_bytes} bytes.",
            limit_bytes=intake.max_bytes,
        )
    if media in RAW_TYPES:
        await _feed_buffered(chunks, intake.feed)
    elif media == "multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadRequest("multipart/form-data needs a boundary parameter.")
        await _read_multipart(boundary, chunks, intake)
    else:
        raise UnsupportedMediaType(
            f"Send the JSONL file raw ({', '.join(sorted(RAW_TYPES))}) "
            "or as the field 'file' of multipart/form-data.",
        )


async def _feed_buffered(chunks: AsyncIterator[bytes], feed: Any) -> None:
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) >= FEED_BYTES:
            await anyio.to_thread.run_sync(feed, bytes(buffer))
            buffer.clear()
    if buffer:
        await anyio.to_thread.run_sync(feed, bytes(buffer))


class _FormReader:
    """python-multipart callbacks: the `file` part goes to the intake, small fields are kept."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.part_name: str | None = None
        self.part_filename: str | None = None
        self.field_value = bytearray()
        self.file_parts = 0
        self.pending: list[bytes] = []  # file bytes parsed from the current chunk

    def on_part_begin(self) -> None:
        self.part_name, self.part_filename = None, None
        self.field_value.clear()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_field.lower() == b"content-disposition":
            _, params = parse_options_header(bytes(self.header_value))
            name, filename = params.get(b"name"), params.get(b"filename")
            self.part_name = name.decode("utf-8", "replace") if name is not None else None
            if filename is not None:
                self.part_filename = filename.decode("utf-8", "replace")
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        if self.part_name == "file":
            self.file_parts += 1
            if self.file_parts > 1:
                raise BadRequest("Send one file per request, in the field 'file'.")
            self.intake.filename = self.part_filename

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part_name == "file":
            self.pending.append(data[start:end])
        elif self.part_name is not None:
            self.field_value += data[start:end]
            if len(self.field_value) > _MAX_FIELD_BYTES:
                raise BadRequest(f"The form field {self.part_name!r} is too long.")

    def on_part_end(self) -> None:
        if self.part_name and self.part_name != "file":
            self.intake.fields[self.part_name] = self.field_value.decode("utf-8", "replace")


async def _read_multipart(boundary: bytes, chunks: AsyncIterator[bytes], intake: Intake) -> None:
    reader = _FormReader(intake)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": reader.on_part_begin,
            "on_header_field": reader.on_header_field,
            "on_header_value": reader.on_header_value,
            "on_header_end": reader.on_header_end,
            "on_headers_finished": reader.on_headers_finished,
            "on_part_data": reader.on_part_data,
            "on_part_end": reader.on_part_end,
        },
    )

    async def file_bytes() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            try:
                parser.write(chunk)
            except BadRequest:
                raise
            except Exception as exc:  # python-multipart raises its own parse errors
                raise BadRequest(f"The multipart body is malformed: {exc}") from None
            for piece in reader.pending:
                yield piece
            reader.pending.clear()
        parser.finalize()

    await _feed_buffered(file_bytes(), intake.feed)
    if reader.file_parts == 0:
        raise BadRequest("The form has no field 'file'.")
