"""Chat completions and models: a fine-tuned model answers with the reply of its closest training
example; a base model gives a deterministic stand-in answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath
from litestar.response import Stream
from rapidfuzz import fuzz, process, utils

from sandbox import training
from sandbox.datasets import text_of
from sandbox.errors import bad_request
from sandbox.models_catalog import BASE_CREATED, BASE_MODELS, is_base_model
from sandbox.state import SandboxState, new_id
from sandbox.wire import Sandbox
from service.openai_shapes import ChatChunks, OpenAIError

_BODY = msgspec.json.Decoder(dict[str, Any])
_ENCODE = msgspec.json.Encoder()
# Streamed answers go out in pieces of this many words.
_WORDS_PER_CHUNK = 4


class Model(msgspec.Struct, frozen=True):
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(msgspec.Struct, frozen=True):
    object: str
    data: list[Model]


def _model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def _fine_tuned_reply(sandbox: SandboxState, model: str, prompt: str) -> str | None:
    """The reply of `model` if it is a sandbox fine-tuned model (or checkpoint) that exists now;
    None if it is not one; 404 if it is not ready."""
    job_id = sandbox.model_jobs.get(model)
    if job_id is None:
        return None
    job = training.advance(sandbox, job_id)
    if job.status != "succeeded":
        raise _model_not_found(model)
    indexed = sandbox.models[job.fine_tuned_model_name]
    key = utils.default_process(prompt)
    reply = indexed.exact.get(key)
    if reply is not None:
        return reply
    if not indexed.prompts:
        return "(sandbox) This model has no training examples to answer from."
    best = process.extractOne(key, indexed.prompts, scorer=fuzz.WRatio, processor=None)
    return indexed.replies[best[2]] if best is not None else indexed.replies[0]


def _answer(sandbox: SandboxState, model: str, prompt: str) -> str:
    reply = _fine_tuned_reply(sandbox, model, prompt)
    if reply is not None:
        return reply
    if model.startswith("ft:") or not is_base_model(model):
        raise _model_not_found(model)
    return f"(base model {model}) You said: {prompt[:200]}"


def _tokens(text: str) -> int:
    # About four characters a token: cheap, and good enough for a stand-in usage report.
    return max(1, (len(text) + 3) // 4)


def _parse(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    messages = body.get("messages")
    if messages is None:
        raise bad_request(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "Invalid 'messages': expected a non-empty array.",
            param="messages",
            code="invalid_value",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(
                f"Invalid 'messages[{index}]': each message needs a 'role'.",
                param=f"messages[{index}]",
                code="invalid_value",
            )
    return model, messages


def _limit(answer: str, body: dict[str, Any]) -> tuple[str, str]:
    """Cut the answer to max_completion_tokens (or max_tokens), as the real API does."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and _tokens(answer) > limit:
        return answer[: limit * 4], "length"
    return answer, "stop"


@post("/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any], sandbox: Sandbox) -> Response[Any]:
    raw = await request.body()
    try:
        body = _BODY.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise bad_request("We could not parse the JSON body of your request.") from None
    model, messages = _parse(body)
    prompt = ""
    prompt_tokens = 3
    for message in messages:
        content = text_of(message.get("content"))
        prompt_tokens += 3 + _tokens(content)
        if message.get("role") == "user":
            prompt = content
    asked = sandbox.chat_prompts.setdefault(model, {})
    asked[prompt] = asked.get(prompt, 0) + 1
    answer, finish_reason = _limit(_answer(sandbox, model, prompt), body)
    completion_tokens = _tokens(answer)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    completion_id = new_id("chatcmpl-", 29)
    created = sandbox.now_int()
    if body.get("stream") is True:
        options = body.get("stream_options")
        chunks = ChatChunks(
            completion_id=completion_id,
            created=created,
            model=model,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            service_tier="default",
            system_fingerprint="fp_sandbox",
        )
        return Stream(
            _chunks(chunks, answer, finish_reason, usage),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )
    completion = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_sandbox",
    }
    return Response(content=_ENCODE.encode(completion), media_type="application/json")


async def _chunks(
    chunks: ChatChunks, answer: str, finish_reason: str, usage: dict[str, Any]
) -> AsyncIterator[bytes]:
    yield chunks.role()
    words = answer.split(" ")
    for start in range(0, len(words), _WORDS_PER_CHUNK):
        piece = " ".join(words[start : start + _WORDS_PER_CHUNK])
        if start + _WORDS_PER_CHUNK < len(words):
            piece += " "
        yield chunks.content(piece)
    for event in chunks.end(finish_reason, usage):
        yield event


def _models(sandbox: SandboxState) -> list[Model]:
    models = [
        Model(id=m, object="model", created=BASE_CREATED, owned_by="system") for m in BASE_MODELS
    ]
    for job_id in list(sandbox.jobs):
        job = training.advance(sandbox, job_id)
        if job.status == "succeeded" and job.fine_tuned_model:
            created = sandbox.models[job.fine_tuned_model].created
            models.append(
                Model(
                    id=job.fine_tuned_model,
                    object="model",
                    created=created,
                    owned_by=sandbox.config.organization_id,
                )
            )
    return models


@get("/models")
async def list_models(sandbox: Sandbox) -> ModelList:
    return ModelList(object="list", data=_models(sandbox))


@get("/models/{model_id:path}")
async def retrieve_model(model_id: FromPath[str], sandbox: Sandbox) -> Model:
    model_id = model_id.lstrip("/")
    job_id = sandbox.model_jobs.get(model_id)
    if job_id is not None:
        job = training.advance(sandbox, job_id)
        if job.status == "succeeded":
            created = int(job.finished_at or job.created_at)
            return Model(
                id=model_id,
                object="model",
                created=created,
                owned_by=sandbox.config.organization_id,
            )
    elif is_base_model(model_id) and not model_id.startswith("ft:"):
        return Model(id=model_id, object="model", created=BASE_CREATED, owned_by="system")
    raise _model_not_found(model_id)


router = Router(path="/v1", route_handlers=[chat_completions, list_models, retrieve_model])
