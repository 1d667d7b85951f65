"""`/v1/webhook-endpoints` and `/v1/webhook-messages` over HTTP, as a caller uses them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import httpx
import msgspec
import pytest
from aiohttp import web

from burro.testing import serve_in_thread
from service.app import create_app
from service.queue import Queue
from service.settings import Settings
from service.webhooks.outbox import publish
from service.webhooks.signing import new_secret, secret_key
from tests.webhooks.conftest import job_data

if TYPE_CHECKING:
    from tests.webhooks.conftest import Receiver, RunWorker, StartReceiver

pytestmark = pytest.mark.anyio

# A public address as an IP literal: accepted without any DNS lookup.
PUBLIC = "https://93.184.215.14"


@pytest.fixture
async def api(burro_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Tenant 'acme', without blocking the receivers that run in the test's event loop."""
    async with httpx.AsyncClient(
        base_url=burro_url, headers={"Authorization": "Bearer key-acme"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
async def other_api(burro_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=burro_url, headers={"Authorization": "Bearer key-globex"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def strict_client(settings: Settings) -> Iterator[httpx.Client]:
    """Burro as deployed: only public webhook addresses."""
    strict = msgspec.structs.replace(settings, webhook_allow_private=False)
    with (
        serve_in_thread(create_app(strict)) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer key-acme"}) as http,
    ):
        yield http


async def ok(request: web.Request, receiver: Receiver) -> web.StreamResponse:
    return web.Response(status=200, text="thanks")


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    return body


async def test_created_endpoint_shows_its_secret_once(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/webhook-endpoints",
        json={"url": f"{PUBLIC}/hooks", "events": ["job.succeeded"], "description": "CI"},
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["id"].startswith("whe_")
    assert endpoint["object"] == "webhook_endpoint"
    assert endpoint["events"] == ["job.succeeded"]
    assert endpoint["description"] == "CI"
    assert len(secret_key(endpoint["secret"])) == 32

    listed = (await api.get("/v1/webhook-endpoints")).json()
    assert listed["object"] == "list"
    assert listed["has_more"] is False
    assert [e["id"] for e in listed["data"]] == [endpoint["id"]]
    assert "secret" not in listed["data"][0]
    fetched = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert "secret" not in fetched
    assert fetched["url"] == f"{PUBLIC}/hooks"


async def test_endpoint_without_events_subscribes_to_all(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/h"})
    assert created.status_code == 201
    assert created.json()["events"] == ["*"]


async def test_deleted_endpoint_is_gone(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/h"})
    endpoint_id = created.json()["id"]
    deleted = await api.delete(f"/v1/webhook-endpoints/{endpoint_id}")
    assert deleted.status_code == 204
    problem(await api.get(f"/v1/webhook-endpoints/{endpoint_id}"), 404)
    problem(await api.delete(f"/v1/webhook-endpoints/{endpoint_id}"), 404)
    assert (await api.get("/v1/webhook-endpoints")).json()["data"] == []


async def test_another_tenants_endpoint_is_not_found(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    created = await api.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/h"})
    endpoint_id = created.json()["id"]
    problem(await other_api.get(f"/v1/webhook-endpoints/{endpoint_id}"), 404)
    problem(await other_api.delete(f"/v1/webhook-endpoints/{endpoint_id}"), 404)
    assert (await other_api.get("/v1/webhook-endpoints")).json()["data"] == []
    assert (await api.get(f"/v1/webhook-endpoints/{endpoint_id}")).status_code == 200


async def test_endpoints_are_listed_newest_first_in_pages(api: httpx.AsyncClient) -> None:
    ids = []
    for n in range(3):
        created = await api.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/{n}"})
        ids.append(created.json()["id"])
    first = (await api.get("/v1/webhook-endpoints", params={"limit": 2})).json()
    assert [e["id"] for e in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = (await api.get("/v1/webhook-endpoints", params={"limit": 2, "after": ids[1]})).json()
    assert [e["id"] for e in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False
    problem(await api.get("/v1/webhook-endpoints", params={"limit": 0}), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"events": ["job.succeeded"]},
        {"url": f"{PUBLIC}/h", "events": ["job.exploded"]},
        {"url": f"{PUBLIC}/h", "secret": "whsec_x"},
        {"url": ""},
        {"url": f"{PUBLIC}/h", "description": "x" * 513},
    ],
    ids=["no-url", "unknown-event", "unknown-field", "empty-url", "long-description"],
)
async def test_malformed_endpoint_is_400(api: httpx.AsyncClient, body: dict[str, object]) -> None:
    problem(await api.post("/v1/webhook-endpoints", json=body), 400)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://10.0.0.7/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://2130706433:{port}/hook",
        "http://0x7f.0.0.1:{port}/hook",
        "ftp://ci.example.com/hook",
        "http://user:pw@ci.example.com/hook",
        "file:///etc/passwd",
    ],
)
async def test_unsafe_endpoint_url_is_refused_with_422_and_nothing_is_sent(
    strict_client: httpx.Client, start_receiver: StartReceiver, url: str
) -> None:
    receiver = await start_receiver(ok)
    response = strict_client.post(
        "/v1/webhook-endpoints", json={"url": url.format(port=receiver.port)}
    )
    body = problem(response, 422)
    assert body["type"] == "urn:burro:problem:unsafe_webhook_url"
    assert receiver.requests == []
    assert strict_client.get("/v1/webhook-endpoints").json()["data"] == []


async def test_unresolvable_endpoint_host_is_422(strict_client: httpx.Client) -> None:
    response = strict_client.post(
        "/v1/webhook-endpoints", json={"url": "https://burro-no-such-host.invalid/hook"}
    )
    assert problem(response, 422)["type"] == "urn:burro:problem:unresolvable_webhook_host"


async def test_tenant_endpoints_are_capped(api: httpx.AsyncClient) -> None:
    for n in range(20):
        created = await api.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/{n}"})
        assert created.status_code == 201
    problem(await api.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/x"}), 422)


async def test_messages_of_a_job_list_their_attempts_and_state(
    api: httpx.AsyncClient,
    other_api: httpx.AsyncClient,
    queue: Queue,
    fast_settings: Settings,
    start_receiver: StartReceiver,
    run_worker: RunWorker,
) -> None:
    receiver = await start_receiver(ok)
    created = await api.post(
        "/v1/webhook-endpoints", json={"url": receiver.url("/endpoint"), "events": ["job.*"]}
    )
    endpoint_id = created.json()["id"]
    for status in ("running", "succeeded"):
        await publish(
            queue.redis,
            queue,
            tenant="acme",
            event_type=f"job.{status}",
            job_id="job_1",
            data=job_data("job_1", status),
            job_webhook=(receiver.url("/job"), new_secret()),
        )
    await publish(
        queue.redis,
        queue,
        tenant="acme",
        event_type="job.running",
        job_id="job_2",
        data=job_data("job_2", "running"),
        job_webhook=None,
    )
    await run_worker(fast_settings)

    listed = (await api.get("/v1/webhook-messages", params={"job": "job_1"})).json()
    assert listed["object"] == "list"
    assert len(listed["data"]) == 4
    assert {m["job"] for m in listed["data"]} == {"job_1"}
    first = listed["data"][0]
    assert first["object"] == "webhook_message"
    assert first["id"].startswith("msg_")
    assert first["state"] == "delivered"
    assert {m["endpoint"] for m in listed["data"]} == {endpoint_id, None}
    assert {m["event_type"] for m in listed["data"]} == {"job.running", "job.succeeded"}
    [attempt] = first["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["response_excerpt"] == "thanks"
    assert isinstance(attempt["at"], int)
    assert attempt["duration_ms"] >= 0
    assert "secret" not in first
    assert "body" not in first

    page = (await api.get("/v1/webhook-messages", params={"job": "job_1", "limit": 3})).json()
    assert page["has_more"] is True
    after = page["data"][-1]["id"]
    rest = (
        await api.get("/v1/webhook-messages", params={"job": "job_1", "limit": 3, "after": after})
    ).json()
    assert len(rest["data"]) == 1
    assert rest["has_more"] is False

    everything = (await api.get("/v1/webhook-messages")).json()
    assert len(everything["data"]) == 5
    one = (await api.get(f"/v1/webhook-messages/{first['id']}")).json()
    assert one == first

    # Another tenant sees none of it.
    assert (await other_api.get("/v1/webhook-messages", params={"job": "job_1"})).json()[
        "data"
    ] == []
    problem(await other_api.get(f"/v1/webhook-messages/{first['id']}"), 404)
    problem(await other_api.post(f"/v1/webhook-messages/{first['id']}/redeliver"), 404)


async def test_redeliver_sends_the_message_again_with_the_same_webhook_id(
    api: httpx.AsyncClient,
    queue: Queue,
    fast_settings: Settings,
    start_receiver: StartReceiver,
    run_worker: RunWorker,
) -> None:
    receiver = await start_receiver(ok)
    [message_id] = await publish(
        queue.redis,
        queue,
        tenant="acme",
        event_type="job.succeeded",
        job_id="job_1",
        data=job_data(),
        job_webhook=(receiver.url(), new_secret()),
    )
    await run_worker(fast_settings)

    response = await api.post(f"/v1/webhook-messages/{message_id}/redeliver")
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "pending"
    await run_worker(fast_settings)

    assert [r.headers["webhook-id"] for r in receiver.requests] == [message_id, message_id]
    stored = (await api.get(f"/v1/webhook-messages/{message_id}")).json()
    assert stored["state"] == "delivered"
    assert [(a["redelivery"], a["number"]) for a in stored["attempts"]] == [(0, 1), (1, 1)]


async def test_unknown_message_is_404(api: httpx.AsyncClient) -> None:
    problem(await api.get("/v1/webhook-messages/msg_nope"), 404)
    problem(await api.post("/v1/webhook-messages/msg_nope/redeliver"), 404)


async def test_webhook_routes_need_a_key(burro_url: str) -> None:
    async with httpx.AsyncClient(base_url=burro_url) as anonymous:
        problem(await anonymous.get("/v1/webhook-endpoints"), 401)
        problem(await anonymous.get("/v1/webhook-messages"), 401)
