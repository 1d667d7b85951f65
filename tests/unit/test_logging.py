"""Logs never carry secrets: keys, webhook secrets and Authorization headers are redacted."""

from service.logging import REDACTED, redact_secrets


def test_secret_fields_are_redacted_by_name() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "x",
            "authorization": "Bearer abc",
            "api_key": "sk-live-123456789",
            "webhook_secret": "whsec_AAAA",
            "tenant": "acme",
        },
    )
    assert event["authorization"] == REDACTED
    assert event["api_key"] == REDACTED
    assert event["webhook_secret"] == REDACTED
    assert event["tenant"] == "acme"


def test_secret_values_are_redacted_wherever_they_appear() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "upstream said Bearer sk-abcdefghijklmnop was wrong",
            "headers": {"Authorization": "Bearer xyz", "accept": "json"},
            "notes": ["secret is whsec_c2VjcmV0"],
        },
    )
    assert "sk-abcdefghijklmnop" not in event["event"]
    assert event["headers"] == {"Authorization": REDACTED, "accept": "json"}
    assert event["notes"] == [f"secret is {REDACTED}"]
