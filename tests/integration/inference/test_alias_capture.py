"""Capture: an alias with `capture` on records the chat exchanges through it (plain and
streamed), capped in count and age, and turns them into a dataset a job can train on."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec
import openai

from service.inference.captures import MAX_EXCHANGE_BYTES, captures_key
from service.settings import Settings
from tests.support.api import create_job, job_status
from tests.support.data import answer, asking, question
from tests.support.fixtures import MakeWorker
from tests.support.store import commands_during, on_redis
from tests.support.waiting import wait_for


def _captures(client: httpx.Client, alias: str = "donkey", **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/aliases/{alias}/captures", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def _captured(client: httpx.Client, count: int, alias: str = "donkey") -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        found = _captures(client, alias, limit=100)
        return found if len(found) >= count else None

    return wait_for(enough, what=f"{count} captures")


def test_capture_is_off_by_default_and_records_nothing(
    client: httpx.Client, sdk: openai.OpenAI, donkey: str, redis_url: str
) -> None:
    alias = client.get(f"/v1/aliases/{donkey}").json()
    assert alias["capture"] == {"enabled": False, "max_examples": 1000, "max_age_days": 30}

    sdk.chat.completions.create(model=donkey, messages=asking(1))
    # A capturing alias asked afterwards proves the recorder has run past the first request.
    other = client.put("/v1/aliases/mule", json={"job": alias["job"], "capture": True})
    assert other.status_code == 201, other.text
    sdk.chat.completions.create(model="mule", messages=asking(2))
    _captured(client, 1, alias="mule")

    assert _captures(client) == []
    assert not on_redis(redis_url, lambda r: r.exists(captures_key("acme", donkey)))


def test_an_alias_without_capture_still_costs_one_round_trip(
    client: httpx.Client, sdk: openai.OpenAI, donkey: str, redis_url: str
) -> None:
    client.put("/v1/aliases/mule", json={"job": client.get(f"/v1/aliases/{donkey}").json()["job"]})
    client.put("/v1/aliases/mule", json={"capture": True})
    sdk.chat.completions.create(model="mule", messages=asking(1))
    _captured(client, 1, alias="mule")  # the recorder of this server is running

    sent = commands_during(
        redis_url, lambda: sdk.chat.completions.create(model=donkey, messages=asking(2))
    )

    # The usage counters are flushed in the background, off the request's path.
    on_the_path = [c for c in sent if c not in ("HINCRBY", "HSETNX", "MULTI", "EXEC", "ECHO")]
    assert on_the_path == ["HMGET"], sent


def test_a_capturing_alias_records_plain_and_streamed_answers(
    client: httpx.Client, sdk: openai.OpenAI, donkey: str, sandbox_model: str
) -> None:
    turned_on = client.put(f"/v1/aliases/{donkey}", json={"capture": True})
    assert turned_on.status_code == 200, turned_on.text
    assert turned_on.json()["capture"]["enabled"] is True
    assert len(turned_on.json()["history"]) == 1, "turning capture on does not move the alias"

    plain = sdk.chat.completions.create(model=donkey, messages=asking(3))
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in sdk.chat.completions.create(model=donkey, messages=asking(4), stream=True)
        if chunk.choices
    )

    newest, oldest = _captured(client, 2)
    assert oldest["messages"] == [{"role": "user", "content": question(3)}]
    assert oldest["answer"] == plain.choices[0].message.content == answer(3)
    assert newest["messages"] == [{"role": "user", "content": question(4)}]
    assert newest["answer"] == streamed == answer(4)
    assert newest["model"] == sandbox_model and newest["object"] == "alias.capture"
    assert abs(newest["created_at"] - time.time()) < 60
    assert set(newest) == {"id", "object", "created_at", "model", "messages", "answer"}


def test_capture_keeps_the_newest_up_to_its_cap_and_pages(
    client: httpx.Client, sdk: openai.OpenAI, donkey: str
) -> None:
    client.put(f"/v1/aliases/{donkey}", json={"capture": True, "capture_max_examples": 3})

    for i in range(5):
        sdk.chat.completions.create(model=donkey, messages=asking(i))

    wait_for(
        lambda: [c["answer"] for c in _captures(client)] == [answer(4), answer(3), answer(2)],
        what="the three newest captures, and only those",
    )
    first = client.get(f"/v1/aliases/{donkey}/captures", params={"limit": 2}).json()
    rest = client.get(
        f"/v1/aliases/{donkey}/captures", params={"after": first["data"][-1]["id"]}
    ).json()
    assert first["has_more"] is True and rest["has_more"] is False
    assert [c["answer"] for c in first["data"] + rest["data"]] == [answer(4), answer(3), answer(2)]


def test_an_exchange_over_a_mebibyte_is_answered_but_not_captured(
    client: httpx.Client, sdk: openai.OpenAI, donkey: str
) -> None:
    client.put(f"/v1/aliases/{donkey}", json={"capture": True})
    huge = [{"role": "user", "content": question(1) + " " + "hay " * (MAX_EXCHANGE_BYTES // 4)}]

    answered = sdk.chat.completions.create(model=donkey, messages=huge)  # type: ignore[arg-type]
    sdk.chat.completions.create(model=donkey, messages=asking(2))

    assert answered.choices
    assert [c["answer"] for c in _captured(client, 1)] == [answer(2)]


def test_captures_older_than_the_age_cap_are_neither_shown_nor_kept(
    client: httpx.Client, sdk: openai.OpenAI, donkey: str, redis_url: str
) -> None:
    client.put(f"/v1/aliases/{donkey}", json={"capture": True, "capture_max_age_days": 1})
    key = captures_key("acme", donkey)
    two_days_ago = int((time.time() - 2 * 86400) * 1000)
    on_redis(redis_url, lambda r: r.xadd(key, {"d": b"{}"}, id=f"{two_days_ago}-0"))

    assert _captures(client) == [], "an exchange past the age cap is not shown"
    sdk.chat.completions.create(model=donkey, messages=asking(5))
    _captured(client, 1)

    ids = on_redis(redis_url, lambda r: r.xrange(key))
    assert [i for i, _ in ids if i.decode().startswith(str(two_days_ago))] == [], "trimmed"
    ttl = on_redis(redis_url, lambda r: r.ttl(key))
    assert 0 < ttl <= 86400, "the stream expires with the age cap"


def test_captures_become_a_dataset_a_job_trains_on(
    client: httpx.Client,
    sdk: openai.OpenAI,
    donkey: str,
    worker: MakeWorker,
    settings: Settings,
) -> None:
    client.put(f"/v1/aliases/{donkey}", json={"capture": True})
    for i in range(9):
        sdk.chat.completions.create(model=donkey, messages=asking(i))
    _captured(client, 9)

    too_few = client.post(f"/v1/aliases/{donkey}/captures/dataset")
    assert too_few.status_code == 422, "checked like an upload: fine-tuning needs 10 examples"
    assert too_few.json()["error_counts"] == {"too_few_examples": 1}

    for _ in sdk.chat.completions.create(model=donkey, messages=asking(9), stream=True):
        pass
    _captured(client, 10)
    made = client.post(f"/v1/aliases/{donkey}/captures/dataset", json={"name": "donkey-traffic"})
    again = client.post(f"/v1/aliases/{donkey}/captures/dataset", json={"name": "donkey-traffic"})

    assert made.status_code == 201, made.text
    dataset = made.json()
    assert dataset["name"] == "donkey-traffic" and dataset["kind"] == "chat"
    assert dataset["examples"] == 10
    assert again.status_code == 200 and again.json()["id"] == dataset["id"]
    lines = client.get(f"/v1/datasets/{dataset['id']}/content").text.splitlines()
    assert '{"role":"assistant","content":"Answer 0: hay number 0 is golden."}' in lines[0]
    job = create_job(client, dataset["id"], promote_to=donkey)
    # Polled as the jobs tests poll the sandbox: often.
    worker(msgspec.structs.replace(settings, poll_interval=0.2), burst=False).start()
    trained = job_status(client, job["id"])
    assert trained["status"] == "succeeded", trained
    wait_for(
        lambda: client.get(f"/v1/aliases/{donkey}").json()["job"] == job["id"],
        what="the alias to move to the model trained on its own traffic",
    )
    assert client.get(f"/v1/aliases/{donkey}").json()["capture"]["enabled"] is True


def test_captures_are_cleared_and_go_with_their_alias(
    client: httpx.Client, sdk: openai.OpenAI, donkey: str, redis_url: str
) -> None:
    client.put(f"/v1/aliases/{donkey}", json={"capture": True})
    sdk.chat.completions.create(model=donkey, messages=asking(1))
    _captured(client, 1)

    assert client.delete(f"/v1/aliases/{donkey}/captures").status_code == 204
    assert _captures(client) == []
    nothing = client.post(f"/v1/aliases/{donkey}/captures/dataset")
    assert nothing.status_code == 409 and nothing.json()["type"].endswith(":nothing_captured")

    sdk.chat.completions.create(model=donkey, messages=asking(2))
    _captured(client, 1)
    assert client.delete(f"/v1/aliases/{donkey}").status_code == 204
    assert not on_redis(redis_url, lambda r: r.exists(captures_key("acme", donkey)))
    assert client.get(f"/v1/aliases/{donkey}/captures").status_code == 404


def test_capture_settings_are_checked_and_another_tenant_sees_nothing(
    client: httpx.Client, other_client: httpx.Client, donkey: str
) -> None:
    for body in (
        {"capture": "yes"},
        {"capture_max_examples": 0},
        {"capture_max_age_days": 91},
        {},
    ):
        response = client.put(f"/v1/aliases/{donkey}", json=body)
        assert 400 <= response.status_code < 500 and response.status_code != 404, body
    assert client.put("/v1/aliases/nobody", json={"capture": True}).status_code == 404
    assert other_client.get(f"/v1/aliases/{donkey}/captures").status_code == 404
    assert other_client.post(f"/v1/aliases/{donkey}/captures/dataset").status_code == 404
    assert client.get(f"/v1/aliases/{donkey}/captures", params={"after": "x"}).status_code == 400
