"""Chat through Burro's OpenAI-compatible front door, with the sandbox as the real upstream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import openai
import pytest
from langchain_openai import ChatOpenAI

from burro.testing import serve_in_thread
from service.ids import new_id
from service.settings import ProviderSettings, Settings
from tests.support.data import GREETING, GREETING_REPLY, answer, asking
from tests.support.fixtures import MakeClient, ServeBurro
from tests.support.store import register
from tests.support.waiting import wait_for

QUESTION = asking(7)
ANSWER = answer(7)


@pytest.mark.parametrize("by", ["alias", "job", "model"])
def test_a_plain_chat_answers_from_the_training_data_by_alias_job_or_model(
    sdk: openai.OpenAI, donkey: str, acme_job: str, sandbox_model: str, by: str
) -> None:
    model = {"alias": donkey, "job": acme_job, "model": sandbox_model}[by]

    answer = sdk.chat.completions.create(model=model, messages=QUESTION)

    assert answer.choices[0].message.content == ANSWER
    assert answer.model == sandbox_model
    assert answer.usage is not None and answer.usage.total_tokens > 0


@pytest.mark.parametrize("by", ["alias", "job", "model"])
def test_a_streamed_chat_answers_without_the_usage_chunk_unless_asked(
    sdk: openai.OpenAI, donkey: str, acme_job: str, sandbox_model: str, by: str
) -> None:
    model = {"alias": donkey, "job": acme_job, "model": sandbox_model}[by]

    chunks = list(sdk.chat.completions.create(model=model, messages=QUESTION, stream=True))

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert all(c.choices for c in chunks), "the usage-only chunk was not asked for"
    assert all(c.usage is None for c in chunks)


def test_a_streamed_chat_keeps_the_usage_chunk_when_asked(sdk: openai.OpenAI, donkey: str) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model=donkey,
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens > 0 and chunks[-1].usage.completion_tokens > 0


def test_langchain_chat_openai_works_unchanged(burro_url: str, donkey: str) -> None:
    chat = ChatOpenAI(model=donkey, base_url=f"{burro_url}/v1", api_key="key-acme", max_retries=0)  # type: ignore[arg-type]

    assert chat.invoke(GREETING).content == GREETING_REPLY


def test_an_allowed_base_model_passes_through(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello donkey"}]
    )

    assert answer.choices[0].message.content == "(base model gpt-4o-mini) You said: Hello donkey"


def test_an_unknown_model_is_model_not_found(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-3-unknown", messages=QUESTION)

    assert caught.value.code == "model_not_found"
    assert caught.value.body is not None and "gpt-3-unknown" in str(caught.value.body)


def test_another_tenants_alias_job_and_model_are_not_found(
    other_client: httpx.Client, redis_url: str, sandbox_model: str, sdk: openai.OpenAI
) -> None:
    other_job = new_id("job_")
    register(redis_url, "globex", other_job, sandbox_model)
    assert other_client.put("/v1/aliases/mule", json={"job": other_job}).status_code == 201

    for model in ("mule", other_job):
        with pytest.raises(openai.NotFoundError) as caught:
            sdk.chat.completions.create(model=model, messages=QUESTION)
        assert caught.value.code == "model_not_found"


def test_a_missing_or_unknown_key_is_a_401_in_openais_shape(burro_url: str) -> None:
    with (
        openai.OpenAI(base_url=f"{burro_url}/v1", api_key="nope", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)

    response = httpx.post(f"{burro_url}/v1/chat/completions", json={"model": "gpt-4o-mini"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_malformed_body_is_a_400_in_openais_shape(client: httpx.Client) -> None:
    not_json = client.post("/v1/chat/completions", content=b"{nope")
    no_model = client.post("/v1/chat/completions", json={"messages": QUESTION})

    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    assert no_model.status_code == 400
    assert no_model.json()["error"]["param"] == "model"


def test_the_answer_says_how_long_burro_itself_took(client: httpx.Client, donkey: str) -> None:
    plain = client.post("/v1/chat/completions", json={"model": donkey, "messages": QUESTION})
    with client.stream(
        "POST", "/v1/chat/completions", json={"model": donkey, "messages": QUESTION, "stream": True}
    ) as streamed:
        streamed.read()

    for response in (plain, streamed):
        assert response.status_code == 200
        assert 0 <= float(response.headers["x-burro-overhead-ms"]) < 1000


def test_an_upstream_error_keeps_its_status_and_body(
    client: httpx.Client, sandbox_url: str, donkey: str
) -> None:
    root = sandbox_url.removesuffix("/v1")
    httpx.post(
        f"{root}/sandbox/faults",
        json={"path_prefix": "/v1/chat/completions", "status": 500, "count": 1},
    ).raise_for_status()

    response = client.post("/v1/chat/completions", json={"model": donkey, "messages": QUESTION})

    assert response.status_code == 500
    assert response.json()["error"]["message"].startswith("The server had an error")
    assert response.json()["error"]["type"] == "server_error"


def test_an_unreachable_upstream_is_a_502_in_openais_shape(
    settings: Settings, acme_job: str, serve_burro: ServeBurro, make_client: MakeClient
) -> None:
    nowhere = ProviderSettings(name="sandbox", base_url="http://127.0.0.1:9/v1", api_key="x")
    unreachable = msgspec.structs.replace(settings, providers=(nowhere,))
    client = make_client("acme", base_url=serve_burro(unreachable))
    response = client.post("/v1/chat/completions", json={"model": acme_job, "messages": QUESTION})

    assert response.status_code == 502
    assert response.json()["error"]["type"] == "server_error"


class ScriptedStream:
    """A raw ASGI upstream whose stream sends one event, then waits for the test's go-ahead
    (`release`), then keeps sending until the client hangs up (`hung_up`) or a deadline."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.hung_up = threading.Event()
        self.bodies: list[bytes] = []

    @staticmethod
    def event(text: str) -> bytes:
        chunk = {
            "id": "chatcmpl-x",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rpartition(".")[2]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": self.event("first "), "more_body": True})
        disconnected = asyncio.ensure_future(self._until_disconnect(receive))
        deadline = time.monotonic() + 10
        try:
            await asyncio.to_thread(self.release.wait, deadline - time.monotonic())
            while time.monotonic() < deadline and not disconnected.done():
                await send(
                    {"type": "http.response.body", "body": self.event("more "), "more_body": True}
                )
                await asyncio.sleep(0.01)
        finally:
            disconnected.cancel()
        if time.monotonic() >= deadline:
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def _until_disconnect(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.hung_up.set()


@pytest.fixture
def scripted(
    settings: Settings, serve_burro: ServeBurro, make_client: MakeClient
) -> Iterator[tuple[ScriptedStream, httpx.Client]]:
    """Burro in front of a scripted streaming upstream, as tenant 'acme'."""
    upstream = ScriptedStream()
    with serve_in_thread(upstream) as upstream_url:
        provider = ProviderSettings(name="sandbox", base_url=upstream_url, api_key="x")
        url = serve_burro(msgspec.structs.replace(settings, providers=(provider,)))
        yield upstream, make_client("acme", base_url=url)


def test_stream_events_pass_on_as_they_come_and_a_hang_up_stops_the_upstream(
    scripted: tuple[ScriptedStream, httpx.Client],
) -> None:
    upstream, client = scripted
    body = {"model": "gpt-4o-mini", "messages": QUESTION, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line)  # arrives while the upstream holds back
        upstream.release.set()
        second = next(line for line in lines if line)

    assert json.loads(first.removeprefix("data: "))["choices"][0]["delta"]["content"] == "first "
    assert json.loads(second.removeprefix("data: "))["choices"][0]["delta"]["content"] == "more "
    wait_for(upstream.hung_up.is_set)
    sent = json.loads(upstream.bodies[0])
    assert sent["stream_options"] == {"include_usage": True}
