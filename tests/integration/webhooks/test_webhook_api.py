"""`/v1/webhook-endpoints` and `/v1/webhook-messages` over HTTP, as a caller uses them."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from service.settings import Settings
from service.webhooks.signing import new_secret, secret_key
from tests.support.fixtures import MakeClient, MakeWorker, ServeBurro, StartReceiver
from tests.support.receivers import answer
from tests.support.store import publish_job_event

# A public address as an IP literal: accepted without any DNS lookup.
PUBLIC = "https://93.184.215.14"


@pytest.fixture
def strict_client(
    settings: Settings, serve_burro: ServeBurro, make_client: MakeClient
) -> httpx.Client:
    """Burro as deployed: only public webhook addresses."""
    strict = msgspec.structs.replace(settings, webhook_allow_private=False)
    return make_client("acme", base_url=serve_burro(strict))


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    return body


def test_created_endpoint_shows_its_secret_once(client: httpx.Client) -> None:
    created = client.post(
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

    listed = client.get("/v1/webhook-endpoints").json()
    assert listed["object"] == "list"
    assert listed["has_more"] is False
    assert [e["id"] for e in listed["data"]] == [endpoint["id"]]
    assert "secret" not in listed["data"][0]
    fetched = client.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
    assert "secret" not in fetched
    assert fetched["url"] == f"{PUBLIC}/hooks"


def test_endpoint_without_events_subscribes_to_all(client: httpx.Client) -> None:
    created = client.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/h"})
    assert created.status_code == 201
    assert created.json()["events"] == ["*"]


def test_deleted_endpoint_is_gone(client: httpx.Client) -> None:
    created = client.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/h"})
    endpoint_id = created.json()["id"]
    deleted = client.delete(f"/v1/webhook-endpoints/{endpoint_id}")
    assert deleted.status_code == 204
    problem(client.get(f"/v1/webhook-endpoints/{endpoint_id}"), 404)
    problem(client.delete(f"/v1/webhook-endpoints/{endpoint_id}"), 404)
    assert client.get("/v1/webhook-endpoints").json()["data"] == []


def test_another_tenants_endpoint_is_not_found(
    client: httpx.Client, other_client: httpx.Client
) -> None:
    created = client.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/h"})
    endpoint_id = created.json()["id"]
    problem(other_client.get(f"/v1/webhook-endpoints/{endpoint_id}"), 404)
    problem(other_client.delete(f"/v1/webhook-endpoints/{endpoint_id}"), 404)
    assert other_client.get("/v1/webhook-endpoints").json()["data"] == []
    assert client.get(f"/v1/webhook-endpoints/{endpoint_id}").status_code == 200


def test_endpoints_are_listed_newest_first_in_pages(client: httpx.Client) -> None:
    ids = []
    for n in range(3):
        created = client.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/{n}"})
        ids.append(created.json()["id"])
    first = client.get("/v1/webhook-endpoints", params={"limit": 2}).json()
    assert [e["id"] for e in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = client.get("/v1/webhook-endpoints", params={"limit": 2, "after": ids[1]}).json()
    assert [e["id"] for e in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False
    problem(client.get("/v1/webhook-endpoints", params={"limit": 0}), 400)


MALFORMED: dict[str, dict[str, object]] = {
    "no-url": {"events": ["job.succeeded"]},
    "unknown-event": {"url": f"{PUBLIC}/h", "events": ["job.exploded"]},
    "unknown-field": {"url": f"{PUBLIC}/h", "secret": "whsec_x"},
    "empty-url": {"url": ""},
    "long-description": {"url": f"{PUBLIC}/h", "description": "x" * 513},
}
UNSAFE = (
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
)


def test_malformed_endpoint_is_400(client: httpx.Client, subtests: pytest.Subtests) -> None:
    for case, body in MALFORMED.items():
        with subtests.test(case):
            problem(client.post("/v1/webhook-endpoints", json=body), 400)


def test_unsafe_endpoint_url_is_refused_with_422_and_nothing_is_sent(
    strict_client: httpx.Client, start_receiver: StartReceiver, subtests: pytest.Subtests
) -> None:
    receiver = start_receiver()
    for url in UNSAFE:
        with subtests.test(url):
            response = strict_client.post(
                "/v1/webhook-endpoints", json={"url": url.format(port=receiver.port)}
            )
            body = problem(response, 422)
            assert body["type"] == "urn:burro:problem:unsafe_webhook_url"
    assert receiver.requests == []
    assert strict_client.get("/v1/webhook-endpoints").json()["data"] == []


def test_unresolvable_endpoint_host_is_422(strict_client: httpx.Client) -> None:
    response = strict_client.post(
        "/v1/webhook-endpoints", json={"url": "https://burro-no-such-host.invalid/hook"}
    )
    assert problem(response, 422)["type"] == "urn:burro:problem:unresolvable_webhook_host"


def test_tenant_endpoints_are_capped(client: httpx.Client) -> None:
    for n in range(20):
        created = client.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/{n}"})
        assert created.status_code == 201
    problem(client.post("/v1/webhook-endpoints", json={"url": f"{PUBLIC}/x"}), 422)


def test_messages_of_a_job_list_their_attempts_and_state(
    client: httpx.Client,
    other_client: httpx.Client,
    redis_url: str,
    fast_settings: Settings,
    start_receiver: StartReceiver,
    worker: MakeWorker,
) -> None:
    receiver = start_receiver(answer(200, "thanks"))
    created = client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url("/endpoint"), "events": ["job.*"]}
    )
    endpoint_id = created.json()["id"]
    for status in ("running", "succeeded"):
        publish_job_event(redis_url, f"job.{status}", "job_1", (receiver.url("/job"), new_secret()))
    publish_job_event(redis_url, "job.running", "job_2", None)
    worker(fast_settings).drain()

    listed = client.get("/v1/webhook-messages", params={"job": "job_1"}).json()
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

    page = client.get("/v1/webhook-messages", params={"job": "job_1", "limit": 3}).json()
    assert page["has_more"] is True
    after = page["data"][-1]["id"]
    rest = client.get(
        "/v1/webhook-messages", params={"job": "job_1", "limit": 3, "after": after}
    ).json()
    assert len(rest["data"]) == 1
    assert rest["has_more"] is False

    everything = client.get("/v1/webhook-messages").json()
    assert len(everything["data"]) == 5
    one = client.get(f"/v1/webhook-messages/{first['id']}").json()
    assert one == first

    # Another tenant sees none of it.
    assert other_client.get("/v1/webhook-messages", params={"job": "job_1"}).json()["data"] == []
    problem(other_client.get(f"/v1/webhook-messages/{first['id']}"), 404)
    problem(other_client.post(f"/v1/webhook-messages/{first['id']}/redeliver"), 404)


def test_redeliver_sends_the_message_again_with_the_same_webhook_id(
    client: httpx.Client,
    redis_url: str,
    fast_settings: Settings,
    start_receiver: StartReceiver,
    worker: MakeWorker,
) -> None:
    receiver = start_receiver(answer(200, "thanks"))
    [message_id] = publish_job_event(
        redis_url, "job.succeeded", "job_1", (receiver.url(), new_secret())
    )
    worker(fast_settings).drain()

    response = client.post(f"/v1/webhook-messages/{message_id}/redeliver")
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "pending"
    worker(fast_settings).drain()

    assert [r.headers["webhook-id"] for r in receiver.requests] == [message_id, message_id]
    stored = client.get(f"/v1/webhook-messages/{message_id}").json()
    assert stored["state"] == "delivered"
    assert [(a["redelivery"], a["number"]) for a in stored["attempts"]] == [(0, 1), (1, 1)]


def test_unknown_message_is_404(client: httpx.Client) -> None:
    problem(client.get("/v1/webhook-messages/msg_nope"), 404)
    problem(client.post("/v1/webhook-messages/msg_nope/redeliver"), 404)


def test_webhook_routes_need_a_key(anonymous: httpx.Client) -> None:
    problem(anonymous.get("/v1/webhook-endpoints"), 401)
    problem(anonymous.get("/v1/webhook-messages"), 401)
