"""Clients of Burro as a tenant: plain HTTP (sync or async) and the official openai SDK."""

from __future__ import annotations

import httpx
import openai

# The tenants every test's settings know, and their API keys.
TENANT_KEYS = (("acme", "key-acme"), ("globex", "key-globex"))
_KEYS = dict(TENANT_KEYS)
TIMEOUT = 30.0


def api_key(tenant: str) -> str:
    """The test API key of `tenant` ('acme' or 'globex')."""
    return _KEYS[tenant]


def auth_headers(tenant: str | None = None, *, key: str | None = None) -> dict[str, str]:
    """`Authorization` for `tenant`, or for a raw `key`; no header for neither."""
    key = key if key is not None else (api_key(tenant) if tenant is not None else None)
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def tenant_client(
    base_url: str, tenant: str | None = "acme", *, key: str | None = None
) -> httpx.Client:
    """An HTTP client of Burro at `base_url` as `tenant` (None: without a key)."""
    return httpx.Client(base_url=base_url, headers=auth_headers(tenant, key=key), timeout=TIMEOUT)


def async_tenant_client(
    base_url: str, tenant: str | None = "acme", *, key: str | None = None
) -> httpx.AsyncClient:
    """As `tenant_client`, for tests whose event loop must keep running while Burro answers."""
    return httpx.AsyncClient(
        base_url=base_url, headers=auth_headers(tenant, key=key), timeout=TIMEOUT
    )


def tenant_sdk(base_url: str, tenant: str = "acme", *, key: str | None = None) -> openai.OpenAI:
    """The official openai SDK pointed at Burro's `/v1`, as `tenant`, without retries."""
    return openai.OpenAI(
        base_url=f"{base_url}/v1", api_key=key or api_key(tenant), max_retries=0, timeout=TIMEOUT
    )
