"""Chat through Burro's OpenAI-compatible front door, with the sandbox as the real upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import msgspec
import openai
import pytest
from inference_helpers import GREETING, GREETING_REPLY, ScriptedStream, register
from langchain_openai import ChatOpenAI

from burro.testing import serve_in_thread
from sandbox.testing import wait_for
from service.app import create_app
from service.ids import new_id
from service.settings import ProviderSettings, Settings

QUESTION = [{"role": "user", "content": "Question number 7: what is the colour of hay 7?"}]
ANSWER = "Answer 7: hay number 7 is golden."


@pytest.mark.parametrize("by", ["alias", "job", "model"])
def test_a_plain_chat_answers_from_the_training_data_by_alias_job_or_model(
    acme: openai.OpenAI, donkey: str, acme_job: str, sandbox_model: str, by: str
) -> None:
    model = {"alias": donkey, "job": acme_job, "model": sandbox_model}[by]

    answer = acme.chat.completions.create(model=model, messages=QUESTION)  # type: ignore[arg-type]

    assert answer.choices[0].message.content == ANSWER
    assert answer.model == sandbox_model
    assert answer.usage is not None and answer.usage.total_tokens > 0


@pytest.mark.parametrize("by", ["alias", "job", "model"])
def test_a_streamed_chat_answers_without_the_usage_chunk_unless_asked(
    acme: openai.OpenAI, donkey: str, acme_job: str, sandbox_model: str, by: str
) -> None:
    model = {"alias": donkey, "job": acme_job, "model": sandbox_model}[by]

    chunks = list(acme.chat.completions.create(model=model, messages=QUESTION, stream=True))  # type: ignore[call-overload]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert all(c.choices for c in chunks), "the usage-only chunk was not asked for"
    assert all(c.usage is None for c in chunks)


def test_a_streamed_chat_keeps_the_usage_chunk_when_asked(acme: openai.OpenAI, donkey: str) -> None:
    chunks = list(
        acme.chat.completions.create(
            model=donkey,
            messages=QUESTION,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens > 0 and chunks[-1].usage.completion_tokens > 0


def test_langchain_chat_openai_works_unchanged(burro: str, donkey: str) -> None:
    chat = ChatOpenAI(model=donkey, base_url=f"{burro}/v1", api_key="key-acme", max_retries=0)  # type: ignore[arg-type]

    assert chat.invoke(GREETING).content == GREETING_REPLY


def test_an_allowed_base_model_passes_through(acme: openai.OpenAI) -> None:
    answer = acme.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello donkey"}]
    )

    assert answer.choices[0].message.content == "(base model gpt-4o-mini) You said: Hello donkey"


def test_an_unknown_model_is_model_not_found(acme: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        acme.chat.completions.create(model="gpt-3-unknown", messages=QUESTION)  # type: ignore[arg-type]

    assert caught.value.code == "model_not_found"
    assert caught.value.body is not None and "gpt-3-unknown" in str(caught.value.body)


def test_another_tenants_alias_job_and_model_are_not_found(
    burro: str, redis_url: str, sandbox_model: str, acme: openai.OpenAI
) -> None:
    other_job = new_id("job_")
    register(redis_url, "globex", other_job, sandbox_model)
    with httpx.Client(base_url=burro, headers={"Authorization": "Bearer key-globex"}) as globex:
        assert globex.put("/v1/aliases/mule", json={"job": other_job}).status_code == 201

    for model in ("mule", other_job):
        with pytest.raises(openai.NotFoundError) as caught:
            acme.chat.completions.create(model=model, messages=QUESTION)  # type: ignore[arg-type]
        assert caught.value.code == "model_not_found"


def test_a_missing_or_unknown_key_is_a_401_in_openais_shape(burro: str) -> None:
    with (
        openai.OpenAI(base_url=f"{burro}/v1", api_key="nope", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)  # type: ignore[arg-type]

    response = httpx.post(f"{burro}/v1/chat/completions", json={"model": "gpt-4o-mini"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_malformed_body_is_a_400_in_openais_shape(acme_http: httpx.Client) -> None:
    not_json = acme_http.post("/v1/chat/completions", content=b"{nope")
    no_model = acme_http.post("/v1/chat/completions", json={"messages": QUESTION})

    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    assert no_model.status_code == 400
    assert no_model.json()["error"]["param"] == "model"


def test_the_answer_says_how_long_burro_itself_took(acme_http: httpx.Client, donkey: str) -> None:
    plain = acme_http.post("/v1/chat/completions", json={"model": donkey, "messages": QUESTION})
    with acme_http.stream(
        "POST", "/v1/chat/completions", json={"model": donkey, "messages": QUESTION, "stream": True}
    ) as streamed:
        streamed.read()

    for response in (plain, streamed):
        assert response.status_code == 200
        assert 0 <= float(response.headers["x-burro-overhead-ms"]) < 1000


def test_an_upstream_error_keeps_its_status_and_body(
    acme_http: httpx.Client, sandbox_url: str, donkey: str
) -> None:
    root = sandbox_url.removesuffix("/v1")
    httpx.post(
        f"{root}/sandbox/faults",
        json={"path_prefix": "/v1/chat/completions", "status": 500, "count": 1},
    ).raise_for_status()

    response = acme_http.post("/v1/chat/completions", json={"model": donkey, "messages": QUESTION})

    assert response.status_code == 500
    assert response.json()["error"]["message"].startswith("The server had an error")
    assert response.json()["error"]["type"] == "server_error"


def test_an_unreachable_upstream_is_a_502_in_openais_shape(
    inference_settings: Settings, redis_url: str, acme_job: str
) -> None:
    nowhere = ProviderSettings(name="sandbox", base_url="http://127.0.0.1:9/v1", api_key="x")
    settings = msgspec.structs.replace(inference_settings, providers=(nowhere,))
    with serve_in_thread(create_app(settings, configure_logs=False)) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": acme_job, "messages": QUESTION},
            headers={"Authorization": "Bearer key-acme"},
        )

    assert response.status_code == 502
    assert response.json()["error"]["type"] == "server_error"


@pytest.fixture
def scripted(inference_settings: Settings, redis_url: str) -> Iterator[tuple[ScriptedStream, str]]:
    """Burro in front of a scripted streaming upstream, and a job of acme's served by it."""
    upstream = ScriptedStream()
    with serve_in_thread(upstream) as upstream_url:
        provider = ProviderSettings(name="sandbox", base_url=upstream_url, api_key="x")
        settings = msgspec.structs.replace(inference_settings, providers=(provider,))
        with serve_in_thread(create_app(settings, configure_logs=False)) as url:
            yield upstream, url


def test_stream_events_pass_on_as_they_come_and_a_hang_up_stops_the_upstream(
    scripted: tuple[ScriptedStream, str],
) -> None:
    upstream, url = scripted
    body = {"model": "gpt-4o-mini", "messages": QUESTION, "stream": True}
    with (
        httpx.Client(base_url=url, headers={"Authorization": "Bearer key-acme"}) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()
        first = next(line for line in lines if line)  # arrives while the upstream holds back
        upstream.release.set()
        second = next(line for line in lines if line)

    assert json.loads(first.removeprefix("data: "))["choices"][0]["delta"]["content"] == "first "
    assert json.loads(second.removeprefix("data: "))["choices"][0]["delta"]["content"] == "more "
    wait_for(upstream.hung_up.is_set)
    sent = json.loads(upstream.bodies[0])
    assert sent["stream_options"] == {"include_usage": True}
