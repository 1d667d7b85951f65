"""Wrong API keys are limited per client address: after a burst, 429 for every request from that
address (the right key too) until it waits; other addresses are not affected."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import openai
import pytest

from burro.testing import serve_in_thread
from service.app import create_app
from service.settings import Settings

BURST = 5
# Clients behind the (trusted, loopback) proxy that the test client plays.
ATTACKER = {"X-Forwarded-For": "203.0.113.7"}
NEIGHBOUR = {"X-Forwarded-For": "203.0.113.8"}


@pytest.fixture
def burro(settings: Settings) -> Iterator[str]:
    limited = msgspec.structs.replace(
        settings, auth_failures_per_minute=1, auth_failure_burst=BURST
    )
    with serve_in_thread(create_app(limited, configure_logs=False)) as url:
        yield url


def test_wrong_keys_from_one_address_meet_429_after_the_burst(burro: str) -> None:
    with httpx.Client(base_url=burro, timeout=30) as http:
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


def test_requests_without_a_key_are_not_counted_as_guesses(burro: str) -> None:
    with httpx.Client(base_url=burro, timeout=30) as http:
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
