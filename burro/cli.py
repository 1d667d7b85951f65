"""`burro`: the command that runs Burro's parts (API, worker, sandbox) alone or together."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from service.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    """The `burro` command line (also checked against docker-compose.yml by the tests)."""
    parser = argparse.ArgumentParser(prog="burro", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API")
    serve.add_argument("--host", default=os.environ.get("BURRO_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("BURRO_PORT", "8000")))

    commands.add_parser("worker", help="run an arq worker")

    trainer = commands.add_parser(
        "trainer", help="train local jobs (one at a time) and serve the local models"
    )
    trainer.add_argument(
        "--no-serve",
        action="store_true",
        help="train only; another trainer (or `burro model-server`) serves the models",
    )
    trainer.add_argument("--host", default="127.0.0.1", help="where the model server listens")
    trainer.add_argument("--port", type=int, default=_local_port(), help="the model server's")

    model_server = commands.add_parser(
        "model-server", help="serve a local base model and its fine-tuned adapters"
    )
    model_server.add_argument("--host", default="127.0.0.1")
    model_server.add_argument("--port", type=int, default=_local_port())
    model_server.add_argument("--model", default=None, help="a local model of the model table")

    dev = commands.add_parser("dev", help="Redis, API, worker and (without a key) the sandbox")
    dev.add_argument("--port", type=int, default=int(os.environ.get("BURRO_PORT", "8000")))
    dev.add_argument(
        "--sandbox-port",
        type=int,
        default=int(os.environ.get("BURRO_SANDBOX_PORT", "8766")),
        help="where the sandbox listens when there is no OPENAI_API_KEY",
    )

    sandbox = commands.add_parser("sandbox", help="run the OpenAI-compatible sandbox alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8766)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="print a new key for a tenant, once")
    create.add_argument("--tenant", required=True)

    openapi = commands.add_parser("openapi", help="write openapi/openapi.json")
    openapi.add_argument("--output", type=Path, default=Path("openapi/openapi.json"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands: dict[str, Callable[[], int]] = {
        "serve": lambda: serve_api(args.host, args.port),
        "worker": run_worker,
        "trainer": lambda: run_trainer(args.host, args.port, serve=not args.no_serve),
        "model-server": lambda: run_model_server(args.host, args.port, args.model),
        "dev": lambda: run_dev(args.port, args.sandbox_port),
        "sandbox": lambda: run_sandbox(args.host, args.port),
        "keys": lambda: asyncio.run(create_key(args.tenant)),
        "openapi": lambda: write_openapi(args.output),
    }
    return commands[args.command]()


def serve_api(host: str, port: int) -> int:
    """Serve the API with granian (see `burro.serve` for why granian and how it is set up)."""
    from burro.serve import api_server

    api_server(Settings.from_env(), host, port).serve()
    return 0


def run_worker() -> int:
    from workers.main import run

    settings = Settings.from_env()
    if settings.metrics_port:
        from service.metrics import start_metrics_server

        start_metrics_server(settings.metrics_port)
    return run(settings)


def _local_port() -> int:
    """The port of BURRO_LOCAL_URL, where the API expects the local model server."""
    provider = Settings.from_env().provider("local")
    url = urlsplit(provider.base_url or "") if provider is not None else None
    return (url.port if url is not None else None) or 8767


def run_trainer(host: str, port: int, *, serve: bool) -> int:
    """A trainer: the model server in a child process (unless `serve` is False), the training
    worker in this one."""
    from trainer.worker import run

    server = None
    if serve:
        command = [sys.executable, "-m", "burro", "model-server", "--host", host]
        command += ["--port", str(port)]
        server = subprocess.Popen(command)  # noqa: S603
    try:
        return run()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def run_model_server(host: str, port: int, model: str | None) -> int:
    from trainer.serving.main import serve

    return serve(Settings.from_env(), host, port, model)


def run_sandbox(host: str, port: int) -> int:
    from sandbox.app import serve
    from sandbox.config import SandboxConfig

    serve(SandboxConfig.from_env(), host=host, port=port)
    return 0


async def create_key(tenant: str) -> int:
    from redis.asyncio import Redis

    from service.tenants import create_key as make_key

    settings = Settings.from_env()
    if not settings.redis_url:
        print("REDIS_URL is not set", file=sys.stderr)
        return 2
    redis = Redis.from_url(settings.redis_url, socket_timeout=10)
    try:
        print(await make_key(redis, tenant))
    finally:
        await redis.aclose()
    return 0


def openapi_document() -> dict[str, object]:
    """The OpenAPI document the code describes (no Redis needed)."""
    from service.app import create_app

    app = create_app(Settings(), configure_logs=False)
    return app.openapi_schema.to_schema()


def openapi_bytes() -> bytes:
    """The document as committed: sorted keys, two-space indents, a final newline."""
    encoded = msgspec.json.encode(openapi_document(), order="sorted")
    return msgspec.json.format(encoded, indent=2) + b"\n"


def write_openapi(output: Path) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(openapi_bytes())
    print(f"wrote {output}")
    return 0


def run_dev(port: int, sandbox_port: int = 8766) -> int:
    """Everything on one machine; children are stopped when this process ends."""
    from burro.redis_server import RedisServer

    env = dict(os.environ)
    settings = Settings.from_env()
    env.setdefault("BURRO_DATA_DIR", str(settings.data_dir))
    env.setdefault("BURRO_WEBHOOK_ALLOW_PRIVATE", "true")
    env.setdefault("BURRO_POLL_INTERVAL", "2")
    redis_server = None
    if not settings.redis_url:
        redis_server = RedisServer(data_dir=settings.data_dir / "redis")
        env["REDIS_URL"] = redis_server.start()
        print(f"burro dev: Redis at {env['REDIS_URL']} (data in {redis_server.data_dir})")
    if not env.get("BURRO_API_KEYS"):
        env["BURRO_API_KEYS"] = "dev:dev-key"
        print("burro dev: API key for tenant 'dev' is 'dev-key' (set BURRO_API_KEYS to change)")
    children: list[subprocess.Popen[bytes]] = []
    burro = [sys.executable, "-m", "burro"]
    if not env.get("OPENAI_API_KEY"):
        env.setdefault("BURRO_SANDBOX_STEP_SECONDS", "2")
        env["BURRO_SANDBOX_URL"] = f"http://127.0.0.1:{sandbox_port}/v1"
        sandbox = [*burro, "sandbox", "--port", str(sandbox_port)]
        children.append(subprocess.Popen(sandbox, env=env))  # noqa: S603
        print(f"burro dev: no OPENAI_API_KEY, so jobs train on the sandbox at :{sandbox_port}")
    children.append(subprocess.Popen([*burro, "worker"], env=env))  # noqa: S603
    if not env.get("OPENAI_API_KEY"):
        # Burro's own trainer: `"provider": "local"` (or a local model) trains for real here.
        children.append(subprocess.Popen([*burro, "trainer"], env=env))  # noqa: S603
        print("burro dev: a local trainer trains SmolLM2-135M-Instruct jobs on this machine")
    api = subprocess.Popen([*burro, "serve", "--port", str(port)], env=env)  # noqa: S603
    children.append(api)
    print(f"burro dev: API at http://127.0.0.1:{port}/v1 (docs at /openapi)")

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        api.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if redis_server is not None:
            redis_server.stop()
    return 0
