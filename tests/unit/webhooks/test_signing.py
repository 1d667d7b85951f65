"""Standard Webhooks signatures: what receivers check with their own libraries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
import standardwebhooks

from service.webhooks.signing import new_message_id, new_secret, secret_key, sign

BODY = '{"type": "job.failed", "data": {"id": "job_1", "error": "ünïcode"}}'.encode()


def test_new_secret_is_whsec_and_base64_of_random_bytes() -> None:
    secret = new_secret()

    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert 24 <= len(key) <= 32
    assert secret_key(secret) == key
    assert new_secret() != secret


def test_new_message_ids_are_prefixed_and_unique() -> None:
    ids = {new_message_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(i.startswith("msg_") for i in ids)


def test_signed_message_verifies_with_the_standardwebhooks_library() -> None:
    secret, msg_id, now = new_secret(), new_message_id(), int(time.time())

    headers = sign(secret, msg_id, now, BODY)

    assert headers["webhook-id"] == msg_id
    assert headers["webhook-timestamp"] == str(now)
    assert standardwebhooks.Webhook(secret).verify(BODY, headers)["data"]["id"] == "job_1"


def test_signature_is_hmac_sha256_over_id_timestamp_and_body() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

    headers = sign(secret, "msg_1", 1764160000, BODY)

    digest = hmac.new(key, b"msg_1.1764160000." + BODY, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def test_changed_body_or_other_secret_does_not_verify() -> None:
    secret, now = new_secret(), int(time.time())
    headers = sign(secret, new_message_id(), now, BODY)

    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(BODY, headers)


def test_unpadded_secret_is_accepted() -> None:
    key = bytes(range(25))
    unpadded = "whsec_" + base64.b64encode(key).decode().rstrip("=")

    assert secret_key(unpadded) == key


@pytest.mark.parametrize(
    ("secret", "complaint"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with 'whsec_'"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes, not 5"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "24 to 64 bytes, not 65"),
    ],
)
def test_unusable_secret_is_refused_with_a_reason(secret: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        secret_key(secret)
    with pytest.raises(ValueError, match=complaint):
        sign(secret, "msg_1", 1764160000, BODY)
