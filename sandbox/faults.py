"""Test controls outside /v1: injected faults, request counts, and the checks that run before
every /v1 request (counting, the API key, faults)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import msgspec
from litestar import Request, Response, Router, delete, get, post

from sandbox.state import FaultRule, SandboxState
from sandbox.wire import Sandbox, decode_body, sandbox_of
from service.openai_shapes import OpenAIError, error_response


class FaultIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path_prefix: str = "/v1/"
    method: str | None = None
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    count: Annotated[int, msgspec.Meta(ge=1)] = 1
    delay: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    # Sent as `retry-after` with a 429 (seconds; the SDK honours it).
    retry_after: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class FaultsOut(msgspec.Struct, frozen=True):
    faults: list[FaultIn]


class StatsOut(msgspec.Struct, frozen=True):
    requests: dict[str, int]
    total: int
    # Chat completions answered, by model and by the text of their last user message.
    chat_prompts: dict[str, dict[str, int]] = {}


_FAULT = msgspec.json.Decoder(FaultIn)

_MESSAGES = {
    429: (
        "Rate limit reached for requests. Please try again later.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def _fault_error(rule: FaultRule) -> OpenAIError:
    status = rule.status or 500
    message, kind, code = _MESSAGES.get(
        status,
        (
            f"Injected fault ({status}).",
            "server_error" if status >= 500 else "invalid_request_error",
            None,
        ),
    )
    headers = {"retry-after": f"{rule.retry_after:g}"} if status == 429 else None
    return OpenAIError(status, message, type=kind, code=code, headers=headers)


def _check_key(sandbox: SandboxState, request: Request[Any, Any, Any]) -> Response[Any] | None:
    expected = sandbox.config.api_key
    if expected is None:
        return None
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        return error_response(
            OpenAIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        )
    given = header[7:].strip()
    if given != expected:
        shown = f"{given[:3]}{'*' * 4}{given[-4:]}" if len(given) > 8 else "****"
        return error_response(
            OpenAIError(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        )
    return None


async def before_request(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Count the request by route, then check the key, then apply the first matching fault."""
    path = request.url.path
    if not path.startswith("/v1/"):
        return None
    sandbox = sandbox_of(request)
    route = f"{request.method} {request.scope.get('path_template', path)}"
    sandbox.stats[route] = sandbox.stats.get(route, 0) + 1
    refused = _check_key(sandbox, request)
    if refused is not None:
        return refused
    for rule in sandbox.faults:
        if (
            rule.remaining > 0
            and path.startswith(rule.path_prefix)
            and (rule.method is None or rule.method.upper() == request.method)
        ):
            rule.remaining -= 1
            if rule.delay:
                with anyio.move_on_after(rule.delay):
                    await sandbox.faults_cleared().wait()
            if rule.status is not None:
                return error_response(_fault_error(rule))
            break
    sandbox.faults[:] = [rule for rule in sandbox.faults if rule.remaining > 0]
    return None


@post("/faults", status_code=200)
async def add_fault(request: Request[Any, Any, Any], sandbox: Sandbox) -> FaultIn:
    fault = await decode_body(request, _FAULT)
    sandbox.faults.append(
        FaultRule(
            path_prefix=fault.path_prefix,
            method=fault.method,
            status=fault.status,
            remaining=fault.count,
            delay=fault.delay,
            retry_after=fault.retry_after,
        )
    )
    return fault


@get("/faults")
async def list_faults(sandbox: Sandbox) -> FaultsOut:
    return FaultsOut(
        faults=[
            FaultIn(
                path_prefix=r.path_prefix,
                method=r.method,
                status=r.status,
                count=r.remaining,
                delay=r.delay,
                retry_after=r.retry_after,
            )
            for r in sandbox.faults
        ]
    )


@delete("/faults", status_code=204)
async def clear_faults(sandbox: Sandbox) -> None:
    """Remove every fault; requests a delay fault holds go on at once."""
    sandbox.clear_faults()


@get("/stats")
async def stats(sandbox: Sandbox) -> StatsOut:
    return StatsOut(
        requests=dict(sandbox.stats),
        total=sum(sandbox.stats.values()),
        chat_prompts={m: dict(p) for m, p in sandbox.chat_prompts.items()},
    )


@delete("/stats", status_code=204)
async def reset_stats(sandbox: Sandbox) -> None:
    sandbox.stats.clear()
    sandbox.chat_prompts.clear()


router = Router(
    path="/sandbox", route_handlers=[add_fault, list_faults, clear_faults, stats, reset_stats]
)
