"""Serving local models on vLLM instead of `burro model-server` (a GPU host).

With `BURRO_VLLM_URL` set, a trainer registers every adapter it saves (each epoch's checkpoint
and the final adapter) with vLLM's runtime LoRA endpoint, `POST /v1/load_lora_adapter`, under
the model name Burro gives it, and `BURRO_LOCAL_URL` points the API's chat at that vLLM. vLLM
forgets runtime adapters when it restarts: a trainer registers every finished job's adapter
again when it starts.

vLLM must run with runtime LoRA updating on (see docs/local.md for the flags), and read the
adapter directories where the trainers write them (shared storage).
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from pathlib import Path

import anyio
import httpx
import structlog

from service.retries import backoff

log = structlog.get_logger("burro.trainer")

__all__ = ["register_adapter"]

# Loading an adapter reads its weights from storage: seconds, not minutes.
TIMEOUT = 60.0
TRIES = 4
# vLLM answers 400 when an adapter of that name is loaded already: registered, then.
_ALREADY_LOADED = "already been loaded"


async def register_adapter(
    client: httpx.AsyncClient, vllm_url: str, model: str, adapter_dir: Path
) -> str | None:
    """Load `adapter_dir` into vLLM as `model`; None when done, else why not (after retrying
    what may pass: connection errors and 5xx)."""
    url = vllm_url.rstrip("/") + "/load_lora_adapter"
    body = {"lora_name": model, "lora_path": str(await anyio.Path(adapter_dir).resolve())}
    problem = "not tried"
    for attempt in range(1, TRIES + 1):
        try:
            response = await client.post(url, json=body, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.is_success or _ALREADY_LOADED in response.text:
                log.info("vllm.adapter_registered", model=model)
                return None
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR:
                return problem  # a refusal: trying again will not help
        if attempt < TRIES:
            await asyncio.sleep(backoff(attempt, base=0.5, cap=5.0))
    return problem
