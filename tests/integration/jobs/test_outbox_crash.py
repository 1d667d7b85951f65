"""A worker killed with SIGKILL between a job's success being saved and each of its effects: a
new worker carries them out from the outbox. Every webhook is still sent exactly once per
message id, to every destination, and the alias moves.

The killed worker stops dead at a fault point (`service.faults`, armed by BURRO_FAULT_POINTS in
its environment only), records that it got there, and is killed there.
"""

from __future__ import annotations

import collections
import signal

import httpx
import pytest
import redis

from sandbox.config import SandboxConfig
from service.effects import OUTBOX_KEY
from service.faults import reached_key
from tests.support.api import create_job, job_status
from tests.support.fixtures import SpawnWorker, StartSandbox
from tests.support.receivers import Receiver
from tests.support.waiting import wait_for

# Short function timeouts: arq runs a dead worker's job again after the longest timeout + 10 s.
FUNCTION_TIMEOUT = 6.0
# Where each destination is, and the last event it hears of.
LAST_HEARD = {
    "/job": "job.succeeded",
    "/endpoint": "job.succeeded",
    "/openai": "fine_tuning.job.succeeded",
}


@pytest.fixture
def sandbox_url(start_sandbox: StartSandbox) -> str:
    return start_sandbox(SandboxConfig(step_seconds=0.3))


def types(receiver: Receiver, path: str) -> list[str]:
    """The event types `receiver` got on `path`, in order (Burro's and OpenAI's bodies alike)."""
    return [r.json()["type"] for r in receiver.requests if r.path_qs == path]


@pytest.mark.crash
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "point",
    [
        "committed:job.succeeded",  # saved; its relay not even queued yet
        "relay:move_alias",  # relaying; nothing done yet
        "relay:webhook:job.succeeded",  # the alias moved; no webhook published
        "relay:done:job.succeeded",  # everything done; the entry still in the outbox
    ],
)
def test_a_worker_killed_between_a_success_and_its_effects_loses_none_and_repeats_none(
    client: httpx.Client,
    dataset: str,
    receiver: Receiver,
    spawn_worker: SpawnWorker,
    redis_url: str,
    point: str,
) -> None:
    for path, events in (("/endpoint", []), ("/openai", ["fine_tuning.job.succeeded"])):
        endpoint = client.post(
            "/v1/webhook-endpoints", json={"url": receiver.url(path), "events": events}
        )
        assert endpoint.status_code == 201, endpoint.text
    first = spawn_worker(function_timeout=FUNCTION_TIMEOUT, BURRO_FAULT_POINTS=point)
    job = create_job(client, dataset, webhook={"url": receiver.url("/job")}, promote_to="donkey")
    store = redis.Redis.from_url(redis_url)
    try:
        wait_for(
            lambda: store.exists(reached_key(point)), timeout=60, what=f"the worker at {point}"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"

        spawn_worker(function_timeout=FUNCTION_TIMEOUT)
        try:
            for path, kind in LAST_HEARD.items():
                wait_for(
                    lambda path=path, kind=kind: kind in types(receiver, path),  # type: ignore[misc]
                    timeout=60,
                    what=f"{kind} at {path}",
                )
            wait_for(lambda: store.zcard(OUTBOX_KEY) == 0, timeout=60, what="an empty outbox")
        except AssertionError as exc:
            seen = (store.zrange(OUTBOX_KEY, 0, -1), store.zrange("burro:queue", 0, -1))
            raise AssertionError(f"{exc}; outbox, queue: {seen}; {receiver.requests}") from None
    finally:
        store.close()

    succeeded = job_status(client, job["id"], "succeeded")
    # Every message sent once, under its own id, and nothing that is not a message of the job.
    messages = client.get("/v1/webhook-messages", params={"job": job["id"], "limit": 100}).json()
    assert {m["state"] for m in messages["data"]} == {"delivered"}
    sent = collections.Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert set(sent) == {m["id"] for m in messages["data"]}
    assert set(sent.values()) == {1}, sent
    # Each destination heard of every status once, in the order they came; OpenAI's form only
    # of the end.
    for path in ("/job", "/endpoint"):
        kinds = types(receiver, path)
        assert len(kinds) == len(set(kinds)), kinds
        assert kinds[0] == "job.pending" and "job.succeeded" in kinds
    assert types(receiver, "/openai") == ["fine_tuning.job.succeeded"]
    # The alias moved, once.
    alias = client.get("/v1/aliases/donkey").json()
    assert alias["job"] == job["id"] and alias["model"] == succeeded["fine_tuned_model"]
    assert [h["job"] for h in alias["history"]] == [job["id"]]
