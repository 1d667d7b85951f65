"""Upstreams by name: one OpenAI (or Azure OpenAI) client per configured provider, made once.

Every client has `max_retries=0`: the SDK never repeats a request by itself (a repeated create
could start a second job). Burro retries explicitly, with bounded backoff, in the workers.
"""

from __future__ import annotations

from typing import Any

import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI

from service.errors import Unprocessable
from service.settings import ProviderSettings, Settings

# Seconds. Reads are quick; an upload may carry a 64 MiB part.
REQUEST_TIMEOUT = 60.0
UPLOAD_TIMEOUT = 600.0


class UnknownProvider(Unprocessable):
    code = "unknown_provider"


def make_client(provider: ProviderSettings) -> AsyncOpenAI:
    """A client for one provider (Azure's for `kind="azure"`)."""
    api_key = provider.api_key or "unset"  # the SDK insists on one; the upstream will refuse it
    if provider.kind == "azure":
        if not provider.base_url:
            raise ValueError(f"provider {provider.name!r} (azure) needs a base_url (endpoint)")
        return AsyncAzureOpenAI(
            azure_endpoint=provider.base_url,
            api_key=api_key,
            api_version=provider.api_version,
            timeout=REQUEST_TIMEOUT,
            max_retries=0,
        )
    return AsyncOpenAI(
        api_key=api_key, base_url=provider.base_url, timeout=REQUEST_TIMEOUT, max_retries=0
    )


class Providers:
    """The clients of every configured provider, made once per process and closed at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, AsyncOpenAI] = {}

    def client(self, name: str) -> AsyncOpenAI:
        """The client for provider `name` (UnknownProvider when it is not configured)."""
        client = self._clients.get(name)
        if client is None:
            provider = self.settings.provider(name)
            if provider is None:
                raise UnknownProvider(f"provider: no provider named {name!r} is configured.")
            client = self._clients[name] = make_client(provider)
        return client

    def supports_list_polling(self, name: str) -> bool:
        provider = self.settings.provider(name)
        return provider is not None and provider.supports_list_polling

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


class UpstreamFailure(Exception):
    """An upstream call failed; `transient` says whether trying again later may succeed."""

    def __init__(self, code: str, message: str, *, transient: bool, status: int | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient
        self.status = status


def classify(exc: BaseException) -> UpstreamFailure | None:
    """What an SDK exception means for Burro: 429, 5xx, timeouts and lost connections are
    transient; any other answer (403 `training_not_available`, 400, …) is permanent."""
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamFailure("upstream_timeout", str(exc), transient=True, status=None)
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamFailure("upstream_unreachable", str(exc), transient=True, status=None)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body: Any = exc.body
        message = exc.message
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
        code = exc.code or f"upstream_{status}"
        transient = status == 429 or status >= 500 or status in (408, 409)
        return UpstreamFailure(code, message, transient=transient, status=status)
    return None
