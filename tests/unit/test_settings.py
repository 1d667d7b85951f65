"""Settings are read from an environment mapping, once, into one typed object."""

import pytest

from service.settings import DEFAULT_RETRY_SCHEDULE, Settings


def test_defaults_pick_the_sandbox_without_an_openai_key() -> None:
    settings = Settings.from_env({})
    assert settings.default_provider == "sandbox"
    assert settings.webhook_retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert settings.max_dataset_bytes == 512 * 1024 * 1024
    assert settings.webhook_allow_private is False


def test_an_openai_key_makes_openai_the_default_provider() -> None:
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://x/v1"})
    assert settings.default_provider == "openai"
    openai = settings.provider("openai")
    assert openai is not None
    assert (openai.api_key, openai.base_url) == ("sk-test", "http://x/v1")


def test_api_keys_schedule_and_named_providers_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "BURRO_API_KEYS": "acme:k1, globex:k2",
            "BURRO_WEBHOOK_RETRY_SCHEDULE": "1,2.5,10",
            "BURRO_WEBHOOK_ALLOW_PRIVATE": "true",
            "BURRO_PROVIDERS": "local-vllm",
            "BURRO_PROVIDER_LOCAL_VLLM_BASE_URL": "http://127.0.0.1:9000/v1",
            "BURRO_PROVIDER_LOCAL_VLLM_API_KEY": "secret",
            "BURRO_ALLOWED_BASE_MODELS": "gpt-4.1-mini-2025-04-14, gpt-4o-mini-2024-07-18",
        }
    )
    assert settings.api_keys == (("acme", "k1"), ("globex", "k2"))
    assert settings.webhook_retry_schedule == (1.0, 2.5, 10.0)
    assert settings.webhook_allow_private is True
    local = settings.provider("local-vllm")
    assert local is not None and local.base_url == "http://127.0.0.1:9000/v1"
    assert settings.allowed_base_models == ("gpt-4.1-mini-2025-04-14", "gpt-4o-mini-2024-07-18")


def test_a_malformed_api_key_list_is_refused() -> None:
    with pytest.raises(ValueError, match="tenant:key"):
        Settings.from_env({"BURRO_API_KEYS": "no-colon-here"})


def test_settings_read_the_limits_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "BURRO_RATE_LIMIT": "20",
            "BURRO_RATE_LIMIT_BURST": "40",
            "BURRO_MAX_ACTIVE_JOBS": "5",
            "BURRO_MONTHLY_BUDGET_USD": "250.5",
            "BURRO_METRICS_PORT": "9100",
        }
    )
    assert (settings.rate_limit, settings.rate_limit_burst) == (20.0, 40)
    assert (settings.max_active_jobs, settings.monthly_budget_usd) == (5, 250.5)
    assert settings.metrics_port == 9100
    defaults = Settings.from_env({})
    assert (defaults.rate_limit, defaults.rate_limit_burst) == (50.0, 100)
    assert (defaults.max_active_jobs, defaults.monthly_budget_usd) == (0, 0.0)
    assert defaults == Settings(default_provider="sandbox", providers=defaults.providers)


def test_a_trainer_hour_is_free_unless_priced() -> None:
    assert Settings.from_env({}).trainer_usd_per_hour == 0.0
    priced = Settings.from_env({"BURRO_TRAINER_USD_PER_HOUR": "1.25"})
    assert priced.trainer_usd_per_hour == 1.25


@pytest.mark.parametrize("price", ["-1", "nan"])
def test_a_trainer_hour_price_below_zero_is_refused(price: str) -> None:
    with pytest.raises(ValueError, match="BURRO_TRAINER_USD_PER_HOUR"):
        Settings.from_env({"BURRO_TRAINER_USD_PER_HOUR": price})


def test_a_poll_pass_mirrors_eight_jobs_at_once_unless_told() -> None:
    assert Settings.from_env({}).poll_concurrency == 8
    assert Settings.from_env({"BURRO_POLL_CONCURRENCY": "32"}).poll_concurrency == 32


@pytest.mark.parametrize("concurrency", ["0", "-3"])
def test_a_poll_concurrency_below_one_is_refused(concurrency: str) -> None:
    with pytest.raises(ValueError, match="BURRO_POLL_CONCURRENCY"):
        Settings.from_env({"BURRO_POLL_CONCURRENCY": concurrency})
