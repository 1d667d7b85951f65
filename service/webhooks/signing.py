"""Webhook → signature: secrets, message ids and the Standard Webhooks headers of one message.

The HMAC is computed here rather than with the `standardwebhooks` package: that package is only
a development dependency of Burro (the tests verify with it), its `sign` takes the body as text
where the specification signs bytes, and the whole scheme is one HMAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from service.ids import new_id

SECRET_PREFIX = "whsec_"  # noqa: S105 -- a prefix, not a secret
# Standard Webhooks asks for keys of 24 to 64 bytes; Burro makes 32-byte ones.
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
_NEW_KEY_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_NEW_KEY_BYTES)).decode("ascii")


def new_message_id() -> str:
    """A `msg_` id that sorts by creation time; one message keeps it on every retry."""
    return new_id("msg_")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_` secret. ValueError (with a message fit for the caller)
    when the secret is not `whsec_` + base64 of 24 to 64 bytes: use it to check secrets that
    callers bring."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        # Unpadded base64 is common in the wild; padding it back costs nothing.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is base64 after 'whsec_'") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"a webhook secret holds {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, not {len(key)}"
        )
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one message, as Standard Webhooks defines it."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers that let a receiver check a message came from Burro, unchanged.

    `timestamp` is Unix seconds at this attempt (receivers refuse stale ones), so a retry is
    signed again with the same `msg_id` and a new timestamp.
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }
