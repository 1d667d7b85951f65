"""Dataset names: what a name may hold, and how it goes back out as a download's file name.

A name is a label that callers read back and that `GET …/content` offers as the file name, so
it is refused (422, `param: name`) when it holds control characters (NUL, CR, LF, …),
direction overrides that disguise what it says, or a path separator, or is longer than
`MAX_NAME_CHARS`. A multipart file's name is taken as browsers send it: its last path part.
Names stored before these rules are made safe again on the way out (`content_disposition`).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from service.errors import Unprocessable

MAX_NAME_CHARS = 255
DEFAULT_NAME = "dataset.jsonl"
# Bidirectional overrides and isolates: "evil\u202elsnoj.exe" reads as "evilexe.jsonl".
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class InvalidName(Unprocessable):
    code = "invalid_name"


def _unsafe_character(name: str) -> str | None:
    for char in name:
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            return f"the control character U+{ord(char):04X}"
        if char in "/\\":
            return f"the path separator {char!r}"
    return None


def check_name(name: str) -> str:
    """`name` if it can name a dataset, else InvalidName saying why."""
    if not name.strip():
        raise InvalidName("name: must not be empty.", param="name")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidName(f"name: {len(name)} characters; at most {MAX_NAME_CHARS}.", param="name")
    unsafe = _unsafe_character(name)
    if unsafe is not None:
        raise InvalidName(f"name: holds {unsafe}; use a plain file name.", param="name")
    if name in (".", ".."):
        raise InvalidName("name: '.' and '..' are not file names.", param="name")
    return name


def uploaded_file_name(filename: str) -> str:
    """A multipart part's file name, as a name: its last path part (some clients send paths)."""
    return filename.replace("\\", "/").rsplit("/", 1)[-1]


def download_name(name: str) -> str:
    """`name` with anything a file system or a header could misread replaced by '_'."""
    safe = "".join(
        "_" if unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS or c in '/\\"' else c
        for c in name
    ).lstrip(".")
    return safe[:MAX_NAME_CHARS] or DEFAULT_NAME


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII `filename` and the exact UTF-8 `filename*` (RFC 6266)."""
    safe = download_name(name)
    ascii_fallback = "".join(c if " " <= c < "\x7f" else "_" for c in safe)
    return f"attachment; filename=\"{ascii_fallback}\"; filename*=UTF-8''{quote(safe, safe='')}"
