"""Settings: one frozen object, read from the environment once and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_RESCUE_URL = "docs/shutdowns.md#rescue-an-alias-before-its-model-shuts-down"


class ProviderSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where one named upstream lives and how to reach it."""

    name: str
    # "openai" (any OpenAI-compatible server), "azure", or "local": Burro's own trainers, which
    # take jobs from Redis and whose model server answers chat at `base_url`.
    kind: str = "openai"
    base_url: str | None = None
    api_key: str | None = None
    api_version: str | None = None  # Azure only
    # OpenAI's list endpoint filters by metadata, which lets one call refresh many jobs.
    supports_list_polling: bool = True
    # OpenAI's `POST /fine_tuning/jobs/{id}/pause` and `/resume`: OpenAI, Azure and the sandbox
    # have them; a provider without them says False, and Burro refuses to pause its jobs.
    supports_pause: bool = True


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything Burro reads from its environment."""

    redis_url: str | None = None
    data_dir: Path = Path("data")
    api_keys: tuple[tuple[str, str], ...] = ()  # (tenant, key) pairs for development
    default_provider: str = "sandbox"
    providers: tuple[ProviderSettings, ...] = ()
    openai_webhook_secret: str | None = None
    poll_interval: float = 10.0
    # Jobs of one poll pass mirrored at once, each with up to three upstream reads in flight.
    # More only pays for an upstream far away: near, the worker's CPU is the limit, and every
    # extra connection in the client's pool costs each request a look at it.
    poll_concurrency: int = 8
    stuck_after: float = 3600.0
    webhook_timeout: float = 15.0
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    webhook_allow_private: bool = False
    max_dataset_bytes: int = 512 * 1024 * 1024
    allowed_base_models: tuple[str, ...] = ()
    models_file: Path | None = None
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a terminal
    # Requests per second per tenant (0: no limit) and how many may come at once.
    rate_limit: float = 50.0
    rate_limit_burst: int = 100
    max_active_jobs: int = 0  # unfinished jobs per tenant; 0: unlimited
    monthly_budget_usd: float = 0.0  # training spend per tenant and calendar month; 0: unlimited
    # What an hour of `burro trainer` time costs: prices local models' estimates (and so their
    # share of the budget) from their estimated duration; 0: local training is free.
    trainer_usd_per_hour: float = 0.0
    metrics_port: int = 0  # the worker serves /metrics on this port; 0: not at all
    # Slow or endless requests: the server closes a connection whose headers are not complete
    # after `header_timeout` s; a body that sends nothing for `body_idle_timeout` s is a 408.
    header_timeout: float = 10.0
    body_idle_timeout: float = 30.0
    # Wrong API keys per client address: `auth_failures_per_minute` on average, a burst of
    # `auth_failure_burst`, then 429 until the address slows down (0: no limit).
    auth_failures_per_minute: float = 10.0
    auth_failure_burst: int = 20
    # A trainer holds a job it trains by a lease it renews; one that stops renewing for this
    # long is taken for dead, and another trainer resumes the job from its last checkpoint.
    trainer_lease_seconds: float = 30.0
    # Base models prepared for training and serving (a GGUF file dequantized once); None:
    # `<data dir>/base-models`.
    base_models_dir: Path | None = None
    # A vLLM server that serves the local models instead of `burro model-server`: trainers
    # register each adapter there (trainer.serving.vllm); BURRO_LOCAL_URL then points at it.
    vllm_url: str | None = None
    # Where a `model.shutdown_approaching` webhook sends people to rescue their alias: the
    # deployment's published copy of the caller's guide, ideally.
    rescue_url: str = DEFAULT_RESCUE_URL
    # Where a worker stops dead (service.faults): only crash tests set these.
    fault_points: tuple[str, ...] = ()

    def provider(self, name: str) -> ProviderSettings | None:
        """The provider configured under `name`, if any."""
        return next((p for p in self.providers if p.name == name), None)

    def trains_locally(self, name: str) -> bool:
        """The provider `name` is Burro's own trainers (kind `local`)."""
        provider = self.provider(name)
        return provider is not None and provider.kind == "local"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `environ` (the process environment by default)."""
        env = os.environ if environ is None else environ
        openai_key = env.get("OPENAI_API_KEY") or None
        providers = _providers_from_env(env, openai_key)
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            data_dir=Path(env.get("BURRO_DATA_DIR", "data")),
            api_keys=_parse_api_keys(env.get("BURRO_API_KEYS", "")),
            default_provider=env.get("BURRO_PROVIDER") or ("openai" if openai_key else "sandbox"),
            providers=providers,
            openai_webhook_secret=env.get("OPENAI_WEBHOOK_SECRET") or None,
            poll_interval=float(env.get("BURRO_POLL_INTERVAL", "10")),
            poll_concurrency=_parse_concurrency(env.get("BURRO_POLL_CONCURRENCY", "8")),
            stuck_after=float(env.get("BURRO_STUCK_AFTER", "3600")),
            webhook_timeout=float(env.get("BURRO_WEBHOOK_TIMEOUT", "15")),
            webhook_retry_schedule=_parse_schedule(env.get("BURRO_WEBHOOK_RETRY_SCHEDULE")),
            webhook_allow_private=_parse_bool(env.get("BURRO_WEBHOOK_ALLOW_PRIVATE", "false")),
            max_dataset_bytes=int(env.get("BURRO_MAX_DATASET_BYTES", str(512 * 1024 * 1024))),
            allowed_base_models=tuple(
                m.strip() for m in env.get("BURRO_ALLOWED_BASE_MODELS", "").split(",") if m.strip()
            ),
            models_file=Path(env["BURRO_MODELS_FILE"]) if env.get("BURRO_MODELS_FILE") else None,
            log_level=env.get("BURRO_LOG_LEVEL", "INFO").upper(),
            log_json=_parse_bool(env["BURRO_LOG_JSON"]) if env.get("BURRO_LOG_JSON") else None,
            rate_limit=float(env.get("BURRO_RATE_LIMIT", "50")),
            rate_limit_burst=int(env.get("BURRO_RATE_LIMIT_BURST", "100")),
            max_active_jobs=int(env.get("BURRO_MAX_ACTIVE_JOBS", "0")),
            monthly_budget_usd=float(env.get("BURRO_MONTHLY_BUDGET_USD", "0")),
            trainer_usd_per_hour=_parse_price(env.get("BURRO_TRAINER_USD_PER_HOUR", "0")),
            metrics_port=int(env.get("BURRO_METRICS_PORT", "0")),
            header_timeout=float(env.get("BURRO_HEADER_TIMEOUT", "10")),
            body_idle_timeout=float(env.get("BURRO_BODY_IDLE_TIMEOUT", "30")),
            auth_failures_per_minute=float(env.get("BURRO_AUTH_FAILURES_PER_MINUTE", "10")),
            auth_failure_burst=int(env.get("BURRO_AUTH_FAILURE_BURST", "20")),
            trainer_lease_seconds=float(env.get("BURRO_TRAINER_LEASE_SECONDS", "30")),
            base_models_dir=(
                Path(env["BURRO_BASE_MODELS_DIR"]) if env.get("BURRO_BASE_MODELS_DIR") else None
            ),
            vllm_url=env.get("BURRO_VLLM_URL") or None,
            rescue_url=env.get("BURRO_RESCUE_URL") or DEFAULT_RESCUE_URL,
            fault_points=tuple(
                p.strip() for p in env.get("BURRO_FAULT_POINTS", "").split(",") if p.strip()
            ),
        )


def _parse_price(raw: str) -> float:
    price = float(raw)
    if not price >= 0:  # also refuses nan
        raise ValueError(f"BURRO_TRAINER_USD_PER_HOUR must be a price of 0 or more, not {raw!r}")
    return price


def _parse_concurrency(raw: str) -> int:
    concurrency = int(raw)
    if concurrency < 1:
        raise ValueError(f"BURRO_POLL_CONCURRENCY must be 1 or more, not {raw!r}")
    return concurrency


def _parse_api_keys(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        tenant, sep, key = item.partition(":")
        if not sep or not tenant or not key:
            raise ValueError("BURRO_API_KEYS takes tenant:key pairs, comma separated")
        pairs.append((tenant, key))
    return tuple(pairs)


def _parse_schedule(raw: str | None) -> tuple[float, ...]:
    if not raw:
        return DEFAULT_RETRY_SCHEDULE
    return tuple(float(s) for s in raw.split(",") if s.strip())


def _parse_bool(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _providers_from_env(
    env: Mapping[str, str], openai_key: str | None
) -> tuple[ProviderSettings, ...]:
    """The built-in providers plus any named by `BURRO_PROVIDERS`.

    `BURRO_PROVIDERS=name1,name2` adds OpenAI-compatible upstreams, each configured by
    `BURRO_PROVIDER_<NAME>_BASE_URL` and `BURRO_PROVIDER_<NAME>_API_KEY`.
    """
    providers = [
        ProviderSettings(
            name="openai",
            base_url=env.get("OPENAI_BASE_URL") or None,
            api_key=openai_key,
        ),
        ProviderSettings(
            name="sandbox",
            base_url=env.get("BURRO_SANDBOX_URL", "http://127.0.0.1:8766/v1"),
            api_key="sandbox",
        ),
    ]
    providers.append(
        ProviderSettings(
            name="local",
            kind="local",
            # The model server of `burro trainer` (several trainers: a load balancer in front).
            base_url=env.get("BURRO_LOCAL_URL", "http://127.0.0.1:8767/v1"),
            supports_list_polling=False,
            supports_pause=False,
        )
    )
    if env.get("AZURE_OPENAI_ENDPOINT"):
        providers.append(
            ProviderSettings(
                name="azure",
                kind="azure",
                base_url=env["AZURE_OPENAI_ENDPOINT"],
                api_key=env.get("AZURE_OPENAI_API_KEY"),
                api_version=env.get("OPENAI_API_VERSION", "2025-04-01-preview"),
            )
        )
    for name in filter(None, (n.strip() for n in env.get("BURRO_PROVIDERS", "").split(","))):
        prefix = f"BURRO_PROVIDER_{name.upper().replace('-', '_')}_"
        providers.append(
            ProviderSettings(
                name=name,
                base_url=env.get(prefix + "BASE_URL"),
                api_key=env.get(prefix + "API_KEY"),
            )
        )
    return tuple(providers)
