"""Shared wire helpers: lists in OpenAI's shape, body decoding with OpenAI-shaped 400s."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import msgspec
from litestar import Request
from litestar.di import NamedDependency

from sandbox.errors import bad_request
from sandbox.state import SandboxState

T = TypeVar("T")
# How handlers ask for the app's state (a named dependency, as Litestar 3 will require).
Sandbox: TypeAlias = NamedDependency[SandboxState]
R = TypeVar("R")


class ListPage(msgspec.Struct, frozen=True):
    object: str
    data: list[Any]
    has_more: bool


def page(
    items: Sequence[T],
    *,
    key: Callable[[T], str],
    render: Callable[[T], R],
    after: str | None,
    limit: int,
) -> ListPage:
    """One cursor page of `items` (in answer order): `limit` of those after `after`."""
    start = 0
    if after is not None:
        for index, item in enumerate(items):
            if key(item) == after:
                start = index + 1
                break
    limit = max(1, limit)
    chosen = items[start : start + limit]
    data = [render(item) for item in chosen]
    return ListPage(
        object="list",
        data=data,
        has_more=start + limit < len(items),
    )


async def decode_body(request: Request[Any, Any, Any], decoder: msgspec.json.Decoder[T]) -> T:
    """The JSON body as `T`, or the 400 OpenAI gives for a malformed body."""
    body = await request.body()
    if not body:
        raise bad_request("We could not parse the JSON body of your request. (HINT: empty body)")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise bad_request(f"Invalid request: {exc}", param=_param_of(str(exc))) from None
    except msgspec.DecodeError:
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)"
        ) from None


def _param_of(message: str) -> str | None:
    # msgspec says "... - at `$.field`" or "Object missing required field `field`".
    if "`$." in message:
        return message.split("`$.", 1)[1].split("`", 1)[0].split("[", 1)[0].split(".", 1)[0]
    if "field `" in message:
        return message.split("field `", 1)[1].split("`", 1)[0]
    return None


def sandbox_of(request: Request[Any, Any, Any]) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state
