"""Opaque, prefixed identifiers (`ds_`, `job_`, `whe_`, `msg_`, `eval_`)."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    """A unique id that sorts by creation time: prefix, milliseconds, then randomness."""
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(8)}"
