"""docker-compose.yml and the Dockerfile agree with the code: commands, ports, settings, volumes.

No Docker engine runs here; the files are parsed and checked against what Burro reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from burro.cli import build_parser
from sandbox.config import SandboxConfig
from service.app import create_app
from service.queue import HEALTH_CHECK_KEY
from service.settings import Settings
from tests.support import ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
BURRO_SERVICES = ("api", "worker", "sandbox")


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every variable the code asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the code must ask for variables by name")

    def given(self) -> set[str]:
        """Every variable the environment holds."""
        return set(self._values)

    def __len__(self) -> int:
        return len(self._values)


def interpolate(value: object) -> str:
    """Compose's `${VAR:-default}` with nothing set in the shell: the default."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", str(value))


def environment(service: str) -> dict[str, str]:
    return {k: interpolate(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def command(service: str) -> list[str]:
    cmd = SERVICES[service]["command"]
    assert isinstance(cmd, list), "exec form, so no shell sits between Docker and burro"
    return [str(part) for part in cmd]


def dockerfile_instruction(name: str) -> list[str]:
    return [
        line.split(None, 1)[1].strip()
        for line in DOCKERFILE.splitlines()
        if line.upper().startswith(name + " ")
    ]


def settings_for(service: str) -> Settings:
    return Settings.from_env(environment(service))


@pytest.mark.parametrize("service", BURRO_SERVICES)
def test_every_command_is_a_real_burro_subcommand(service: str) -> None:
    program, *args = command(service)
    assert program == "burro"
    build_parser().parse_args(args)  # exits (fails the test) on an unknown command or option


def test_the_image_runs_the_api_by_default_as_compose_does() -> None:
    (cmd,) = dockerfile_instruction("CMD")
    assert json.loads(cmd) == command("api")


@pytest.mark.parametrize("service", BURRO_SERVICES)
def test_every_variable_compose_sets_is_one_the_code_reads(service: str) -> None:
    env = RecordingEnv(environment(service))
    Settings.from_env(env)
    SandboxConfig.from_env(env)
    assert env.given() <= env.read, f"never read: {sorted(env.given() - env.read)}"


def test_the_api_and_the_worker_share_redis_and_settings() -> None:
    api, worker = settings_for("api"), settings_for("worker")
    assert api.redis_url == worker.redis_url == "redis://redis:6379/0"
    assert api.redis_url is not None
    host_port = api.redis_url.split("//")[1].split("/")[0]
    assert host_port == "redis:6379" and "redis" in SERVICES
    assert api.data_dir == worker.data_dir == Path("/data")
    assert api.rate_limit == Settings().rate_limit and api.rate_limit_burst == 100
    assert api.openai_webhook_secret is None  # an empty passthrough is unset, not ""
    # Without OPENAI_API_KEY, jobs train on the compose file's sandbox service.
    assert api.default_provider == "sandbox"
    sandbox = api.provider("sandbox")
    assert sandbox is not None and sandbox.base_url is not None
    assert sandbox.base_url.startswith("http://sandbox:")
    sandbox_port = build_parser().parse_args(command("sandbox")[1:]).port
    assert sandbox.base_url == f"http://sandbox:{sandbox_port}/v1"


def test_the_api_port_is_the_one_burro_serve_listens_on() -> None:
    args = build_parser().parse_args(command("api")[1:])
    assert args.host == "0.0.0.0"
    published = [str(p) for p in SERVICES["api"]["ports"]]
    assert published == [f"{args.port}:{args.port}"]
    assert dockerfile_instruction("EXPOSE") == [str(args.port)]
    assert build_parser().parse_args(["serve"]).port == args.port  # burro serve's default


def test_the_api_health_check_asks_a_real_route_on_the_served_port() -> None:
    args = build_parser().parse_args(command("api")[1:])
    check = " ".join(SERVICES["api"]["healthcheck"]["test"])
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", check)
    assert url is not None
    assert int(url.group(1)) == args.port
    paths = {route.path for route in create_app(Settings(), configure_logs=False).routes}
    assert url.group(2) in paths


def test_the_worker_health_check_asks_its_own_metrics_server() -> None:
    check = " ".join(SERVICES["worker"]["healthcheck"]["test"])
    url = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", check)
    assert url is not None
    assert int(url.group(1)) == settings_for("worker").metrics_port
    assert HEALTH_CHECK_KEY.startswith("burro:")  # arq's own key stays available to readiness


def test_redis_keeps_every_write_and_never_evicts() -> None:
    redis = SERVICES["redis"]
    args = [str(a) for a in redis["command"]]
    assert args[0] == "redis-server"
    flags = dict(zip(args[1::2], args[2::2], strict=True))
    assert flags["--appendonly"] == "yes"
    assert flags["--appendfsync"] == "everysec"
    assert flags["--maxmemory-policy"] == "noeviction"  # arq's keys must never be evicted
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert "redis-cli" in redis["healthcheck"]["test"]


@pytest.mark.parametrize("service", ["api", "worker"])
def test_datasets_live_on_one_volume_mounted_at_the_data_dir(service: str) -> None:
    mounts = [str(v) for v in SERVICES[service]["volumes"]]
    assert f"datasets:{settings_for(service).data_dir}" in mounts
    assert "datasets" in COMPOSE["volumes"]
    # The image's own default, for `docker run` without compose.
    assert re.search(rf"\bBURRO_DATA_DIR={settings_for(service).data_dir}\s", DOCKERFILE)


@pytest.mark.parametrize("service", ["api", "worker"])
def test_burro_waits_for_a_healthy_redis(service: str) -> None:
    assert SERVICES[service]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_image_runs_as_an_unprivileged_user() -> None:
    users = dockerfile_instruction("USER")
    assert users and users[-1] not in {"root", "0"}
    assert DOCKERFILE.splitlines()[0].startswith("#")
    assert dockerfile_instruction("FROM")[-1] == "python:3.11-slim"
    assert any("uv sync --locked --no-dev" in run for run in dockerfile_instruction("RUN"))
