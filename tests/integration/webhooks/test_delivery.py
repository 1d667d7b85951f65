"""One webhook attempt against real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email.utils
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import standardwebhooks

from service.webhooks.addresses import CheckedTarget, UnsafeWebhookUrl, resolve_public
from service.webhooks.delivery import USER_AGENT, WebhookSender
from service.webhooks.signing import new_message_id, new_secret, sign
from tests.support.fixtures import StartReceiver
from tests.support.receivers import Receiver, Reply, answer, hang

pytestmark = pytest.mark.anyio

BODY = b'{"type": "job.succeeded", "timestamp": "2026-11-26T15:04:05Z", "data": {"id": "job_1"}}'


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with WebhookSender() as sender:
        yield sender


async def checked(url: str) -> CheckedTarget:
    return await resolve_public(url, allow_private=True)


def pinned(host: str, receiver: Receiver, path: str = "/hook") -> CheckedTarget:
    """A target named `host` whose checked address is the receiver's."""
    return CheckedTarget(
        scheme=receiver.scheme, host=host, port=receiver.port, path_qs=path, ips=("127.0.0.1",)
    )


async def test_2xx_is_delivered_signed_with_status_and_excerpt(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    receiver = start_receiver(answer(200, "thanks"))
    secret, msg_id, now = new_secret(), new_message_id(), int(time.time())

    outcome = await sender.send(
        await checked(receiver.url("/hooks/burro?tenant=t1")),
        sign(secret, msg_id, now, BODY),
        BODY,
        timeout=5.0,
    )

    assert outcome.delivered
    assert (outcome.status_code, outcome.error, outcome.response_excerpt) == (200, None, "thanks")
    assert outcome.retry_after is None
    assert outcome.duration_ms > 0
    [request] = receiver.requests
    assert (request.method, request.path_qs, request.body) == (
        "POST",
        "/hooks/burro?tenant=t1",
        BODY,
    )
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["webhook-id"] == msg_id
    # What the receiver got verifies with the reference implementation of Standard Webhooks.
    assert standardwebhooks.Webhook(secret).verify(request.body, request.headers) is not None


async def test_any_2xx_counts_as_delivered(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    receiver = start_receiver(answer(204))

    outcome = await sender.send(await checked(receiver.url()), {}, BODY, timeout=5.0)

    assert (outcome.delivered, outcome.status_code, outcome.error) == (True, 204, None)


async def test_500_is_a_failed_attempt_with_its_code(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    receiver = start_receiver(answer(500, "boom"))

    outcome = await sender.send(await checked(receiver.url()), {}, BODY, timeout=5.0)

    assert not outcome.delivered
    assert outcome.status_code == 500
    assert outcome.error == "answered HTTP 500"
    assert outcome.response_excerpt == "boom"


async def test_receiver_that_hangs_past_the_timeout_is_a_timeout(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    receiver = start_receiver(hang)
    started = time.monotonic()

    outcome = await sender.send(await checked(receiver.url()), {}, BODY, timeout=0.5)

    assert not outcome.delivered
    assert outcome.status_code is None
    assert outcome.error == "timeout after 0.5 s"
    assert time.monotonic() - started < 5  # bounded by the timeout, not by the receiver
    assert len(receiver.requests) == 1


async def test_a_2xx_whose_body_stalls_is_delivered_with_what_arrived(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    receiver = start_receiver(lambda request, receiver: Reply(body=b"accepted, now ", stall=True))

    outcome = await sender.send(await checked(receiver.url()), {}, BODY, timeout=0.5)

    assert (outcome.delivered, outcome.status_code) == (True, 200)
    assert outcome.response_excerpt == "accepted, now "


async def test_redirect_is_a_failed_attempt_and_never_followed(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    elsewhere = start_receiver(answer(200))
    receiver = start_receiver(answer(302, Location=elsewhere.url("/internal")))

    outcome = await sender.send(await checked(receiver.url()), {}, BODY, timeout=5.0)

    assert not outcome.delivered
    assert outcome.status_code == 302
    assert outcome.error == f"redirect to {elsewhere.url('/internal')} not followed"
    assert len(receiver.requests) == 1
    assert elsewhere.requests == []


async def test_refused_connection_is_a_failed_attempt(
    sender: WebhookSender, closed_port: int
) -> None:
    target = await checked(f"http://127.0.0.1:{closed_port}/hook")

    outcome = await sender.send(target, {}, BODY, timeout=5.0)

    assert not outcome.delivered
    assert (outcome.status_code, outcome.error) == (None, "connection refused")


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_in_seconds_is_read_from_429_and_503(
    sender: WebhookSender, start_receiver: StartReceiver, status: int
) -> None:
    receiver = start_receiver(answer(status, **{"Retry-After": "120"}))

    outcome = await sender.send(await checked(receiver.url()), {}, BODY, timeout=5.0)

    assert not outcome.delivered
    assert (outcome.status_code, outcome.retry_after) == (status, 120.0)


async def test_retry_after_as_an_http_date_becomes_seconds(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    receiver = start_receiver(answer(429, **{"Retry-After": later}))

    outcome = await sender.send(await checked(receiver.url()), {}, BODY, timeout=5.0)

    assert outcome.retry_after is not None
    assert 3500 < outcome.retry_after <= 3600


async def test_retry_after_is_ignored_on_other_answers(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    receiver = start_receiver(answer(500, **{"Retry-After": "120"}))

    outcome = await sender.send(await checked(receiver.url()), {}, BODY, timeout=5.0)

    assert outcome.retry_after is None


async def test_excerpt_is_the_first_512_bytes_decoded_with_replacement(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    receiver = start_receiver(lambda request, receiver: Reply(body=b"\xff" + b"x" * 1_000_000))

    outcome = await sender.send(await checked(receiver.url()), {}, BODY, timeout=5.0)

    assert outcome.response_excerpt == "\ufffd" + "x" * 511


async def test_connects_to_the_checked_address_without_resolving_again(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    """`hooks.test` resolves nowhere: the attempt lands only because the checked address is
    used, while the name still goes in the Host header."""
    receiver = start_receiver(answer(200))
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    target = await resolve_public(
        f"http://hooks.test:{receiver.port}/hook", allow_private=True, resolve=resolve
    )
    outcome = await sender.send(target, {}, BODY, timeout=5.0)

    assert outcome.delivered
    assert lookups == ["hooks.test"]
    assert receiver.requests[0].headers["host"] == f"hooks.test:{receiver.port}"


async def test_concurrent_attempts_each_use_their_own_checked_address(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    first = start_receiver(answer(200, "first"))
    second = start_receiver(answer(200, "second"))

    outcomes = await asyncio.gather(
        *(
            sender.send(pinned(host, receiver), {}, BODY, timeout=5.0)
            for _ in range(5)
            for host, receiver in (("one.test", first), ("two.test", second))
        )
    )

    assert [o.response_excerpt for o in outcomes] == ["first", "second"] * 5
    assert {r.headers["host"] for r in first.requests} == {f"one.test:{first.port}"}
    assert {r.headers["host"] for r in second.requests} == {f"two.test:{second.port}"}


async def test_unsafe_url_is_refused_before_anything_is_sent(
    sender: WebhookSender, start_receiver: StartReceiver
) -> None:
    receiver = start_receiver(answer(200))

    # Resolving is where the check happens: no target to send to comes out of it.
    with pytest.raises(UnsafeWebhookUrl, match="loopback"):
        await resolve_public(receiver.url(), allow_private=False)

    assert receiver.requests == []


def _tls_contexts(tmp_path: Path, host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throw-away CA and a certificate for `host` signed by it, as (server, client)
    contexts. Made with the openssl command, which every machine of the project has."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")

    def run(command: str) -> None:
        subprocess.run([openssl, *command.split()], cwd=tmp_path, check=True, capture_output=True)

    new_key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    run(
        f"req -x509 {new_key} -keyout ca.key -out ca.pem -days 1 -subj /CN=burro-test-ca"
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
    )
    run(
        f"req -new {new_key} -keyout key.pem -out cert.csr -subj /CN={host}"
        f" -addext subjectAltName=DNS:{host}"
    )
    run(
        "x509 -req -in cert.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 1"
        " -copy_extensions copyall -out cert.pem"
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cafile=tmp_path / "ca.pem")
    return server, client


async def test_tls_is_verified_against_the_host_name_not_the_checked_address(
    start_receiver: StartReceiver, tmp_path: Path
) -> None:
    server_tls, client_tls = _tls_contexts(tmp_path, "hooks.test")
    receiver = start_receiver(answer(200, "secure"), ssl_context=server_tls)

    async with WebhookSender(ssl_context=client_tls) as sender:
        good = await sender.send(pinned("hooks.test", receiver), {}, BODY, timeout=5.0)
        wrong = await sender.send(pinned("other.test", receiver), {}, BODY, timeout=5.0)

    assert (good.delivered, good.response_excerpt) == (True, "secure")
    assert not wrong.delivered
    assert wrong.error is not None and wrong.error.startswith("TLS certificate not accepted")
    assert "other.test" in wrong.error
    assert len(receiver.requests) == 1
