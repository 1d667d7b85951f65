"""`Retry-After` as receivers send it: seconds or an HTTP date, anything else ignored."""

from __future__ import annotations

import datetime as dt

from service.webhooks.delivery import parse_retry_after


def test_parse_retry_after_forms() -> None:
    now = dt.datetime(2026, 11, 26, 15, 0, tzinfo=dt.UTC).timestamp()
    assert parse_retry_after("30", now=now) == 30.0
    assert parse_retry_after("Thu, 26 Nov 2026 15:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Thu, 26 Nov 2026 14:00:00 GMT", now=now) == 0.0  # in the past
    for unusable in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(unusable, now=now) is None
