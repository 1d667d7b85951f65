"""Wrong API keys are limited per client address: after a burst, 429 for every request from that
address (the right key too) until it waits; other addresses are not affected."""

from __future__ import annotations

import httpx
import msgspec
import openai
import pytest

from service.settings import Settings
from tests.support.fixtures import MakeClient, ServeBurro

BURST = 5
# Clients behind the (trusted, loopback) proxy that the test client plays.
ATTACKER = {"X-Forwarded-For": "203.0.113.7"}
NEIGHBOUR = {"X-Forwarded-For": "203.0.113.8"}


@pytest.fixture
def burro(settings: Settings, serve_burro: ServeBurro) -> str:
    """Burro of this test's own, limiting wrong keys to a burst of BURST, then one a minute."""
    limited = msgspec.structs.replace(
        settings, auth_failures_per_minute=1, auth_failure_burst=BURST
    )
    return serve_burro(limited)


@pytest.fixture
def http(burro: str, make_client: MakeClient) -> httpx.Client:
    """A client of that Burro without a key: each request says which key it tries."""
    return make_client(None, base_url=burro)


def test_wrong_keys_from_one_address_meet_429_after_the_burst(http: httpx.Client) -> None:
    statuses = [
        http.get("/v1/jobs", headers={**ATTACKER, "Authorization": f"Bearer guess-{i}"})
        for i in range(BURST + 3)
    ]
    assert [r.status_code for r in statuses] == [401] * BURST + [429] * 3
    refused = statuses[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["status"] == 429
    # The right key is refused too while the address waits: guessing learns nothing.
    right = http.get("/v1/jobs", headers={**ATTACKER, "Authorization": "Bearer key-acme"})
    assert right.status_code == 429
    # Another address is not affected.
    other = http.get("/v1/jobs", headers={**NEIGHBOUR, "Authorization": "Bearer key-acme"})
    assert other.status_code == 200


def test_requests_without_a_key_are_not_counted_as_guesses(http: httpx.Client) -> None:
    for _ in range(BURST * 3):
        assert http.get("/v1/jobs", headers=ATTACKER).status_code == 401
    right = http.get("/v1/jobs", headers={**ATTACKER, "Authorization": "Bearer key-acme"})
    assert right.status_code == 200


def test_the_chat_path_answers_too_many_wrong_keys_in_openais_shape(burro: str) -> None:
    with openai.OpenAI(
        base_url=f"{burro}/v1", api_key="guess", max_retries=0, default_headers=ATTACKER
    ) as sdk:
        for _ in range(BURST):
            with pytest.raises(openai.AuthenticationError):
                sdk.chat.completions.create(model="donkey", messages=[])
        with pytest.raises(openai.RateLimitError) as limited:
            sdk.chat.completions.create(model="donkey", messages=[])
    assert limited.value.code == "rate_limit_exceeded"
