"""A worker process loads none of the API's web machinery: no Litestar, no routes, no request
context, no chat proxy, no rate limiter."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT


def test_a_worker_loads_no_web_framework_routes_request_context_proxy_or_rate_limiter() -> None:
    code = "import json, sys, workers.main; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "workers.relay" in loaded and "service.effects" in loaded
    forbidden = {
        m
        for m in loaded
        if m == "litestar"
        or m.startswith("litestar.")
        or m.endswith(".routes")
        or m
        in {
            "service.app",
            "service.aliases",
            "service.context",
            "service.health",
            "service.inference.proxy",
            "service.limits",
        }
    }
    assert forbidden == set()
