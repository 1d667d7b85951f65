"""JSON request bodies: nesting deeper than the decoder follows is the caller's error (400).

msgspec refuses to follow JSON deeper than Python's recursion limit (about 1,000 levels) and
raises RecursionError; left alone that would be a 500. Every Litestar-decoded body goes through
`BurroRequest.json`; the chat path and the dataset checks, which decode bodies themselves,
catch it where they decode.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from service.errors import BadRequest

TOO_DEEP = "The JSON body nests arrays or objects too deep to read (over about 1,000 levels)."


class JsonTooDeep(BadRequest):
    code = "json_too_deep"


class BurroRequest(Request[Any, Any, Any]):
    """Litestar's request, with a 400 for JSON nested too deep instead of a 500."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise JsonTooDeep(TOO_DEEP) from None
