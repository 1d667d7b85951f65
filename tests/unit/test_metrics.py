"""The metrics helpers count into the one registry the API and the worker serve."""

from __future__ import annotations

from service import metrics


def test_the_helpers_count_into_the_one_registry() -> None:
    def value(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    calls = {"provider": "openai", "operation": "chat.completions", "outcome": "rate_limited"}
    before_calls = value("burro_upstream_calls_total", **calls)
    before_errors = value("burro_upstream_errors_total", provider="openai", outcome="rate_limited")
    before_hooks = value("burro_webhook_attempts_total", outcome="timeout")
    before_overhead = value("burro_proxy_overhead_seconds_count")
    before_moves = value("burro_job_transitions_total", status="succeeded")

    metrics.count_upstream_call("openai", "chat.completions", "rate_limited", seconds=0.2)
    metrics.count_upstream_call("openai", "chat.completions")  # ok: not an error
    metrics.count_webhook_attempt("timeout")
    metrics.observe_proxy_overhead(0.0012)
    metrics.count_job_transition("succeeded")

    assert value("burro_upstream_calls_total", **calls) == before_calls + 1
    assert (
        value("burro_upstream_errors_total", provider="openai", outcome="rate_limited")
        == before_errors + 1
    )
    assert value("burro_webhook_attempts_total", outcome="timeout") == before_hooks + 1
    assert value("burro_proxy_overhead_seconds_count") == before_overhead + 1
    assert value("burro_job_transitions_total", status="succeeded") == before_moves + 1
